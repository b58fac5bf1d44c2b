"""Tests of the TensorFlow-free tokenizer (seq2seq_attn.wordpiece).

Golden values are written by hand from the Unicode standard and the WordPiece algorithm;
parity with the in-graph tokenizer is in test_tokenizer.py.
"""

import json
import subprocess
import sys
import unicodedata

import numpy as np
import pytest

from seq2seq_attn import wordpiece as wp
from seq2seq_attn.errors import DataError

VOCAB = [
    wp.PAD,
    wp.UNK,
    wp.START,
    wp.END,
    ",",
    ".",
    "¿",
    "?",
    "hello",
    "world",
    "un",
    "##aff",
    "##able",
    "qu",
    "##é",
    "a",
    "##a",
    "é",
]


@pytest.fixture
def tok():
    return wp.WordPieceTokenizer(VOCAB)


def test_import_does_not_pull_tensorflow():
    code = "import seq2seq_attn.wordpiece, sys; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_reserved_ids():
    assert wp.RESERVED_TOKENS == ("[PAD]", "[UNK]", "[START]", "[END]")
    assert [wp.PAD_ID, wp.UNK_ID, wp.START_ID, wp.END_ID] == [0, 1, 2, 3]


def _ranges_from_unicodedata(predicate):
    ranges, start = [], None
    for code_point in range(0x110001):
        inside = code_point < 0x110000 and predicate(unicodedata.category(chr(code_point)))
        if inside and start is None:
            start = code_point
        if not inside and start is not None:
            ranges.append((start, code_point - 1))
            start = None
    return tuple(ranges)


@pytest.mark.skipif(unicodedata.unidata_version != "14.0.0", reason="tables are Unicode 14.0")
def test_tables_match_unicode_14():
    assert wp._parse_ranges(wp._UNASSIGNED_14) == _ranges_from_unicodedata(
        lambda c: c in ("Cn", "Cs")
    )
    assert wp._parse_ranges(wp._PUNCT_SYMBOL_14) == _ranges_from_unicodedata(lambda c: c[0] in "PS")
    assert wp._parse_ranges(wp._SPACE_SEPARATOR_14) == _ranges_from_unicodedata(
        lambda c: c[0] == "Z"
    )
    assert wp._parse_ranges(wp._FORMAT_14) == _ranges_from_unicodedata(lambda c: c == "Cf")


def test_character_classes_are_disjoint():
    seen = {}
    for name, ranges in wp.character_ranges().items():
        for low, high in ranges:
            for code_point in (low, high):
                assert seen.setdefault(code_point, name) == name, hex(code_point)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Ｃａｆé", "café"),  # fullwidth -> ASCII (NFKC), accent kept
        ("e\u0301", "é"),  # composed
        ("ﬁ ½", "fi 1\u20442"),  # compatibility decompositions
        ("a\x00b\x07c", "abc"),  # controls deleted
        ("a\u200db\u00adc\ufeff", "abc"),  # ZWJ, soft hyphen, BOM deleted
        ("x\ty\r\nz", "x\ty\r\nz"),  # whitespace controls kept
        ("ΟΔΟΣ", "οδοσ"),  # per-character lowercase: no final sigma
        ("İ", "i\u0307"),  # the one two-character lowercase
        ("ÀÉÎÕÜÑ", "àéîõüñ"),
        ("\U0001ccd6", "\ufffd"),  # assigned only in Unicode 16
        ("\ud800", "\ufffd"),  # lone surrogate
        ("", ""),
    ],
)
def test_normalize(text, expected):
    assert wp.normalize(text) == expected


def test_normalize_keeps_case_when_asked():
    assert wp.normalize("ÑANDÚ Σ", lower_case=False) == "ÑANDÚ Σ"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("¿Qué tal?  Don't", ["¿", "qué", "tal", "?", "don", "'", "t"]),
        ("hello,world...", ["hello", ",", "world", ".", ".", "."]),
        ("日本語です", ["日", "本", "語", "です"]),  # ideographs alone, kana run together
        ("مرحبا بالعالم", ["مرحبا", "بالعالم"]),
        ("ok👍🏽!", ["ok", "👍", "🏽", "!"]),  # emoji and skin tone are symbols
        ("a\u2003b\u3000c\x85d", ["a", "b", "c", "d"]),  # em space, ideographic space, NEL
        ("!?¡¿", ["!", "?", "¡", "¿"]),
        (" \t\r\n ", []),
        ("", []),
        ("ne\u0301e", ["n\u00e9e"]),  # NFKC composes e + U+0301
    ],
)
def test_pretokenize(text, expected):
    assert wp.pretokenize(text) == expected


@pytest.mark.parametrize(
    "word, expected",
    [
        ("unaffable", [10, 11, 12]),
        ("hello", [8]),
        ("unhello", [1]),  # "##hello" is not in the vocabulary: the whole word is unknown
        ("qué", [13, 14]),
        ("aaa", [15, 16, 16]),
        ("x", [1]),
    ],
)
def test_wordpiece_greedy_longest_match(word, expected):
    vocab = {token: i for i, token in enumerate(VOCAB)}
    assert wp.wordpiece(word, vocab) == expected
    assert wp.wordpiece(word, vocab, max_piece_chars=5) == expected


def test_wordpiece_max_bytes_per_word_counts_utf8_bytes():
    vocab = {token: i for i, token in enumerate(VOCAB)}
    assert wp.wordpiece("a" * 100, vocab) == [15] + [16] * 99
    assert wp.wordpiece("a" * 101, vocab) == [wp.UNK_ID]
    assert wp.wordpiece("é" * 50, vocab) == [17] + [14] * 49  # 100 bytes
    assert wp.wordpiece("é" * 51, vocab) == [wp.UNK_ID]  # 102 bytes


