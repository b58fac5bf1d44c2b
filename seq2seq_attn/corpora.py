"""Parallel corpora: the embedded Bible (en-es), generated dates, and the user's own files.

Every corpus comes back as a :class:`Corpus` of ``(source, target)`` string pairs already
split into train/dev/test. The module is plain Python (no TensorFlow), so it can be used
from tests, the CLI and data-preparation scripts alike.

Example:
    >>> corpus = load_corpus("dates", seed=0, size=100)
    >>> len(corpus.train), len(corpus.dev), len(corpus.test)
    (90, 5, 5)
    >>> corpus.train[0][1][4], corpus.train[0][1][7]
    ('-', '-')
"""

import codecs
import csv
import dataclasses
import datetime
import gzip
import io
import random
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from seq2seq_attn.errors import DataError, UserError

Pair = tuple[str, str]

BIBLE_FILENAME = "bible-en-es.tsv.gz"
CORPUS_PACKAGE = "seq2seq_attn.corpus"  # the repository's data/ folder
BIBLE_NAMES = {"bible-en-es": ("en", "es"), "bible-es-en": ("es", "en")}
KNOWN_NAMES = (*BIBLE_NAMES, "dates")
FILE_SUFFIXES = (".tsv", ".csv", ".tsv.gz", ".csv.gz")
SPLITS = ("train", "dev", "test")

# Latin-script locales whose Babel output is plain readable text. All of them read a numeric
# date day-first (or year-first); en_US's month-first short format is left out (see
# `_is_month_first_numeric`).
DEFAULT_LOCALES = (
    "en_US",
    "en_GB",
    "de_DE",
    "fr_FR",
    "es_ES",
    "it_IT",
    "pt_BR",
    "nl_NL",
    "sv_SE",
    "da_DK",
)
DATE_FORMATS = ("full", "long", "medium", "short")
FIRST_DATE = datetime.date(1950, 1, 1)
LAST_DATE = datetime.date(2049, 12, 31)
DEFAULT_DATES_SIZE = 22_000  # 20000 train + 1000 dev + 1000 test
MAX_HELDOUT = 1000
HELDOUT_FRACTION = 0.05
# Babel puts these in some formats (fr_FR, Nordic locales, CLDR >= 42 times).
_SPACE_LIKE = {0x00A0: " ", 0x202F: " ", 0x2007: " ", 0x2009: " "}


@dataclasses.dataclass(frozen=True)
class Corpus:
    """A parallel corpus split into train/dev/test.

    Attributes:
        name: What the user asked for: a dataset name or the file's path.
        source_lang: Source-side label, e.g. ``"en"``.
        target_lang: Target-side label, e.g. ``"es"``.
        train: ``(source, target)`` pairs for training.
        dev: Pairs for validation during training.
        test: Held-out pairs for the final evaluation.
    """

    name: str
    source_lang: str
    target_lang: str
    train: list[Pair]
    dev: list[Pair]
    test: list[Pair]


def load_corpus(spec: str, *, seed: int = 0, **options) -> Corpus:
    """Loads a corpus by dataset name or file path.

    Args:
        spec: ``"bible-en-es"``, ``"bible-es-en"``, ``"dates"``, or a path to a ``.tsv``,
            ``.csv``, ``.tsv.gz`` or ``.csv.gz`` file (see :func:`read_pairs`).
        seed: Seed for generating (dates) and splitting (user files). The Bible uses the
            split stored in its file and ignores it.
        **options: Per-dataset options.
            Bible: ``path`` (another copy of the embedded file).
            Dates: ``size`` (total pairs, default 22000), ``dev_size``, ``test_size``,
            ``locales`` (a sequence or a comma-separated string).
            Files: ``dev_size``, ``test_size`` (default ``min(1000, 5%)`` each, at least 1),
            ``source_lang``, ``target_lang``.

    Returns:
        The :class:`Corpus`.

    Raises:
        UserError: An unknown or invalid option.
        DataError: An unknown name, or a file that is missing or malformed.
    """
    if spec in BIBLE_NAMES:
        _check_options(spec, options, ("path",))
        source_lang, target_lang = BIBLE_NAMES[spec]
        return load_bible(source_lang, target_lang, path=options.get("path"))
    if spec == "dates":
        _check_options(spec, options, ("size", "dev_size", "test_size", "locales"))
        return _load_dates(seed, **options)
    path = Path(spec)
    if not path.name.lower().endswith(FILE_SUFFIXES) and not path.exists():
        raise DataError(
            f"unknown dataset {spec!r}: expected one of {', '.join(KNOWN_NAMES)} "
            f"or a path to a {'/'.join(FILE_SUFFIXES)} file"
        )
    _check_options(spec, options, ("dev_size", "test_size", "source_lang", "target_lang"))
    return _load_file(path, seed, **options)


