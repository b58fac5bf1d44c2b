"""Pure-Python WordPiece tokenizer: the TensorFlow-free twin of :mod:`seq2seq_attn.tokenizer`.

This module defines the tokenization; ``tokenizer.GraphTokenizer`` runs the same steps with
tensorflow-text ops inside a graph, and the tests prove both give identical ids and strings.
Nothing here imports TensorFlow, so ONNX Runtime, LiteRT and the server can use it.

Encoding a string:

1. Characters outside Unicode 14.0 (unassigned code points, surrogates) become U+FFFD.
   Python 3.11's ``unicodedata`` and the ICU inside tensorflow-text know different Unicode
   versions and disagree on such characters; on the 14.0 repertoire they agree.
2. Control characters (category Cc except ``\t \n \v \f \r \x85``) and format characters
   (Cf: zero-width joiner, soft hyphen, BOM, ...) are deleted.
3. NFKC normalisation (accents are kept: Spanish needs them).
4. If ``lower_case``: each character is replaced by its own lowercase (``str.lower`` of the
   single character). No context rules (a final capital sigma becomes "σ") and no locale
   (TensorFlow's ``tf.strings.lower`` follows the process locale: "I" -> "ı" under tr_TR).
5. Pre-tokenization: whitespace (``\t \n \v \f \r \x85`` and category Z) separates words;
   every punctuation or symbol character (categories P*, S*: emoji, U+FFFD) and every CJK
   ideograph is a word of its own; all other runs of characters are words.
6. Greedy longest-match-first WordPiece per word, continuation pieces prefixed by ``##``.
   A word longer than ``max_bytes_per_word`` UTF-8 bytes, or one that cannot be covered by
   vocabulary pieces, becomes a single ``[UNK]`` (tf-text's rule).
7. The ids are wrapped in ``[START]`` ... ``[END]``.

Character classes are fixed tables derived from Unicode 14.0 (below), so the result does not
depend on the Python or TensorFlow version at hand. Decoding joins tokens with spaces, glues
``##`` pieces to the previous token and then applies :data:`DETOKENIZE_RULES`, regular
expressions that mean the same in Python's ``re`` and in RE2, so that "Hello, world." comes
back as "hello, world.".

Example:
    >>> tok = WordPieceTokenizer([PAD, UNK, START, END, ",", ".", "hello", "world", "wor", "##ld"])
    >>> tok.encode("Hello, WORLD.")
    [2, 6, 4, 7, 5, 3]
    >>> tok.decode([2, 6, 4, 8, 9, 5, 3, 0, 0])
    'hello, world.'
"""

import functools
import json
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence

import numpy as np

from seq2seq_attn.errors import DataError

PAD, UNK, START, END = "[PAD]", "[UNK]", "[START]", "[END]"
RESERVED_TOKENS = (PAD, UNK, START, END)
PAD_ID, UNK_ID, START_ID, END_ID = 0, 1, 2, 3
SUFFIX_INDICATOR = "##"
MAX_BYTES_PER_WORD = 100
NORMALIZATION_FORM = "NFKC"
UNICODE_VERSION = "14.0.0"
SETTINGS_FORMAT = "seq2seq_attn.wordpiece/1"
REPLACEMENT_CHAR = "\ufffd"

# Detokenization: after joining tokens with " " and deleting " ##", these (pattern, replacement)
# pairs are applied in order with Python's re.sub and with RE2's regex_replace. They use only
# literal characters, explicit classes, groups, "$" and \1-style references, which both engines
# read the same way (leftmost-first, non-overlapping, global).
DETOKENIZE_RULES = (
    (r"([0-9]) ([.,:]) ([0-9])", r"\1\2\3"),  # 3 , 000 -> 3,000 ; 3 : 16 -> 3:16
    (r"([^ ]) (['’]) (s|t|d|m|ll|re|ve)( |$)", r"\1\2\3\4"),  # god ' s -> god's
    (r" - ", "-"),  # well - known -> well-known
    (r" ([.,;:!?%)\]}»”’…])", r"\1"),  # hello , world . -> hello, world.
    (r"([¿¡(\[{«“‘]) ", r"\1"),  # ¿ qué ? -> ¿qué?
    (r'" ([^"]*) "', r'"\1"'),  # " hello " -> "hello" (quotes paired left to right)
    (" ([\U0001f3fb-\U0001f3ff])", r"\1"),  # skin-tone modifiers stay on their emoji
)

# Code points that separate words besides category Z (see _SPACE_SEPARATOR_14).
_SPACE_CONTROLS = ((0x09, 0x0D), (0x85, 0x85))
# Category Cc (Unicode 14.0): all of it, minus _SPACE_CONTROLS.
_CC = ((0x00, 0x1F), (0x7F, 0x9F))
# CJK ideographs, each one a word of its own (the ranges BERT uses).
_CJK = (
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0x2F800, 0x2FA1F),
)


def _parse_ranges(table: str) -> tuple[tuple[int, int], ...]:
    """Reads ``"0041-005A 00B5"`` as ``((0x41, 0x5A), (0xB5, 0xB5))``."""
    ranges = []
    for item in table.split():
        low, _, high = item.partition("-")
        ranges.append((int(low, 16), int(high or low, 16)))
    return tuple(ranges)