def test_encode_and_tokens(tok):
    assert tok.encode("Hello, WORLD.") == [2, 8, 4, 9, 5, 3]
    assert tok.encode("") == [2, 3]
    assert tok.encode("¿Qué?".encode()) == [2, 6, 13, 14, 7, 3]
    assert tok.tokens("¿Qué?") == ["[START]", "¿", "qu", "##é", "?", "[END]"]
    assert tok.encode("a" * 500) == [2, 1, 3]


def test_encode_batch_pads_with_zero(tok):
    batch = tok.encode_batch(["hello", "hello, world."], pad_to=8)
    assert batch.dtype == np.int32
    np.testing.assert_array_equal(batch, [[2, 8, 3, 0, 0, 0, 0, 0], [2, 8, 4, 9, 5, 3, 0, 0]])
    assert tok.encode_batch(["hello", ""]).shape == (2, 3)
    with pytest.raises(ValueError, match="pad_to"):
        tok.encode_batch(["hello, world."], pad_to=3)


def test_decode(tok):
    assert tok.decode([2, 8, 4, 9, 5, 3, 8, 8]) == "hello, world."  # stops at [END]
    assert tok.decode(np.array([0, 2, 6, 13, 14, 7, 0], np.int32)) == "¿qué?"
    assert tok.decode([]) == ""
    assert tok.decode([1, 10, 11, 12]) == "[UNK] unaffable"
    for bad in ([len(VOCAB)], [-1]):
        with pytest.raises(ValueError, match="ids"):
            tok.decode(bad)


@pytest.mark.parametrize(
    "tokens, expected",
    [
        (["hello", ",", "world", "."], "hello, world."),
        (["¿", "qu", "##é", "?", "¡", "hola", "!"], "¿qué? ¡hola!"),
        (["god", "’", "s", "word"], "god’s word"),
        (["don", "'", "t", "go"], "don't go"),
        (
            ["he", "said", ",", "“", "let", "there", "be", "light", ",", "”", "and"],
            "he said, “let there be light,” and",
        ),
        (["say", '"', "hi", '"', "and", '"', "bye", '"'], 'say "hi" and "bye"'),
        (["in", "3", ":", "16", "and", "1", ",", "000"], "in 3:16 and 1,000"),
        (["well", "-", "known", "(", "yes", ")", "…"], "well-known (yes)…"),
        (["«", "sí", "»", "👍", "🏽"], "«sí» 👍🏽"),
        (["##ing", "x"], "##ing x"),
    ],
)
def test_join_tokens(tokens, expected):
    assert wp.join_tokens(tokens) == expected


@pytest.mark.parametrize(
    "vocab, match",
    [
        (["[UNK]", "[PAD]", "[START]", "[END]"], "must start with"),
        (VOCAB + ["hello"], "repeat"),
        (VOCAB + ["a b"], "without spaces"),
        (VOCAB + [""], "non-empty"),
    ],
)
def test_bad_vocab_raises(vocab, match):
    with pytest.raises(ValueError, match=match):
        wp.WordPieceTokenizer(vocab)


def test_save_load_roundtrip(tok, tmp_path):
    tok.save(tmp_path, "source")
    assert (tmp_path / "source.vocab.txt").read_text(encoding="utf-8").split("\n")[:5] == VOCAB[:5]
    loaded = wp.WordPieceTokenizer.load(tmp_path, "source")
    assert loaded.vocab == VOCAB and loaded.lower_case and loaded.vocab_size == len(VOCAB)
    cased = wp.WordPieceTokenizer(VOCAB, lower_case=False, max_bytes_per_word=7)
    cased.save(tmp_path, "target")
    loaded = wp.WordPieceTokenizer.load(tmp_path, "target")
    assert (loaded.lower_case, loaded.max_bytes_per_word) == (False, 7)


def test_load_errors_are_data_errors(tok, tmp_path):
    with pytest.raises(DataError, match="source.vocab.txt"):
        wp.WordPieceTokenizer.load(tmp_path, "source")
    tok.save(tmp_path, "source")
    vocab_file, settings_file = tmp_path / "source.vocab.txt", tmp_path / "source.json"
    vocab_file.write_text("\n".join(VOCAB[:-1]) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="tokens"):
        wp.WordPieceTokenizer.load(tmp_path, "source")
    vocab_file.write_text("\n".join(VOCAB[1:] + ["zz"]) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="must start with"):
        wp.WordPieceTokenizer.load(tmp_path, "source")
    settings_file.write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="source.json"):
        wp.WordPieceTokenizer.load(tmp_path, "source")
    settings_file.write_text(json.dumps({"format": "other"}), encoding="utf-8")
    with pytest.raises(DataError, match="settings"):
        wp.WordPieceTokenizer.load(tmp_path, "source")


def test_pair_roundtrip(tmp_path):
    pair = wp.WordPiecePair(
        wp.WordPieceTokenizer(VOCAB), wp.WordPieceTokenizer(VOCAB[:6], lower_case=False)
    )
    pair.save(tmp_path / "tokenizer")
    assert sorted(p.name for p in (tmp_path / "tokenizer").iterdir()) == [
        "source.json",
        "source.vocab.txt",
        "target.json",
        "target.vocab.txt",
    ]
    loaded = wp.WordPiecePair.load(tmp_path / "tokenizer")
    assert loaded.source.vocab == VOCAB and loaded.target.vocab == VOCAB[:6]
    assert not loaded.target.lower_case