def _check_options(spec: str, options: dict, accepted: Sequence[str]) -> None:
    """Raises UserError for an option key that `spec` does not accept."""
    for key in options:
        if key not in accepted:
            raise UserError(
                f"unknown option {key!r} for dataset {spec!r}; accepted: {', '.join(accepted)}"
            )


def _positive_int(name: str, value) -> int:
    """Returns `value` if it is an int >= 1, else raises UserError naming the option."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"option {name} must be a positive integer, got {value!r}")
    return value


def default_heldout_size(num_pairs: int) -> int:
    """Default dev (and test) size: ``min(1000, 5% of num_pairs)``, at least 1."""
    return max(1, min(MAX_HELDOUT, int(num_pairs * HELDOUT_FRACTION)))


def _or_default(size, num_pairs: int):
    """`size` if the user gave one, else `default_heldout_size(num_pairs)`."""
    return default_heldout_size(num_pairs) if size is None else size


# --------------------------------------------------------------------------- Bible


def bible_path() -> Path:
    """Where the embedded Bible corpus lives: ``bible-en-es.tsv.gz`` in ``seq2seq_attn.corpus``.

    That package is the repository's ``data/`` folder (pyproject.toml's ``package-dir``): the
    wheel installs it as ``seq2seq_attn/corpus/``, an editable install maps it to ``data/``.
    Either way the import system finds it, so there is one place to look.

    Raises:
        DataError: The package ``seq2seq_attn.corpus`` is not installed.
    """
    try:
        package = resources.files(CORPUS_PACKAGE)
    except ModuleNotFoundError:
        raise DataError(
            f"{CORPUS_PACKAGE} is not installed: embedded Bible corpus not found "
            f"(is the package complete?)"
        ) from None
    return Path(package / BIBLE_FILENAME)


def load_bible(source_lang: str = "en", target_lang: str = "es", *, path=None) -> Corpus:
    """Loads the embedded English-Spanish Bible, split as its file says.

    Args:
        source_lang: ``"en"`` or ``"es"``.
        target_lang: The other one.
        path: A file in the same format to read instead of :func:`bible_path`: a gzip of
            UTF-8 TSV with header ``ref<TAB>split<TAB>en<TAB>es``.

    Returns:
        A :class:`Corpus` named ``bible-<source_lang>-<target_lang>``.

    Raises:
        ValueError: `source_lang`/`target_lang` is not ``("en", "es")`` or the reverse.
        DataError: The file is missing or malformed.
    """
    if {source_lang, target_lang} != {"en", "es"} or source_lang == target_lang:
        raise ValueError(
            f"source_lang/target_lang must be 'en'/'es' or 'es'/'en', "
            f"got {source_lang!r}/{target_lang!r}"
        )
    path = Path(path) if path is not None else bible_path()
    if not path.is_file():
        raise DataError(f"{path}: embedded Bible corpus not found (is the package complete?)")
    rows = _csv_rows(path, _read_text(path), delimiter="\t")
    header = [cell.strip().lower() for cell in next(rows, (1, []))[1]]
    missing = [name for name in ("split", "en", "es") if name not in header]
    if missing:
        raise DataError(f"{path}:1: header lacks column(s) {', '.join(missing)}")
    columns = [header.index(name) for name in ("split", source_lang, target_lang)]
    splits = {name: [] for name in SPLITS}
    for line, split, source, target in _pick_columns(path, rows, columns):
        if split not in splits:
            raise DataError(
                f"{path}:{line}: split must be one of {', '.join(SPLITS)}, got {split!r}"
            )
        splits[split].append((source, target))
    return Corpus(f"bible-{source_lang}-{target_lang}", source_lang, target_lang, **splits)


# --------------------------------------------------------------------------- dates


def generate_dates(n: int, seed: int, locales: Sequence[str] = DEFAULT_LOCALES) -> list[Pair]:
    """Generates ``(human-readable date, ISO date)`` pairs, e.g. ``("4 mars 1987", "1987-03-04")``.

    Dates are uniform between 1950-01-01 and 2049-12-31; each pair picks a locale and one
    of the Babel formats full/long/medium/short at random. Numeric formats that put the
    month before the day (en_US ``3/4/87``) are skipped: the same string means 4 April in
    es_ES, so keeping both would give one source two correct targets. Two-digit years are
    unambiguous within the 100-year range. Non-breaking and narrow spaces become plain
    spaces. All source strings are distinct.

    Args:
        n: Number of pairs, >= 0.
        seed: Seed for a private ``random.Random``; the same seed gives the same pairs.
        locales: Babel locale names.

    Returns:
        `n` pairs.

    Raises:
        ValueError: `n` is negative or above half the possible renderings (36525 days
            times the usable formats), `locales` is empty or unknown to Babel, or `n`
            distinct strings could not be drawn.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n!r}")
    styles = _date_styles(locales)
    first, last = FIRST_DATE.toordinal(), LAST_DATE.toordinal()
    limit = (last - first + 1) * len(styles) // 2
    if n > limit:
        raise ValueError(f"n must be at most {limit} for {len(locales)} locale(s), got {n}")
    rng = random.Random(seed)
    pairs: dict[str, str] = {}
    for _ in range(4 * n + 1000):
        if len(pairs) == n:
            return list(pairs.items())
        date = datetime.date.fromordinal(rng.randint(first, last))
        locale, style = rng.choice(styles)
        pairs.setdefault(_format_date(date, style, locale), date.isoformat())
    if len(pairs) == n:
        return list(pairs.items())
    raise ValueError(f"n={n} is more distinct dates than {len(locales)} locale(s) can write")