def _subtract(ranges, removed) -> tuple[tuple[int, int], ...]:
    """Code point ranges ``ranges`` minus ``removed`` (both sorted, inclusive)."""
    result = []
    for low, high in ranges:
        for r_low, r_high in removed:
            if r_high < low or r_low > high:
                continue
            if r_low > low:
                result.append((low, r_low - 1))
            low = r_high + 1
        if low <= high:
            result.append((low, high))
    return tuple(result)


@functools.cache
def character_ranges() -> dict[str, tuple[tuple[int, int], ...]]:
    """The character classes of the tokenization, as sorted inclusive code point ranges.

    Returns:
        A dict with keys ``"unstable"`` (replaced by U+FFFD), ``"control"`` (deleted),
        ``"space"`` (separate words) and ``"isolated"`` (punctuation, symbols and CJK
        ideographs: one word per character).

    Example:
        >>> (0x20, 0x20) in character_ranges()["space"]
        True
    """
    return {
        "unstable": _parse_ranges(_UNASSIGNED_14),
        "control": tuple(sorted(_subtract(_CC, _SPACE_CONTROLS) + _parse_ranges(_FORMAT_14))),
        "space": tuple(sorted(_SPACE_CONTROLS + _parse_ranges(_SPACE_SEPARATOR_14))),
        "isolated": tuple(
            sorted(_parse_ranges(_PUNCT_SYMBOL_14) + _subtract(_CJK, _parse_ranges(_UNASSIGNED_14)))
        ),
    }


def regex_class(ranges: Iterable[tuple[int, int]], flavor: str = "python") -> str:
    """Writes code point ranges as the inside of a regex character class.

    Args:
        ranges: Inclusive ``(low, high)`` code point pairs.
        flavor: ``"python"`` (``\\UXXXXXXXX`` escapes, for :mod:`re`) or ``"re2"``
            (``\\x{X}``, for TensorFlow's regex ops; surrogates are left out, RE2 rejects them).

    Returns:
        A string such as ``"\\x{41}-\\x{5A}"`` to be put between ``[`` and ``]``.

    Raises:
        ValueError: If ``flavor`` is neither ``"python"`` nor ``"re2"``.

    Example:
        >>> regex_class([(0x41, 0x5A)], "re2")
        '\\\\x{41}-\\\\x{5A}'
    """
    if flavor == "python":
        escape = "\\U{:08X}".format
    elif flavor == "re2":
        ranges = _subtract(ranges, [(0xD800, 0xDFFF)])
        escape = "\\x{{{:X}}}".format
    else:
        raise ValueError(f"flavor must be 'python' or 're2', got {flavor!r}")
    return "".join(escape(lo) if lo == hi else f"{escape(lo)}-{escape(hi)}" for lo, hi in ranges)


@functools.cache
def lowercase_map() -> dict[int, str]:
    """Per-character lowercase mapping of the Unicode 14.0 repertoire (step 4).

    Returns:
        ``{code point: lowercase string}`` for every assigned code point whose single-character
        ``str.lower()`` differs from itself (about 1,400 entries; only U+0130 maps to two
        characters).

    Example:
        >>> lowercase_map()[ord("Ñ")], lowercase_map()[ord("Σ")]
        ('ñ', 'σ')
    """
    mapping = {}
    for low, high in _subtract([(0, 0x10FFFF)], character_ranges()["unstable"]):
        for code_point in range(low, high + 1):
            lowered = chr(code_point).lower()
            if lowered != chr(code_point):
                mapping[code_point] = lowered
    return mapping


def _bmp(ranges) -> list[tuple[int, int]]:
    return [(lo, min(hi, 0xFFFF)) for lo, hi in ranges if lo <= 0xFFFF]


def _astral(ranges) -> list[tuple[int, int]]:
    return [(max(lo, 0x10000), hi) for lo, hi in ranges if hi > 0xFFFF]


def _any_of(ranges) -> str:
    """A :mod:`re` alternation matching one character of ``ranges``, BMP part first."""
    return (
        f"(?:[{regex_class(_bmp(ranges))}]"
        f"|(?=[\\U00010000-\\U0010FFFF])[{regex_class(_astral(ranges))}])"
    )


@functools.cache
def _patterns(astral: bool) -> tuple[re.Pattern, re.Pattern, re.Pattern]:
    """(unstable, control, words) regexes; ``astral=False`` ones are for BMP-only text.

    ``re`` looks up BMP characters in a bitmap but scans classes above U+FFFF range by range,
    so BMP-only text (the usual case) gets bitmap-only patterns, and the others a lookahead
    that scans the astral ranges for astral characters only.
    """
    ranges = character_ranges()
    bmp = {name: regex_class(_bmp(r)) for name, r in ranges.items()}
    if not astral:
        return (
            re.compile(f"[{bmp['unstable']}]"),
            re.compile(f"[{bmp['control']}]"),
            re.compile(f"[{bmp['isolated']}]|[^{bmp['isolated']}{bmp['space']}]+"),
        )
    isolated = ranges["isolated"]
    word_char = (
        f"[^{bmp['isolated']}{bmp['space']}\\U00010000-\\U0010FFFF]"
        f"|(?=[\\U00010000-\\U0010FFFF])[^{regex_class(_astral(isolated))}]"
    )
    return (
        re.compile(_any_of(ranges["unstable"])),
        re.compile(_any_of(ranges["control"])),
        re.compile(f"{_any_of(isolated)}|(?:{word_char})+"),
    )


