"""Tests of the in-graph tokenizer: parity with seq2seq_attn.wordpiece, SavedModel, vocab learning.

The pure-Python tokenizer (tested on hand-written goldens in test_wordpiece.py) is the
reference: every check here compares the TensorFlow ops with it, id for id, string for string.
"""

import gzip
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

from seq2seq_attn import tokenizer as T
from seq2seq_attn import wordpiece as wp

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bible-en-es.tsv.gz"

SENTENCES = [
    "In the beginning, God created the heavens and the earth.",
    "God said, “Let there be light,” and there was light.",
    "Don't you know? It's the well-known king's (royal) decree: 3:16 and 1,000 men...",
    'He said "hello" and left.',
    "En el principio creó Dios los cielos y la tierra.",
    "¿Qué es esto? ¡Es la luz! «Sí», dijo él; después, el niño comió piñas.",
    "ÁRBOL, ÉXITO, ÍNDICE, ÓRGANO, ÚLTIMO, ÑANDÚ, pingüino, Über, façade, naïve.",
    "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ ｔｅｘｔ ①②③ ﬁne ½ x² ㎏",
]
HARD = [
    "",
    " ",
    "\t\r\n",
    "\x00",
    "a\x00b",
    "nul\x00in\x00middle",
    "tab\there",
    "line\r\nbreak",
    "zero\u200dwidth\u200cjoiners",
    "soft\u00adhyphen",
    "\ufeffbom",
    "e\u0301 a\u0300 n\u0303",
    "\u0301 leading combining mark",
    "!\u0301",
    "日本語のテキストです。",
    "中文，标点！",
    "مرحبا بالعالم، كيف حالك؟",
    "שלום עולם",
    "Привет, мир!",
    "Γειά σου Κόσμε ΟΔΟΣ ΣΑΣ",
    "👍🏽 👨‍👩‍👧 🇪🇸 ❤️ 🙂",
    "ok👍🏿!",
    "!!!",
    "...?!¿¡",
    "---",
    "「」『』【】",
    "x" * 500,
    "a" * 100,
    "a" * 101,
    "é" * 50,
    "é" * 51,
    "İstanbul IIı",
    "ǅ ǈ ß ẞ Ⅻ ㍿",
    "mixed日本english",
    "tabs\tand\u00a0nbsp\u2003em\u3000ideographic",
    "\x85nel\x1cfs\x1f",
    "\ud7ff\ue000\uf8ff",
    "\U0001ccd6\U0001e030 new in unicode 15/16",
    "\U0010fffd private",
    "[UNK] [START] ##",
    "ﷺ ﷽",
    "ǰ̣",
    "ⓐⓑⓒ",
    "ℌℍℎ",
    "1⁄2 ¼ ¾",
]


def _synthetic(n, seed=0):
    """Random strings mixing scripts, marks, controls, spaces, punctuation and emoji."""
    rng = random.Random(seed)
    pools = [
        "abcdefghijklmnopqrstuvwxyz",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "áéíóúñüÁÉÍÓÚÑÜçÇ",
        "αβγΣσςΩ",
        "абвгдЖЗИ",
        "日本語中文漢字",
        "ひらがなカタカナ",
        "مرحبا",
        "שלום",
        ".,;:!?¿¡'\"()[]«»“”‘’-—…",
        "\u0301\u0308\u0323\u0327",
        "\x00\x01\x1f\x7f\u200b\u200d",
        "  \t\n\r\u00a0\u2003",
        "😀👍🏽🏿❤️🇪🇸",
        "0123456789",
        "ﬁﬂ½²①Ａ",
        "\U0001ccd6\U00010570",
    ]
    texts = []
    for _ in range(n):
        length = rng.randint(0, 40)
        texts.append("".join(rng.choice(rng.choice(pools)) for _ in range(length)))
    return texts


TEXTS = SENTENCES + HARD + _synthetic(300)


@pytest.fixture(scope="module")
def vocab():
    return T.build_vocab(TEXTS * 3, vocab_size=800, lower_thresh=2)


@pytest.fixture(scope="module")
def graph_tok(vocab):
    return T.GraphTokenizer(vocab)


def _ids(ragged):
    return [list(row) for row in ragged.to_list()]


def test_vocab_starts_with_reserved_and_fits(vocab):
    assert vocab[:4] == ["[PAD]", "[UNK]", "[START]", "[END]"]
    assert len(vocab) <= 800 and len(set(vocab)) == len(vocab)
    assert {"hello", "##ne", "¿"} & set(vocab)  # sanity: learned words and pieces