def _date_styles(locales: Sequence[str]) -> list[tuple[str, str]]:
    """Returns the usable (locale, format) pairs; raises ValueError for bad `locales`."""
    from babel import UnknownLocaleError
    from babel.dates import get_date_format

    if isinstance(locales, str) or not locales:
        raise ValueError(f"locales must be a non-empty sequence of names, got {locales!r}")
    styles = []
    for locale in locales:
        try:
            patterns = {style: get_date_format(style, locale).pattern for style in DATE_FORMATS}
        except (UnknownLocaleError, ValueError, TypeError) as error:
            raise ValueError(f"locales contains {locale!r}, unknown to Babel: {error}") from None
        styles += [(locale, s) for s, p in patterns.items() if not _is_month_first_numeric(p)]
    return styles


def _is_month_first_numeric(pattern: str) -> bool:
    """True for a numeric CLDR pattern like ``M/d/yy`` (month, then day, year not first)."""
    if "MMM" in pattern or "M" not in pattern or "d" not in pattern:
        return False
    month, day, year = pattern.index("M"), pattern.index("d"), pattern.find("y")
    return month < day and not 0 <= year < month


def _format_date(date: datetime.date, style: str, locale: str) -> str:
    """Babel's rendering of `date`, with non-breaking/narrow spaces made plain."""
    from babel.dates import format_date

    return format_date(date, format=style, locale=locale).translate(_SPACE_LIKE)