def normalize(text: str, lower_case: bool = True) -> str:
    """Steps 1-4 of the module docstring: U+FFFD for unstable, delete controls, NFKC, lower.

    Args:
        text: Any string.
        lower_case: Whether to lowercase.

    Returns:
        The normalised string.

    Example:
        >>> normalize("Ｃａｆé\\u200b ½")
        'café 1⁄2'
    """
    unstable, control, _ = _patterns(not text.isascii() and max(text) > "\uffff")
    if not text.isascii():  # fast paths: ASCII is all assigned, NFKC-stable
        text = unicodedata.normalize(
            NORMALIZATION_FORM, control.sub("", unstable.sub(REPLACEMENT_CHAR, text))
        )
    elif not text.isprintable():
        text = control.sub("", text)
    if not lower_case:
        return text
    # str.lower() is the per-character mapping except for the context rule of capital sigma.
    return text.translate(lowercase_map()) if "\u03a3" in text else text.lower()


def pretokenize(text: str, lower_case: bool = True) -> list[str]:
    """Steps 1-5 of the module docstring: the words WordPiece then splits.

    Example:
        >>> pretokenize("¿Qué tal?  Don't 👍🏽")
        ['¿', 'qué', 'tal', '?', 'don', "'", 't', '👍', '🏽']
    """
    text = normalize(text, lower_case)
    return _patterns(not text.isascii() and max(text) > "\uffff")[2].findall(text)


def wordpiece(
    word: str,
    vocab: dict[str, int],
    max_bytes_per_word: int = MAX_BYTES_PER_WORD,
    max_piece_chars: int | None = None,
) -> list[int]:
    """Greedy longest-match-first WordPiece of one word (step 6).

    Args:
        word: A word from :func:`pretokenize`.
        vocab: ``{token: id}``; continuation pieces are spelled ``"##piece"``.
        max_bytes_per_word: Words with more UTF-8 bytes than this become ``[UNK]``.
        max_piece_chars: Length in characters of the longest vocabulary piece (without
            ``##``); only a speed-up, ``None`` tries every length.

    Returns:
        The ids of the pieces, or ``[UNK_ID]`` when the word cannot be covered.

    Example:
        >>> wordpiece("unwanted", {"un": 4, "##want": 5, "##ed": 6})
        [4, 5, 6]
    """
    if len(word.encode("utf-8")) > max_bytes_per_word:
        return [UNK_ID]
    ids, start = [], 0
    longest = len(word) if max_piece_chars is None else max_piece_chars
    while start < len(word):
        prefix = SUFFIX_INDICATOR if start else ""
        for end in range(min(len(word), start + longest), start, -1):
            piece_id = vocab.get(prefix + word[start:end])
            if piece_id is not None:
                break
        else:
            return [UNK_ID]
        ids.append(piece_id)
        start = end
    return ids


def join_tokens(tokens: Iterable[str]) -> str:
    """Readable text from subword strings: glue ``##`` pieces, apply :data:`DETOKENIZE_RULES`.

    Example:
        >>> join_tokens(["¿", "qu", "##é", "?", "hello", ",", "world", "."])
        '¿qué? hello, world.'
    """
    text = re.sub(" " + SUFFIX_INDICATOR, "", " ".join(tokens))
    for pattern, replacement in DETOKENIZE_RULES:
        text = re.sub(pattern, replacement, text)
    return text


def _check_vocab(vocab: Sequence[str]) -> None:
    """Raises ValueError unless ``vocab`` is a usable, file-safe vocabulary."""
    if tuple(vocab[: len(RESERVED_TOKENS)]) != RESERVED_TOKENS:
        raise ValueError(f"vocab must start with {list(RESERVED_TOKENS)}, got {list(vocab[:4])}")
    seen = set()
    for token in vocab:
        if not isinstance(token, str) or not token or any(c.isspace() for c in token):
            raise ValueError(
                f"vocab tokens must be non-empty strings without spaces, got {token!r}"
            )
        if token in seen:
            raise ValueError(f"vocab must not repeat a token, got {token!r} twice")
        seen.add(token)