@pytest.mark.parametrize("lower_case", [True, False])
def test_tokenize_equals_python_on_hard_and_synthetic_inputs(vocab, lower_case):
    graph_tok = T.GraphTokenizer(vocab, lower_case=lower_case)
    py_tok = wp.WordPieceTokenizer(vocab, lower_case=lower_case)
    got = _ids(graph_tok.tokenize(tf.constant(TEXTS)))
    mismatches = [
        (t, g, py_tok.encode(t)) for t, g in zip(TEXTS, got, strict=True) if g != py_tok.encode(t)
    ]
    assert not mismatches, mismatches[:5]
    assert graph_tok.tokenize(tf.constant(TEXTS)).dtype == tf.int32
    assert got[TEXTS.index("")] == [wp.START_ID, wp.END_ID]
    assert got[TEXTS.index("x" * 500)] == [wp.START_ID, wp.UNK_ID, wp.END_ID]


def test_pretokenize_equals_python_on_every_code_point(graph_tok):
    # Every code point (surrogates aside) in runs of 61, with and without spaces between,
    # and in a final-sigma context, so normalisation, lowercase and splitting all see it.
    points = [c for c in range(1, 0x110000) if not 0xD800 <= c <= 0xDFFF]
    chunks = ["".join(map(chr, points[i : i + 61])) for i in range(0, len(points), 61)]
    texts = chunks + [" ".join(c) for c in chunks[::7]] + ["ΑΣ" + c + "Σ" for c in chunks[3::7]]
    got = graph_tok.pretokenize(tf.constant([t.encode("utf-8") for t in texts])).to_list()
    mismatches = [
        t
        for t, g in zip(texts, got, strict=True)
        if [w.decode("utf-8") for w in g] != wp.pretokenize(t)
    ]
    assert not mismatches, [ascii(m) for m in mismatches[:3]]