def _load_dates(
    seed: int, size=DEFAULT_DATES_SIZE, dev_size=None, test_size=None, locales=DEFAULT_LOCALES
) -> Corpus:
    """The ``dates`` dataset: `size` generated pairs split by `split_pairs`."""
    size = _positive_int("size", size)
    dev_size = _positive_int("dev_size", _or_default(dev_size, size))
    test_size = _positive_int("test_size", _or_default(test_size, size))
    if isinstance(locales, str):
        locales = [name.strip() for name in locales.split(",") if name.strip()]
    if dev_size + test_size >= size:
        raise UserError(
            f"option size={size} leaves no training pairs after "
            f"dev_size={dev_size} and test_size={test_size}"
        )
    try:
        pairs = generate_dates(size, seed, locales)
    except ValueError as error:
        raise UserError(f"dates: {error}") from None
    train, dev, test = split_pairs(pairs, dev_size, test_size, seed)
    return Corpus("dates", "human", "iso", train, dev, test)


# --------------------------------------------------------------------------- user files


def read_pairs(path) -> list[Pair]:
    """Reads ``(source, target)`` pairs from a TSV or CSV file, optionally gzipped.

    The file is UTF-8 (a BOM is allowed). If its first row has columns named ``source``
    and ``target`` (any case), those columns are used; otherwise the first two columns
    are, and the first row is data. CSV follows the csv module's dialect (quoted fields
    may hold commas, quotes and newlines); TSV is read without quoting, so quote marks
    are kept literally and a field cannot contain a tab. Fields are stripped of
    surrounding whitespace; blank lines are skipped; extra columns are ignored.

    Args:
        path: A ``.tsv``, ``.csv``, ``.tsv.gz`` or ``.csv.gz`` file.

    Returns:
        The pairs in file order.

    Raises:
        DataError: One line naming the file (and line, for a bad row): missing,
            unreadable, not UTF-8, a row with fewer than 2 columns, an empty field,
            or no pairs at all.
    """
    path = Path(path)
    name = path.name.lower()
    if not name.endswith(FILE_SUFFIXES):
        raise DataError(f"{path}: unsupported file type; expected {', '.join(FILE_SUFFIXES)}")
    delimiter = "\t" if name.endswith((".tsv", ".tsv.gz")) else ","
    rows = _csv_rows(path, _read_text(path), delimiter)
    first = next(rows, None)
    if first is None:
        raise DataError(f"{path}: no pairs (the file is empty)")
    header = [cell.strip().lower() for cell in first[1]]
    if "source" in header and "target" in header:
        columns = [header.index("source"), header.index("target")]
    else:
        columns = [0, 1]
        rows = _chain(first, rows)
    pairs = [(source, target) for _, source, target in _pick_columns(path, rows, columns)]
    if not pairs:
        raise DataError(f"{path}: no pairs (only a header)")
    return pairs


def _read_text(path: Path) -> str:
    """The file's text, gunzipped if it ends in .gz; DataError if it cannot be read."""
    try:
        data = path.read_bytes()
        if path.name.lower().endswith(".gz"):
            data = gzip.decompress(data)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a file") from None
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None
    except (OSError, EOFError) as error:
        raise DataError(f"{path}: cannot read ({error})") from None
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DataError(f"{path}:{line}: not UTF-8 text ({error.reason})") from None


def _csv_rows(path: Path, text: str, delimiter: str):
    """Yields ``(line_number, cells)`` for each non-blank row of `text`."""
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting, strict=True
    )
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise DataError(f"{path}:{start}: malformed row ({error})") from None
        if any(cell.strip() for cell in cells):
            yield start, cells


def _chain(first, rows):
    """Yields `first`, then the rest of `rows`."""
    yield first
    yield from rows


