"""Tests for seq2seq_attn.corpora: user files, the generated dates task and the Bible."""

import csv
import datetime
import gzip
import os
import re
from pathlib import Path

import pytest
from babel.dates import format_date

from seq2seq_attn import corpora
from seq2seq_attn.corpora import Corpus, generate_dates, load_corpus, read_pairs, split_pairs
from seq2seq_attn.errors import DataError, UserError


def write(path, text, encoding="utf-8"):
    """Writes `text` to `path` (gzipped if the name ends in .gz) and returns the path."""
    data = text.encode(encoding) if isinstance(text, str) else text
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def raises_one_line(error_type, match, function, *args, **kwargs):
    """Asserts that the call raises `error_type` with a one-line message matching `match`."""
    with pytest.raises(error_type, match=match) as info:
        function(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


# --------------------------------------------------------------------------- read_pairs


def test_tsv_without_header_uses_first_two_columns_and_keeps_quotes(tmp_path):
    path = write(tmp_path / "p.tsv", 'Hi.\tHola.\textra\n"Go," he said.\t«Ve», dijo.\n\n  x \t y\n')
    assert read_pairs(path) == [("Hi.", "Hola."), ('"Go," he said.', "«Ve», dijo."), ("x", "y")]


def test_header_selects_source_and_target_columns_by_name(tmp_path):
    path = write(tmp_path / "p.tsv", "id\tTARGET\tSource\n1\tuno\tone\n2\tdos\ttwo\n")
    assert read_pairs(path) == [("one", "uno"), ("two", "dos")]


def test_csv_quoted_fields_hold_commas_quotes_and_newlines(tmp_path):
    rows = [["source", "target"], ["a, b", 'say "hi"'], ["two\nlines", "dos"]]
    with open(tmp_path / "p.csv", "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    assert read_pairs(tmp_path / "p.csv") == [("a, b", 'say "hi"'), ("two\nlines", "dos")]


@pytest.mark.parametrize("name", ["p.tsv.gz", "p.csv.gz", "P.TSV"])
def test_gzip_and_upper_case_suffixes(tmp_path, name):
    sep = "," if ".csv" in name else "\t"
    path = write(tmp_path / name, f"\ufeffsource{sep}target\nCat{sep}Gato\n")
    assert read_pairs(path) == [("Cat", "Gato")]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("a\tb\nonly-one-column\n", r"p\.tsv:2: expected at least 2 columns, got 1"),
        ("a\tb\n\n\t b\n", r"p\.tsv:3: empty source"),
        ("source\ttarget\na\tb\nc\t  \n", r"p\.tsv:3: empty target"),
        ("x\tsource\ttarget\n1\ta\n", r"p\.tsv:2: expected at least 3 columns, got 2"),
        ("", r"p\.tsv: no pairs"),
        ("\n\n", r"p\.tsv: no pairs"),
        ("Source\tTarget\n", r"p\.tsv: no pairs \(only a header\)"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path, text, match):
    raises_one_line(DataError, match, read_pairs, write(tmp_path / "p.tsv", text))


def test_not_utf8_names_the_line(tmp_path):
    path = write(tmp_path / "p.csv", "a,b\nc,d\ncafé,e\n", encoding="latin-1")
    raises_one_line(DataError, r"p\.csv:3: not UTF-8", read_pairs, path)


def test_csv_unterminated_quote_names_the_line(tmp_path):
    path = write(tmp_path / "p.csv", 'a,b\n"open,b\n')
    raises_one_line(DataError, r"p\.csv:2: malformed row", read_pairs, path)


def test_unreadable_files(tmp_path):
    raises_one_line(DataError, r"nope\.tsv: file not found", read_pairs, tmp_path / "nope.tsv")
    (tmp_path / "dir.tsv").mkdir()
    raises_one_line(DataError, r"dir\.tsv: is a directory", read_pairs, tmp_path / "dir.tsv")
    bad_gzip = write(tmp_path / "bad.tsv.gz", b"")
    bad_gzip.write_bytes(b"not gzip at all")
    raises_one_line(DataError, r"bad\.tsv\.gz: cannot read", read_pairs, bad_gzip)
    raises_one_line(
        DataError, r"p\.txt: unsupported file type", read_pairs, write(tmp_path / "p.txt", "a\tb\n")
    )


def test_permission_denied(tmp_path, monkeypatch):
    path = write(tmp_path / "p.tsv", "a\tb\n")
    if os.name == "posix" and os.geteuid() != 0:
        path.chmod(0)
    else:  # root reads anything: make the read fail the way a chmod-0 file does

        def denied(self):
            raise PermissionError(13, "Permission denied", str(self))

        monkeypatch.setattr(type(path), "read_bytes", denied)
    raises_one_line(DataError, r"p\.tsv: permission denied", read_pairs, path)


# --------------------------------------------------------------------------- splitting


def numbered_file(tmp_path, n, name="p.tsv"):
    return write(tmp_path / name, "".join(f"s{i}\tt{i}\n" for i in range(n)))


def test_user_file_default_split_sizes_and_no_leakage(tmp_path):
    corpus = load_corpus(str(numbered_file(tmp_path, 100)), seed=3)
    assert isinstance(corpus, Corpus)
    assert (len(corpus.train), len(corpus.dev), len(corpus.test)) == (90, 5, 5)
    everything = corpus.train + corpus.dev + corpus.test
    assert sorted(everything) == sorted((f"s{i}", f"t{i}") for i in range(100))
    assert corpus.source_lang == "source" and corpus.name.endswith("p.tsv")


def test_user_file_split_is_deterministic_and_seed_dependent(tmp_path):
    path = str(numbered_file(tmp_path, 200))
    first, again = load_corpus(path, seed=1), load_corpus(path, seed=1)
    other = load_corpus(path, seed=2)
    assert first == again
    assert first.test != other.test


def test_large_file_caps_heldout_at_1000_and_options_override(tmp_path):
    path = str(numbered_file(tmp_path, 30_000))
    corpus = load_corpus(path)
    assert (len(corpus.dev), len(corpus.test)) == (1000, 1000)
    corpus = load_corpus(path, dev_size=7, test_size=9, source_lang="en", target_lang="fr")
    assert (len(corpus.dev), len(corpus.test), corpus.source_lang) == (7, 9, "en")


def test_tiny_files(tmp_path):
    corpus = load_corpus(str(numbered_file(tmp_path, 3)))
    assert (len(corpus.train), len(corpus.dev), len(corpus.test)) == (1, 1, 1)
    raises_one_line(
        DataError,
        r"2 distinct source.*at least 3",
        load_corpus,
        str(numbered_file(tmp_path, 2, "two.tsv")),
    )
    raises_one_line(
        UserError,
        r"dev_size=2 and test_size=1 leave no training",
        load_corpus,
        str(numbered_file(tmp_path, 3)),
        dev_size=2,
    )


def test_split_keeps_duplicate_sources_together():
    pairs = [(f"s{i % 10}", f"t{i}") for i in range(50)]  # each source 5 times
    train, dev, test = split_pairs(pairs, dev_size=2, test_size=3, seed=0)
    assert (len(train), len(dev), len(test)) == (25, 10, 15)
    sources = [{s for s, _ in split} for split in (train, dev, test)]
    assert not (sources[0] & sources[1] or sources[0] & sources[2] or sources[1] & sources[2])
    assert train == [pair for pair in pairs if pair[0] in sources[0]]  # input order kept


def test_split_pairs_rejects_bad_sizes():
    pairs = [("a", "1"), ("b", "2"), ("c", "3")]
    with pytest.raises(ValueError, match="dev_size must be >= 0, got -1"):
        split_pairs(pairs, -1, 1, seed=0)
    with pytest.raises(ValueError, match="dev_size=2 \\+ test_size=1"):
        split_pairs(pairs, 2, 1, seed=0)


# --------------------------------------------------------------------------- load_corpus


def test_unknown_name_lists_known_names():
    message = raises_one_line(DataError, "unknown dataset 'bible'", load_corpus, "bible")
    for name in ("bible-en-es", "bible-es-en", "dates"):
        assert name in message


def test_missing_file_with_known_suffix(tmp_path):
    raises_one_line(DataError, "file not found", load_corpus, str(tmp_path / "x.csv"))


@pytest.mark.parametrize(("spec", "accepted"), [("dates", "size"), ("bible-en-es", "path")])
def test_unknown_option_names_key_and_accepted_ones(spec, accepted):
    message = raises_one_line(UserError, "unknown option 'sise'", load_corpus, spec, sise=5)
    assert accepted in message


def test_bad_option_values():
    raises_one_line(
        UserError, "size must be a positive integer, got -5", load_corpus, "dates", size=-5
    )
    raises_one_line(
        UserError,
        "test_size must be a positive integer, got 0",
        load_corpus,
        "dates",
        size=50,
        test_size=0,
    )
    raises_one_line(UserError, "xx_YY", load_corpus, "dates", size=50, locales="xx_YY")


# --------------------------------------------------------------------------- dates


def test_en_us_dates_parse_back_to_their_iso_target():
    pairs = generate_dates(300, seed=5, locales=["en_US"])
    styles = {"%A, %B %d, %Y": 0, "%B %d, %Y": 0, "%b %d, %Y": 0}  # full, long, medium
    for source, target in pairs:
        for style in styles:
            try:
                parsed = datetime.datetime.strptime(source, style).date()
            except ValueError:
                continue
            styles[style] += 1
            assert parsed.isoformat() == target, source
            break
        else:
            pytest.fail(f"unexpected en_US date {source!r}")
    assert all(count > 30 for count in styles.values()), styles


def test_day_first_numeric_and_german_dates_parse_back():
    german = [
        "Januar",
        "Februar",
        "März",
        "April",
        "Mai",
        "Juni",
        "Juli",
        "August",
        "September",
        "Oktober",
        "November",
        "Dezember",
    ]
    seen = 0
    for source, target in generate_dates(200, seed=1, locales=["en_GB", "de_DE"]):
        if m := re.fullmatch(r"(\d\d)/(\d\d)/(\d{4})", source):  # en_GB short dd/MM/y
            expected = datetime.date(int(m[3]), int(m[2]), int(m[1]))
        elif m := re.fullmatch(r"(?:\w+, )?(\d+)\. (\w+) (\d{4})", source):  # de_DE full/long
            expected = datetime.date(int(m[3]), german.index(m[2]) + 1, int(m[1]))
        else:
            continue
        seen += 1
        assert expected.isoformat() == target, source
    assert seen > 60


def test_month_first_numeric_format_is_left_out():
    sources = [s for s, _ in generate_dates(400, seed=0, locales=["en_US"])]
    assert not any(re.fullmatch(r"[\d/]+", s) for s in sources)
    assert format_date(datetime.date(1987, 3, 4), format="short", locale="en_US") == "3/4/87"


def test_narrow_and_non_breaking_spaces_become_plain():
    # Babel writes Russian long dates as "4 марта 1987\u202fг."
    raw = format_date(datetime.date(1987, 3, 4), format="long", locale="ru_RU")
    assert "\u202f" in raw
    pairs = generate_dates(100, seed=0, locales=["ru_RU"])
    assert not any(ch in s for s, _ in pairs for ch in "\u00a0\u202f\u2009\u2007")
    long_dates = [(re.fullmatch(r"(?:\w+, )?(\d+) \w+ (\d{4}) г\.", s), t) for s, t in pairs]
    long_dates = [(m, t) for m, t in long_dates if m]
    assert len(long_dates) > 30
    assert all(f"{m[2]}-" in t and t.endswith(f"-{int(m[1]):02d}") for m, t in long_dates)


def test_dates_are_deterministic_unique_in_range_and_varied():
    pairs = generate_dates(500, seed=11)
    assert pairs == generate_dates(500, seed=11)
    assert pairs != generate_dates(500, seed=12)
    assert len({s for s, _ in pairs}) == 500
    targets = [datetime.date.fromisoformat(t) for _, t in pairs]
    assert all(datetime.date(1950, 1, 1) <= d <= datetime.date(2049, 12, 31) for d in targets)
    assert min(targets).year < 1960 and max(targets).year > 2039
    assert re.search("[äéèíóôçñ]", " ".join(s for s, _ in pairs))  # several locales used


def test_every_default_locale_source_is_a_babel_rendering_of_its_date():
    styles = [
        (locale, style)
        for locale in corpora.DEFAULT_LOCALES
        for style in ("full", "long", "medium", "short")
    ]
    for source, target in generate_dates(300, seed=2):
        date = datetime.date.fromisoformat(target)
        renderings = {
            format_date(date, format=style, locale=locale)
            .replace("\u00a0", " ")
            .replace("\u202f", " ")
            for locale, style in styles
        }
        assert source in renderings, (source, target)


def test_generate_dates_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n must be >= 0, got -1"):
        generate_dates(-1, seed=0)
    with pytest.raises(ValueError, match="'xx_YY'"):
        generate_dates(3, seed=0, locales=["en_US", "xx_YY"])
    with pytest.raises(ValueError, match="locales must be"):
        generate_dates(3, seed=0, locales=[])
    # en_US keeps 3 formats (short is left out): 36525 days * 3 // 2 = 54787.
    assert (datetime.date(2050, 1, 1) - datetime.date(1950, 1, 1)).days == 36525
    with pytest.raises(ValueError, match="n must be at most 54787 for 1 locale"):
        generate_dates(54788, seed=0, locales=["en_US"])


def test_dates_corpus_sizes_no_leakage_and_seeds():
    corpus = load_corpus("dates", seed=4, size=2000, dev_size=50)
    assert (len(corpus.train), len(corpus.dev), len(corpus.test)) == (1850, 50, 100)
    splits = [{s for s, _ in split} for split in (corpus.train, corpus.dev, corpus.test)]
    assert sum(map(len, splits)) == len(set().union(*splits)) == 2000
    assert corpus == load_corpus("dates", seed=4, size=2000, dev_size=50)
    assert corpus.test != load_corpus("dates", seed=5, size=2000, dev_size=50).test
    small = load_corpus("dates", seed=0, size=40, locales="en_GB, fr_FR")
    for source, target in small.train + small.dev + small.test:
        date = datetime.date.fromisoformat(target)
        renderings = {
            format_date(date, format=style, locale=locale)
            for locale in ("en_GB", "fr_FR")
            for style in ("full", "long", "medium")
        }
        renderings.add(date.strftime("%d/%m/%Y"))  # short in both
        assert source in renderings


def test_dates_default_size():
    assert (
        corpora.DEFAULT_DATES_SIZE - 2 * corpora.default_heldout_size(corpora.DEFAULT_DATES_SIZE)
        == 20_000
    )


# --------------------------------------------------------------------------- Bible


BIBLE_FIXTURE = (
    "ref\tsplit\ten\tes\n"
    "GEN 1:1\ttrain\tIn the beginning God created the heavens.\t"
    "En el principio creó Dios los cielos.\n"
    "GEN 1:2\tdev\tThe earth was empty.\tLa tierra estaba vacía.\n"
    'GEN 1:3\ttrain\tGod said, "Let there be light."\tY dijo Dios: «Sea la luz».\n'
    "GEN 1:4\ttest\tGod saw the light.\tVio Dios la luz.\n"
)


def test_bible_uses_the_file_split(tmp_path):
    path = write(tmp_path / "bible.tsv.gz", BIBLE_FIXTURE)
    corpus = load_corpus("bible-en-es", path=path)
    assert (corpus.name, corpus.source_lang, corpus.target_lang) == ("bible-en-es", "en", "es")
    assert corpus.train == [
        ("In the beginning God created the heavens.", "En el principio creó Dios los cielos."),
        ('God said, "Let there be light."', "Y dijo Dios: «Sea la luz»."),
    ]
    assert corpus.dev == [("The earth was empty.", "La tierra estaba vacía.")]
    assert corpus.test == [("God saw the light.", "Vio Dios la luz.")]


def test_bible_reversed_direction(tmp_path):
    path = write(tmp_path / "bible.tsv.gz", BIBLE_FIXTURE)
    forward = load_corpus("bible-en-es", path=path)
    backward = load_corpus("bible-es-en", path=path)
    assert (backward.source_lang, backward.target_lang) == ("es", "en")
    assert backward.test == [(t, s) for s, t in forward.test]
    assert backward.train == [(t, s) for s, t in forward.train]


def test_bible_errors(tmp_path):
    raises_one_line(
        DataError,
        "embedded Bible corpus not found",
        load_corpus,
        "bible-en-es",
        path=tmp_path / "missing.tsv.gz",
    )
    bad_split = write(tmp_path / "b.tsv.gz", BIBLE_FIXTURE.replace("\ttest\t", "\tvalid\t"))
    raises_one_line(
        DataError,
        r"b\.tsv\.gz:5: split must be one of train, dev, test, got 'valid'",
        load_corpus,
        "bible-en-es",
        path=bad_split,
    )
    no_es = write(tmp_path / "c.tsv.gz", "ref\tsplit\ten\nX\ttrain\ta\n")
    raises_one_line(
        DataError,
        r"c\.tsv\.gz:1: header lacks column\(s\) es",
        load_corpus,
        "bible-en-es",
        path=no_es,
    )


def test_the_bible_has_one_place_the_corpus_package():
    """`seq2seq_attn.corpus`, which is the checkout's data/ here (an editable install); the
    installed wheel's copy is tests/test_packaging.py's."""
    import seq2seq_attn.corpus

    checkout_data = Path(__file__).resolve().parents[1] / "data"
    assert Path(seq2seq_attn.corpus.__file__).parent == checkout_data
    assert corpora.bible_path() == checkout_data / "bible-en-es.tsv.gz"


def test_a_missing_corpus_package_is_a_data_error(monkeypatch):
    monkeypatch.setattr(corpora, "CORPUS_PACKAGE", "seq2seq_attn.no_such_corpus")
    raises_one_line(DataError, "no_such_corpus is not installed", load_corpus, "bible-en-es")


def test_real_bible_file_has_plausible_splits():
    corpus = load_corpus("bible-en-es")
    assert len(corpus.train) > 20_000
    assert 500 <= len(corpus.dev) <= 2000 and 500 <= len(corpus.test) <= 2000


def test_split_files_are_used_as_given(tmp_path):
    """`train --train A --dev B --test C`: every pair where and in the order the files have
    it, even a source repeated across files (no re-splitting, no leakage filtering)."""
    train = tmp_path / "train.tsv"
    train.write_text("source\ttarget\nb\tB\na\tA\nc\tC\na\tA2\n")
    dev = tmp_path / "dev.csv"
    dev.write_text('x,X\n"a, quoted",Q\n')
    test = tmp_path / "test.tsv.gz"
    test.write_bytes(gzip.compress(b"a\tA\n"))
    corpus = corpora.load_files(train, dev, test)
    assert corpus.train == [("b", "B"), ("a", "A"), ("c", "C"), ("a", "A2")]
    assert corpus.dev == [("x", "X"), ("a, quoted", "Q")]
    assert corpus.test == [("a", "A")]
    assert corpus.name == str(train)


def test_split_files_dev_and_test_are_optional_and_checked(tmp_path):
    train = tmp_path / "train.tsv"
    train.write_text("a\tA\n")
    corpus = corpora.load_files(train)
    assert (corpus.train, corpus.dev, corpus.test) == ([("a", "A")], [], [])
    with pytest.raises(DataError, match="missing.tsv: file not found"):
        corpora.load_files(train, dev=tmp_path / "missing.tsv")
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    with pytest.raises(DataError, match="no pairs"):
        corpora.load_files(train, test=empty)