@pytest.mark.slow  # a subprocess importing TensorFlow: about 10 s
def test_lowercase_ignores_the_process_locale(graph_tok, tmp_path):
    # tf.strings.lower would follow LANG (tr_TR: "I" -> "ı"); the tokenizer must not.
    tf.saved_model.save(graph_tok, str(tmp_path))
    code = (
        "import sys, tensorflow as tf, tensorflow_text; m = tf.saved_model.load(sys.argv[1]); "
        "print(m.pretokenize(tf.constant(['I İ Ì'])).to_list())"
    )
    env = dict(os.environ, LANG="tr_TR.UTF-8", LC_ALL="tr_TR.UTF-8", TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    expected = [[w.encode() for w in wp.pretokenize("I İ Ì")]]
    assert out == repr(expected) and expected == [[b"i", "i\u0307".encode(), "ì".encode()]]


def test_max_bytes_per_word_boundary_matches(graph_tok, vocab):
    py_tok = wp.WordPieceTokenizer(vocab)
    words = ["a" * 99, "a" * 100, "a" * 101, "é" * 50, "é" * 51, "日" + "a" * 98]
    got = _ids(graph_tok.tokenize(tf.constant(words)))
    assert got == [py_tok.encode(w) for w in words]
    assert got[1] != [2, 1, 3] and got[2] == [2, 1, 3] and got[4] == [2, 1, 3]


def test_detokenize_equals_python_decode(graph_tok, vocab):
    py_tok = wp.WordPieceTokenizer(vocab)
    ids = graph_tok.tokenize(tf.constant(TEXTS)).to_tensor()  # (batch, longest), 0-padded
    rng = np.random.default_rng(0)
    noise = rng.integers(0, len(vocab), size=(200, 30)).astype(np.int32)  # any id sequence
    for batch in (ids.numpy(), noise):
        got = [s.decode("utf-8") for s in graph_tok.detokenize(batch).numpy()]
        assert got == [py_tok.decode(row) for row in batch]


def test_detokenize_is_readable(graph_tok):
    ids = graph_tok.tokenize(tf.constant(SENTENCES[:2] + SENTENCES[4:6])).to_tensor()
    assert [s.decode() for s in graph_tok.detokenize(ids).numpy()] == [
        "in the beginning, god created the heavens and the earth.",
        "god said, “let there be light,” and there was light.",
        "en el principio creó dios los cielos y la tierra.",
        "¿qué es esto? ¡es la luz! «sí», dijo él; después, el niño comió piñas.",
    ]


def test_saved_model_gives_the_same_results(graph_tok, vocab, tmp_path):
    tf.saved_model.save(graph_tok, str(tmp_path))
    loaded = tf.saved_model.load(str(tmp_path))
    strings = tf.constant(TEXTS)
    ids = graph_tok.tokenize(strings)
    assert _ids(loaded.tokenize(strings)) == _ids(ids)
    dense = ids.to_tensor()
    np.testing.assert_array_equal(
        loaded.detokenize(dense).numpy(), graph_tok.detokenize(dense).numpy()
    )
    np.testing.assert_array_equal(loaded.lookup(dense).numpy(), graph_tok.lookup(dense).numpy())
    assert loaded.tokens(strings[:1]).to_list() == [
        [t.encode() for t in wp.WordPieceTokenizer(vocab).tokens(TEXTS[0])]
    ]
    assert int(loaded.get_vocab_size()) == len(vocab)


def test_tokenizer_pair_files_serve_both_implementations(tmp_path):
    pair = T.TokenizerPair.build(SENTENCES[:4] * 5, SENTENCES[4:] * 5, 200, 220, lower_thresh=2)
    pair.save(tmp_path)
    twin = wp.WordPiecePair.load(tmp_path)
    assert twin.source.vocab == pair.source.vocab and twin.target.vocab == pair.target.vocab
    reloaded = T.TokenizerPair.load(tmp_path)
    got = _ids(reloaded.target.tokenize(tf.constant(SENTENCES)))
    assert got == [twin.target.encode(s) for s in SENTENCES]


def test_fast_learner_equals_tensorflow_text_learner():
    counts = T.count_words(TEXTS[:200])
    words = learner.get_input_words(
        sorted(counts.items(), key=lambda item: (-item[1], item[0])), list(wp.RESERVED_TOKENS), 50
    )
    params = learner.Params(
        None, 1, 4, None, 50, 1000, 500, 0.05, True, "##", list(wp.RESERVED_TOKENS)
    )
    for thresh in (1, 2, 3, 5, 9):
        assert T._learn_with_thresh(words, thresh, params) == learner.learn_with_thresh(
            words, thresh, params
        )


def test_count_words_matches_graph_pretokenizer(graph_tok):
    words = graph_tok.pretokenize(tf.constant(TEXTS)).flat_values.numpy()
    expected = {}
    for word in words:
        expected[word.decode("utf-8")] = expected.get(word.decode("utf-8"), 0) + 1
    assert dict(T.count_words(TEXTS)) == expected


def test_build_vocab_rejects_bad_sizes():
    with pytest.raises(ValueError, match="vocab_size"):
        T.build_vocab(SENTENCES, vocab_size=4)
    with pytest.raises(ValueError, match="vocab_size must be at least"):
        T.build_vocab(SENTENCES, vocab_size=20)
    with pytest.raises(ValueError, match="texts"):
        T.build_vocab(["", " "], vocab_size=100)


@pytest.mark.slow
def test_whole_bible_corpus_graph_equals_python():
    """Vocabularies from the train split; TF ids == Python ids for every en and es line."""
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        header, *rows = [line.rstrip("\n").split("\t") for line in f]
    assert header == ["ref", "split", "en", "es"]
    for column in (2, 3):
        texts = [row[column] for row in rows]
        vocab = T.build_vocab([r[column] for r in rows if r[1] == "train"], vocab_size=8000)
        # Pieces need a count >= 10 (the learner's lower_thresh), so the Bible's vocabularies
        # stop short of 8000 tokens.
        assert 2000 <= len(vocab) <= 8000
        graph_tok, py_tok = T.GraphTokenizer(vocab), wp.WordPieceTokenizer(vocab)
        got = _ids(graph_tok.tokenize(tf.constant(texts)))
        expected = [py_tok.encode(t) for t in texts]
        mismatches = [(t, g, e) for t, g, e in zip(texts, got, expected, strict=True) if g != e]
        assert not mismatches, mismatches[:3]
        dense = tf.ragged.constant(got, dtype=tf.int32).to_tensor()
        decoded = [s.decode("utf-8") for s in graph_tok.detokenize(dense).numpy()]
        assert decoded == [py_tok.decode(ids) for ids in expected]
        unk_rate = sum(ids.count(wp.UNK_ID) for ids in expected) / sum(map(len, expected))
        assert unk_rate < 0.001