class WordPieceTokenizer:
    """Text <-> ids with a WordPiece vocabulary, in plain Python (no TensorFlow).

    Args:
        vocab: Tokens in id order; the first four must be ``[PAD] [UNK] [START] [END]``.
        lower_case: Lowercase before splitting (step 4 of the module docstring).
        max_bytes_per_word: Longer words (in UTF-8 bytes) become ``[UNK]``.

    Example:
        >>> tok = WordPieceTokenizer([PAD, UNK, START, END, "a", "##b", "!"])
        >>> tok.encode("AB!"), tok.tokens("ab ab"), tok.decode([2, 4, 5, 6, 3, 4])
        ([2, 4, 5, 6, 3], ['[START]', 'a', '##b', 'a', '##b', '[END]'], 'ab!')
        >>> tok.encode_batch(["a", "ab ab"]).tolist()
        [[2, 4, 3, 0, 0, 0], [2, 4, 5, 4, 5, 3]]
    """

    def __init__(
        self,
        vocab: Sequence[str],
        lower_case: bool = True,
        max_bytes_per_word: int = MAX_BYTES_PER_WORD,
    ):
        vocab = list(vocab)
        _check_vocab(vocab)
        if not isinstance(max_bytes_per_word, int) or max_bytes_per_word < 1:
            raise ValueError(
                f"max_bytes_per_word must be a positive int, got {max_bytes_per_word!r}"
            )
        self.vocab = vocab
        self.lower_case = bool(lower_case)
        self.max_bytes_per_word = max_bytes_per_word
        self._ids = {token: i for i, token in enumerate(vocab)}
        self._max_piece_chars = max(len(t.removeprefix(SUFFIX_INDICATOR)) for t in vocab)

    @property
    def vocab_size(self) -> int:
        """Number of tokens, reserved ones included."""
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` (a str, or UTF-8 bytes) wrapped in ``[START]`` ... ``[END]``."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        if not isinstance(text, str):
            raise ValueError(f"text must be a str, got {type(text).__name__}")
        ids = [START_ID]
        for word in pretokenize(text, self.lower_case):
            ids += wordpiece(word, self._ids, self.max_bytes_per_word, self._max_piece_chars)
        ids.append(END_ID)
        return ids

    def encode_batch(self, texts: Iterable[str], pad_to: int | None = None) -> np.ndarray:
        """Encodes several texts and pads them with ``PAD_ID``.

        Args:
            texts: Strings.
            pad_to: Length of the result; ``None`` pads to the longest encoding.

        Returns:
            int32 array of shape ``(batch_size, length)``.

        Raises:
            ValueError: If an encoding is longer than ``pad_to``.
        """
        encoded = [self.encode(text) for text in texts]
        longest = max((len(ids) for ids in encoded), default=0)
        length = longest if pad_to is None else pad_to
        if longest > length:
            raise ValueError(
                f"pad_to must be at least the longest encoding ({longest}), got {pad_to}"
            )
        batch = np.full((len(encoded), length), PAD_ID, dtype=np.int32)
        for row, ids in zip(batch, encoded, strict=True):
            row[: len(ids)] = ids
        return batch

    def tokens(self, text: str) -> list[str]:
        """Subword strings of ``text``, ``[START]`` and ``[END]`` included (plot labels)."""
        return [self.vocab[i] for i in self.encode(text)]

    def id_to_token(self, ids: Iterable[int]) -> list[str]:
        """Vocabulary strings of ``ids``; ValueError for ids outside ``[0, vocab_size)``."""
        ids = [int(i) for i in np.asarray(ids, dtype=np.int64).reshape(-1)]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"ids must lie in [0, {self.vocab_size}), got {bad[0]}")
        return [self.vocab[i] for i in ids]

    def decode(self, ids: Iterable[int]) -> str:
        """Readable text: skips ``[PAD]``/``[START]``, stops at the first ``[END]``.

        Args:
            ids: One sequence of ids, shape ``(length,)``.

        Returns:
            The detokenized string, e.g. ``"hello, world."``.
        """
        kept = []
        for token in self.id_to_token(ids):
            if token == END:
                break
            if token not in (PAD, START):
                kept.append(token)
        return join_tokens(kept)

    def settings(self) -> dict:
        """The JSON-able settings saved next to the vocabulary file."""
        return {
            "format": SETTINGS_FORMAT,
            "lower_case": self.lower_case,
            "max_bytes_per_word": self.max_bytes_per_word,
            "normalization": NORMALIZATION_FORM,
            "unicode_version": UNICODE_VERSION,
            "suffix_indicator": SUFFIX_INDICATOR,
            "vocab_size": self.vocab_size,
        }

    def save(self, directory: str | os.PathLike, prefix: str) -> None:
        """Writes ``<prefix>.vocab.txt`` (one token a line) and ``<prefix>.json``."""
        os.makedirs(directory, exist_ok=True)
        vocab_path, settings_path = _paths(directory, prefix)
        with open(vocab_path, "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(self.vocab) + "\n")
        with open(settings_path, "w", encoding="utf-8") as f:
            json.dump(self.settings(), f, indent=2)
            f.write("\n")

    @classmethod
    def load(cls, directory: str | os.PathLike, prefix: str) -> "WordPieceTokenizer":
        """Reads what :meth:`save` wrote; DataError names the file if it is missing or bad."""
        vocab, settings = read_vocab_files(directory, prefix)
        return cls(vocab, settings["lower_case"], settings["max_bytes_per_word"])


def _paths(directory, prefix: str) -> tuple[str, str]:
    if not prefix or os.sep in prefix or "/" in prefix:
        raise ValueError(f"prefix must be a plain file name prefix, got {prefix!r}")
    return (
        os.path.join(directory, f"{prefix}.vocab.txt"),
        os.path.join(directory, f"{prefix}.json"),
    )


def read_vocab_files(directory: str | os.PathLike, prefix: str) -> tuple[list[str], dict]:
    """Reads and checks ``<prefix>.vocab.txt`` and ``<prefix>.json`` in ``directory``.

    Returns:
        ``(vocab, settings)``.

    Raises:
        DataError: If a file is missing, unreadable or inconsistent (the message names it).
    """
    vocab_path, settings_path = _paths(directory, prefix)
    try:
        with open(settings_path, encoding="utf-8") as f:
            settings = json.load(f)
        with open(vocab_path, encoding="utf-8", newline="") as f:
            vocab = f.read().split("\n")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(
            f"cannot read tokenizer files {vocab_path}, {settings_path}: {error}"
        ) from error
    if vocab and vocab[-1] == "":
        vocab.pop()
    expected = {
        "format": SETTINGS_FORMAT,
        "normalization": NORMALIZATION_FORM,
        "unicode_version": UNICODE_VERSION,
        "suffix_indicator": SUFFIX_INDICATOR,
    }
    if not isinstance(settings, dict) or any(settings.get(k) != v for k, v in expected.items()):
        raise DataError(f"{settings_path}: not a {SETTINGS_FORMAT} settings file")
    if settings.get("vocab_size") != len(vocab):
        raise DataError(
            f"{vocab_path}: has {len(vocab)} tokens, {settings_path} says "
            f"{settings.get('vocab_size')}"
        )
    try:
        _check_vocab(vocab)
    except ValueError as error:
        raise DataError(f"{vocab_path}: {error}") from error
    return vocab, settings


class WordPiecePair:
    """Source and target tokenizers, saved together in one directory.

    The directory holds ``source.vocab.txt``, ``source.json``, ``target.vocab.txt`` and
    ``target.json``; ``tokenizer.TokenizerPair`` reads and writes the very same files.

    Args:
        source: Tokenizer of the input language.
        target: Tokenizer of the output language.

    Example:
        >>> import tempfile
        >>> pair = WordPiecePair(WordPieceTokenizer([PAD, UNK, START, END, "hi"]),
        ...                      WordPieceTokenizer([PAD, UNK, START, END, "hola"]))
        >>> with tempfile.TemporaryDirectory() as d:
        ...     pair.save(d)
        ...     WordPiecePair.load(d).target.encode("Hola")
        [2, 4, 3]
    """

    PREFIXES = ("source", "target")

    def __init__(self, source: WordPieceTokenizer, target: WordPieceTokenizer):
        self.source = source
        self.target = target

    def save(self, directory: str | os.PathLike) -> None:
        """Writes both tokenizers' files into ``directory`` (created if needed)."""
        self.source.save(directory, "source")
        self.target.save(directory, "target")

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "WordPiecePair":
        """Reads a directory written by :meth:`save` or by ``TokenizerPair.save``."""
        return cls(
            WordPieceTokenizer.load(directory, "source"),
            WordPieceTokenizer.load(directory, "target"),
        )


# Character tables, derived from Python 3.11's unicodedata (Unicode 14.0.0) with
# unicodedata.category(): _UNASSIGNED_14 is Cn + Cs, _PUNCT_SYMBOL_14 is P* + S*,
# _SPACE_SEPARATOR_14 is Z*, _FORMAT_14 is Cf. tests/test_wordpiece.py re-derives them.

_UNASSIGNED_14 = """
0378-0379 0380-0383 038B 038D 03A2 0530 0557-0558 058B-058C 0590 05C8-05CF 05EB-05EE
05F5-05FF 070E 074B-074C 07B2-07BF 07FB-07FC 082E-082F 083F 085C-085D 085F 086B-086F 088F
0892-0897 0984 098D-098E 0991-0992 09A9 09B1 09B3-09B5 09BA-09BB 09C5-09C6 09C9-09CA
09CF-09D6 09D8-09DB 09DE 09E4-09E5 09FF-0A00 0A04 0A0B-0A0E 0A11-0A12 0A29 0A31 0A34 0A37
0A3A-0A3B 0A3D 0A43-0A46 0A49-0A4A 0A4E-0A50 0A52-0A58 0A5D 0A5F-0A65 0A77-0A80 0A84 0A8E
0A92 0AA9 0AB1 0AB4 0ABA-0ABB 0AC6 0ACA 0ACE-0ACF 0AD1-0ADF 0AE4-0AE5 0AF2-0AF8 0B00 0B04
0B0D-0B0E 0B11-0B12 0B29 0B31 0B34 0B3A-0B3B 0B45-0B46 0B49-0B4A 0B4E-0B54 0B58-0B5B 0B5E
0B64-0B65 0B78-0B81 0B84 0B8B-0B8D 0B91 0B96-0B98 0B9B 0B9D 0BA0-0BA2 0BA5-0BA7 0BAB-0BAD
0BBA-0BBD 0BC3-0BC5 0BC9 0BCE-0BCF 0BD1-0BD6 0BD8-0BE5 0BFB-0BFF 0C0D 0C11 0C29 0C3A-0C3B
0C45 0C49 0C4E-0C54 0C57 0C5B-0C5C 0C5E-0C5F 0C64-0C65 0C70-0C76 0C8D 0C91 0CA9 0CB4
0CBA-0CBB 0CC5 0CC9 0CCE-0CD4 0CD7-0CDC 0CDF 0CE4-0CE5 0CF0 0CF3-0CFF 0D0D 0D11 0D45 0D49
0D50-0D53 0D64-0D65 0D80 0D84 0D97-0D99 0DB2 0DBC 0DBE-0DBF 0DC7-0DC9 0DCB-0DCE 0DD5 0DD7
0DE0-0DE5 0DF0-0DF1 0DF5-0E00 0E3B-0E3E 0E5C-0E80 0E83 0E85 0E8B 0EA4 0EA6 0EBE-0EBF 0EC5
0EC7 0ECE-0ECF 0EDA-0EDB 0EE0-0EFF 0F48 0F6D-0F70 0F98 0FBD 0FCD 0FDB-0FFF 10C6 10C8-10CC
10CE-10CF 1249 124E-124F 1257 1259 125E-125F 1289 128E-128F 12B1 12B6-12B7 12BF 12C1
12C6-12C7 12D7 1311 1316-1317 135B-135C 137D-137F 139A-139F 13F6-13F7 13FE-13FF 169D-169F
16F9-16FF 1716-171E 1737-173F 1754-175F 176D 1771 1774-177F 17DE-17DF 17EA-17EF 17FA-17FF
181A-181F 1879-187F 18AB-18AF 18F6-18FF 191F 192C-192F 193C-193F 1941-1943 196E-196F
1975-197F 19AC-19AF 19CA-19CF 19DB-19DD 1A1C-1A1D 1A5F 1A7D-1A7E 1A8A-1A8F 1A9A-1A9F
1AAE-1AAF 1ACF-1AFF 1B4D-1B4F 1B7F 1BF4-1BFB 1C38-1C3A 1C4A-1C4C 1C89-1C8F 1CBB-1CBC
1CC8-1CCF 1CFB-1CFF 1F16-1F17 1F1E-1F1F 1F46-1F47 1F4E-1F4F 1F58 1F5A 1F5C 1F5E 1F7E-1F7F
1FB5 1FC5 1FD4-1FD5 1FDC 1FF0-1FF1 1FF5 1FFF 2065 2072-2073 208F 209D-209F 20C1-20CF
20F1-20FF 218C-218F 2427-243F 244B-245F 2B74-2B75 2B96 2CF4-2CF8 2D26 2D28-2D2C 2D2E-2D2F
2D68-2D6E 2D71-2D7E 2D97-2D9F 2DA7 2DAF 2DB7 2DBF 2DC7 2DCF 2DD7 2DDF 2E5E-2E7F 2E9A
2EF4-2EFF 2FD6-2FEF 2FFC-2FFF 3040 3097-3098 3100-3104 3130 318F 31E4-31EF 321F A48D-A48F
A4C7-A4CF A62C-A63F A6F8-A6FF A7CB-A7CF A7D2 A7D4 A7DA-A7F1 A82D-A82F A83A-A83F A878-A87F
A8C6-A8CD A8DA-A8DF A954-A95E A97D-A97F A9CE A9DA-A9DD A9FF AA37-AA3F AA4E-AA4F AA5A-AA5B
AAC3-AADA AAF7-AB00 AB07-AB08 AB0F-AB10 AB17-AB1F AB27 AB2F AB6C-AB6F ABEE-ABEF ABFA-ABFF
D7A4-D7AF D7C7-D7CA D7FC-DFFF FA6E-FA6F FADA-FAFF FB07-FB12 FB18-FB1C FB37 FB3D FB3F FB42
FB45 FBC3-FBD2 FD90-FD91 FDC8-FDCE FDD0-FDEF FE1A-FE1F FE53 FE67 FE6C-FE6F FE75 FEFD-FEFE
FF00 FFBF-FFC1 FFC8-FFC9 FFD0-FFD1 FFD8-FFD9 FFDD-FFDF FFE7 FFEF-FFF8 FFFE-FFFF 1000C
10027 1003B 1003E 1004E-1004F 1005E-1007F 100FB-100FF 10103-10106 10134-10136 1018F
1019D-1019F 101A1-101CF 101FE-1027F 1029D-1029F 102D1-102DF 102FC-102FF 10324-1032C
1034B-1034F 1037B-1037F 1039E 103C4-103C7 103D6-103FF 1049E-1049F 104AA-104AF 104D4-104D7
104FC-104FF 10528-1052F 10564-1056E 1057B 1058B 10593 10596 105A2 105B2 105BA 105BD-105FF
10737-1073F 10756-1075F 10768-1077F 10786 107B1 107BB-107FF 10806-10807 10809 10836
10839-1083B 1083D-1083E 10856 1089F-108A6 108B0-108DF 108F3 108F6-108FA 1091C-1091E
1093A-1093E 10940-1097F 109B8-109BB 109D0-109D1 10A04 10A07-10A0B 10A14 10A18 10A36-10A37
10A3B-10A3E 10A49-10A4F 10A59-10A5F 10AA0-10ABF 10AE7-10AEA 10AF7-10AFF 10B36-10B38
10B56-10B57 10B73-10B77 10B92-10B98 10B9D-10BA8 10BB0-10BFF 10C49-10C7F 10CB3-10CBF
10CF3-10CF9 10D28-10D2F 10D3A-10E5F 10E7F 10EAA 10EAE-10EAF 10EB2-10EFF 10F28-10F2F
10F5A-10F6F 10F8A-10FAF 10FCC-10FDF 10FF7-10FFF 1104E-11051 11076-1107E 110C3-110CC
110CE-110CF 110E9-110EF 110FA-110FF 11135 11148-1114F 11177-1117F 111E0 111F5-111FF 11212
1123F-1127F 11287 11289 1128E 1129E 112AA-112AF 112EB-112EF 112FA-112FF 11304 1130D-1130E
11311-11312 11329 11331 11334 1133A 11345-11346 11349-1134A 1134E-1134F 11351-11356
11358-1135C 11364-11365 1136D-1136F 11375-113FF 1145C 11462-1147F 114C8-114CF 114DA-1157F
115B6-115B7 115DE-115FF 11645-1164F 1165A-1165F 1166D-1167F 116BA-116BF 116CA-116FF
1171B-1171C 1172C-1172F 11747-117FF 1183C-1189F 118F3-118FE 11907-11908 1190A-1190B 11914
11917 11936 11939-1193A 11947-1194F 1195A-1199F 119A8-119A9 119D8-119D9 119E5-119FF
11A48-11A4F 11AA3-11AAF 11AF9-11BFF 11C09 11C37 11C46-11C4F 11C6D-11C6F 11C90-11C91 11CA8
11CB7-11CFF 11D07 11D0A 11D37-11D39 11D3B 11D3E 11D48-11D4F 11D5A-11D5F 11D66 11D69 11D8F
11D92 11D99-11D9F 11DAA-11EDF 11EF9-11FAF 11FB1-11FBF 11FF2-11FFE 1239A-123FF 1246F
12475-1247F 12544-12F8F 12FF3-12FFF 1342F 13439-143FF 14647-167FF 16A39-16A3F 16A5F
16A6A-16A6D 16ABF 16ACA-16ACF 16AEE-16AEF 16AF6-16AFF 16B46-16B4F 16B5A 16B62 16B78-16B7C
16B90-16E3F 16E9B-16EFF 16F4B-16F4E 16F88-16F8E 16FA0-16FDF 16FE5-16FEF 16FF2-16FFF
187F8-187FF 18CD6-18CFF 18D09-1AFEF 1AFF4 1AFFC 1AFFF 1B123-1B14F 1B153-1B163 1B168-1B16F
1B2FC-1BBFF 1BC6B-1BC6F 1BC7D-1BC7F 1BC89-1BC8F 1BC9A-1BC9B 1BCA4-1CEFF 1CF2E-1CF2F
1CF47-1CF4F 1CFC4-1CFFF 1D0F6-1D0FF 1D127-1D128 1D1EB-1D1FF 1D246-1D2DF 1D2F4-1D2FF
1D357-1D35F 1D379-1D3FF 1D455 1D49D 1D4A0-1D4A1 1D4A3-1D4A4 1D4A7-1D4A8 1D4AD 1D4BA 1D4BC
1D4C4 1D506 1D50B-1D50C 1D515 1D51D 1D53A 1D53F 1D545 1D547-1D549 1D551 1D6A6-1D6A7
1D7CC-1D7CD 1DA8C-1DA9A 1DAA0 1DAB0-1DEFF 1DF1F-1DFFF 1E007 1E019-1E01A 1E022 1E025
1E02B-1E0FF 1E12D-1E12F 1E13E-1E13F 1E14A-1E14D 1E150-1E28F 1E2AF-1E2BF 1E2FA-1E2FE
1E300-1E7DF 1E7E7 1E7EC 1E7EF 1E7FF 1E8C5-1E8C6 1E8D7-1E8FF 1E94C-1E94F 1E95A-1E95D
1E960-1EC70 1ECB5-1ED00 1ED3E-1EDFF 1EE04 1EE20 1EE23 1EE25-1EE26 1EE28 1EE33 1EE38 1EE3A
1EE3C-1EE41 1EE43-1EE46 1EE48 1EE4A 1EE4C 1EE50 1EE53 1EE55-1EE56 1EE58 1EE5A 1EE5C 1EE5E
1EE60 1EE63 1EE65-1EE66 1EE6B 1EE73 1EE78 1EE7D 1EE7F 1EE8A 1EE9C-1EEA0 1EEA4 1EEAA
1EEBC-1EEEF 1EEF2-1EFFF 1F02C-1F02F 1F094-1F09F 1F0AF-1F0B0 1F0C0 1F0D0 1F0F6-1F0FF
1F1AE-1F1E5 1F203-1F20F 1F23C-1F23F 1F249-1F24F 1F252-1F25F 1F266-1F2FF 1F6D8-1F6DC
1F6ED-1F6EF 1F6FD-1F6FF 1F774-1F77F 1F7D9-1F7DF 1F7EC-1F7EF 1F7F1-1F7FF 1F80C-1F80F
1F848-1F84F 1F85A-1F85F 1F888-1F88F 1F8AE-1F8AF 1F8B2-1F8FF 1FA54-1FA5F 1FA6E-1FA6F
1FA75-1FA77 1FA7D-1FA7F 1FA87-1FA8F 1FAAD-1FAAF 1FABB-1FABF 1FAC6-1FACF 1FADA-1FADF
1FAE8-1FAEF 1FAF7-1FAFF 1FB93 1FBCB-1FBEF 1FBFA-1FFFF 2A6E0-2A6FF 2B739-2B73F 2B81E-2B81F
2CEA2-2CEAF 2EBE1-2F7FF 2FA1E-2FFFF 3134B-E0000 E0002-E001F E0080-E00FF E01F0-EFFFF
FFFFE-FFFFF 10FFFE-10FFFF
"""

_PUNCT_SYMBOL_14 = """
0021-002F 003A-0040 005B-0060 007B-007E 00A1-00A9 00AB-00AC 00AE-00B1 00B4 00B6-00B8 00BB
00BF 00D7 00F7 02C2-02C5 02D2-02DF 02E5-02EB 02ED 02EF-02FF 0375 037E 0384-0385 0387 03F6
0482 055A-055F 0589-058A 058D-058F 05BE 05C0 05C3 05C6 05F3-05F4 0606-060F 061B 061D-061F
066A-066D 06D4 06DE 06E9 06FD-06FE 0700-070D 07F6-07F9 07FE-07FF 0830-083E 085E 0888
0964-0965 0970 09F2-09F3 09FA-09FB 09FD 0A76 0AF0-0AF1 0B70 0BF3-0BFA 0C77 0C7F 0C84 0D4F
0D79 0DF4 0E3F 0E4F 0E5A-0E5B 0F01-0F17 0F1A-0F1F 0F34 0F36 0F38 0F3A-0F3D 0F85 0FBE-0FC5
0FC7-0FCC 0FCE-0FDA 104A-104F 109E-109F 10FB 1360-1368 1390-1399 1400 166D-166E 169B-169C
16EB-16ED 1735-1736 17D4-17D6 17D8-17DB 1800-180A 1940 1944-1945 19DE-19FF 1A1E-1A1F
1AA0-1AA6 1AA8-1AAD 1B5A-1B6A 1B74-1B7E 1BFC-1BFF 1C3B-1C3F 1C7E-1C7F 1CC0-1CC7 1CD3 1FBD
1FBF-1FC1 1FCD-1FCF 1FDD-1FDF 1FED-1FEF 1FFD-1FFE 2010-2027 2030-205E 207A-207E 208A-208E
20A0-20C0 2100-2101 2103-2106 2108-2109 2114 2116-2118 211E-2123 2125 2127 2129 212E
213A-213B 2140-2144 214A-214D 214F 218A-218B 2190-2426 2440-244A 249C-24E9 2500-2775
2794-2B73 2B76-2B95 2B97-2BFF 2CE5-2CEA 2CF9-2CFC 2CFE-2CFF 2D70 2E00-2E2E 2E30-2E5D
2E80-2E99 2E9B-2EF3 2F00-2FD5 2FF0-2FFB 3001-3004 3008-3020 3030 3036-3037 303D-303F
309B-309C 30A0 30FB 3190-3191 3196-319F 31C0-31E3 3200-321E 322A-3247 3250 3260-327F
328A-32B0 32C0-33FF 4DC0-4DFF A490-A4C6 A4FE-A4FF A60D-A60F A673 A67E A6F2-A6F7 A700-A716
A720-A721 A789-A78A A828-A82B A836-A839 A874-A877 A8CE-A8CF A8F8-A8FA A8FC A92E-A92F A95F
A9C1-A9CD A9DE-A9DF AA5C-AA5F AA77-AA79 AADE-AADF AAF0-AAF1 AB5B AB6A-AB6B ABEB FB29
FBB2-FBC2 FD3E-FD4F FDCF FDFC-FDFF FE10-FE19 FE30-FE52 FE54-FE66 FE68-FE6B FF01-FF0F
FF1A-FF20 FF3B-FF40 FF5B-FF65 FFE0-FFE6 FFE8-FFEE FFFC-FFFD 10100-10102 10137-1013F
10179-10189 1018C-1018E 10190-1019C 101A0 101D0-101FC 1039F 103D0 1056F 10857 10877-10878
1091F 1093F 10A50-10A58 10A7F 10AC8 10AF0-10AF6 10B39-10B3F 10B99-10B9C 10EAD 10F55-10F59
10F86-10F89 11047-1104D 110BB-110BC 110BE-110C1 11140-11143 11174-11175 111C5-111C8 111CD
111DB 111DD-111DF 11238-1123D 112A9 1144B-1144F 1145A-1145B 1145D 114C6 115C1-115D7
11641-11643 11660-1166C 116B9 1173C-1173F 1183B 11944-11946 119E2 11A3F-11A46 11A9A-11A9C
11A9E-11AA2 11C41-11C45 11C70-11C71 11EF7-11EF8 11FD5-11FF1 11FFF 12470-12474 12FF1-12FF2
16A6E-16A6F 16AF5 16B37-16B3F 16B44-16B45 16E97-16E9A 16FE2 1BC9C 1BC9F 1CF50-1CFC3
1D000-1D0F5 1D100-1D126 1D129-1D164 1D16A-1D16C 1D183-1D184 1D18C-1D1A9 1D1AE-1D1EA
1D200-1D241 1D245 1D300-1D356 1D6C1 1D6DB 1D6FB 1D715 1D735 1D74F 1D76F 1D789 1D7A9 1D7C3
1D800-1D9FF 1DA37-1DA3A 1DA6D-1DA74 1DA76-1DA83 1DA85-1DA8B 1E14F 1E2FF 1E95E-1E95F 1ECAC
1ECB0 1ED2E 1EEF0-1EEF1 1F000-1F02B 1F030-1F093 1F0A0-1F0AE 1F0B1-1F0BF 1F0C1-1F0CF
1F0D1-1F0F5 1F10D-1F1AD 1F1E6-1F202 1F210-1F23B 1F240-1F248 1F250-1F251 1F260-1F265
1F300-1F6D7 1F6DD-1F6EC 1F6F0-1F6FC 1F700-1F773 1F780-1F7D8 1F7E0-1F7EB 1F7F0 1F800-1F80B
1F810-1F847 1F850-1F859 1F860-1F887 1F890-1F8AD 1F8B0-1F8B1 1F900-1FA53 1FA60-1FA6D
1FA70-1FA74 1FA78-1FA7C 1FA80-1FA86 1FA90-1FAAC 1FAB0-1FABA 1FAC0-1FAC5 1FAD0-1FAD9
1FAE0-1FAE7 1FAF0-1FAF6 1FB00-1FB92 1FB94-1FBCA
"""

_SPACE_SEPARATOR_14 = """
0020 00A0 1680 2000-200A 2028-2029 202F 205F 3000
"""

_FORMAT_14 = """
00AD 0600-0605 061C 06DD 070F 0890-0891 08E2 180E 200B-200F 202A-202E 2060-2064 2066-206F
FEFF FFF9-FFFB 110BD 110CD 13430-13438 1BCA0-1BCA3 1D173-1D17A E0001 E0020-E007F
"""