def _pick_columns(path: Path, rows, columns: list[int]):
    """Yields ``(line, *cells)`` with the stripped `columns` of each row; DataError if bad."""
    needed = max(columns) + 1
    for line, cells in rows:
        if len(cells) < needed:
            raise DataError(f"{path}:{line}: expected at least {needed} columns, got {len(cells)}")
        picked = [cells[i].strip() for i in columns]
        if not all(picked[-2:]):
            side = "source" if not picked[-2] else "target"
            raise DataError(f"{path}:{line}: empty {side}")
        yield (line, *picked)


def split_pairs(
    pairs: Sequence[Pair], dev_size: int, test_size: int, seed: int
) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """Splits pairs into train/dev/test by a seeded shuffle of their distinct sources.

    Pairs that share a source string always land in the same split, so no source seen in
    training appears in dev or test. `dev_size` and `test_size` count distinct sources
    (equal to pairs when sources are unique). Within each split, pairs keep their input
    order.

    Args:
        pairs: ``(source, target)`` pairs.
        dev_size: Number of distinct sources for dev, >= 0.
        test_size: Number of distinct sources for test, >= 0.
        seed: Seed for a private ``random.Random``.

    Returns:
        ``(train, dev, test)``.

    Raises:
        ValueError: A negative size, or sizes that leave no training source.
    """
    for name, value in (("dev_size", dev_size), ("test_size", test_size)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")
    sources = list(dict.fromkeys(source for source, _ in pairs))
    if dev_size + test_size >= len(sources):
        raise ValueError(
            f"dev_size={dev_size} + test_size={test_size} leaves no training data "
            f"among {len(sources)} distinct sources"
        )
    random.Random(seed).shuffle(sources)
    split_of = dict.fromkeys(sources[:test_size], 2)
    split_of.update(dict.fromkeys(sources[test_size : test_size + dev_size], 1))
    splits: tuple[list[Pair], list[Pair], list[Pair]] = ([], [], [])
    for pair in pairs:
        splits[split_of.get(pair[0], 0)].append(pair)
    return splits


def _load_file(
    path: Path, seed: int, dev_size=None, test_size=None, source_lang="source", target_lang="target"
) -> Corpus:
    """A user file read by `read_pairs` and split by `split_pairs`."""
    pairs = read_pairs(path)
    num_sources = len(set(source for source, _ in pairs))
    if num_sources < 3:
        raise DataError(
            f"{path}: {num_sources} distinct source sentence(s); at least 3 are "
            f"needed for train, dev and test"
        )
    dev_size = _positive_int("dev_size", _or_default(dev_size, num_sources))
    test_size = _positive_int("test_size", _or_default(test_size, num_sources))
    if dev_size + test_size >= num_sources:
        raise UserError(
            f"{path}: dev_size={dev_size} and test_size={test_size} leave no "
            f"training pairs among {num_sources} distinct sources"
        )
    train, dev, test = split_pairs(pairs, dev_size, test_size, seed)
    return Corpus(str(path), source_lang, target_lang, train, dev, test)


def load_files(train, dev=None, test=None, *, source_lang="source", target_lang="target") -> Corpus:
    """A corpus from the user's own split files, used as given (nothing is re-split).

    Each file is read by :func:`read_pairs` (same formats and errors as ``--data FILE``).

    Args:
        train: The training pairs' file.
        dev: Optional file of validation pairs; without it the corpus has no dev pairs.
        test: Optional file of test pairs; without it the corpus has no test pairs.
        source_lang: Source-side label.
        target_lang: Target-side label.

    Returns:
        A :class:`Corpus` named after the train file.

    Raises:
        DataError: A file is missing or malformed, or holds no pairs.
    """
    splits = {
        name: read_pairs(path) if path is not None else []
        for name, path in (("train", train), ("dev", dev), ("test", test))
    }
    return Corpus(str(train), source_lang, target_lang, **splits)
