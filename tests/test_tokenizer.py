"""SentencePiece on the TensorFlow-free side (seq2seq_attn/tokenizer.py): training, ids,
lossless decoding, save/load, the config checks and the old WordPiece directories."""

import gzip
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from seq2seq_attn.errors import UserError
from seq2seq_attn.tokenizer import (
    END_ID,
    PAD_ID,
    START_ID,
    UNK_ID,
    SentencePieceTokenizer,
    TokenizerPair,
    check_options,
)
from tests.tokenizer_inputs import HARD, SENTENCES

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bible-en-es.tsv.gz"


def bible(split="train", limit=None):
    """(en, es) pairs of one split of the embedded corpus."""
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f][1:]
    pairs = [(en, es) for _, s, en, es in rows if s == split]
    return pairs[:limit]


@pytest.fixture(scope="module")
def pair():
    """Cased unigram models with byte fallback, trained on 4000 training verses."""
    pairs = bible(limit=4000)
    return TokenizerPair.train(
        [en for en, _ in pairs],
        [es for _, es in pairs],
        source_vocab_size=1000,
        target_vocab_size=1000,
    )


def test_special_ids_and_case(pair):
    ids = pair.source.encode("In the beginning God created the heavens.")
    assert ids[0] == START_ID and ids[-1] == END_ID and PAD_ID not in ids
    assert pair.source.id_to_token([PAD_ID, UNK_ID, START_ID, END_ID]) == [
        "[PAD]",
        "[UNK]",
        "[START]",
        "[END]",
    ]
    assert pair.source.decode(ids) == "In the beginning God created the heavens."  # cased
    assert pair.source.vocab_size == 1000


def known_to_python(text):
    """Whether Python's Unicode database (14.0 in 3.11) knows every character of `text`:
    SentencePiece normalises with a newer one (U+1CCD6, new in 16.0, NFKC-folds to "A")."""
    return all(unicodedata.category(c) != "Cn" for c in text)


@pytest.mark.parametrize("text", SENTENCES + HARD)
def test_decode_encode_is_lossless_after_nfkc(pair, text):
    for side in (pair.source, pair.target):
        ids = side.encode(text)
        assert UNK_ID not in ids  # byte fallback: no character is unknown
        decoded = side.decode(ids)
        assert side.decode(side.encode(decoded)) == decoded  # normal text round-trips exactly
        if known_to_python(text):
            assert decoded == unicodedata.normalize("NFKC", text)


def test_lossless_on_the_test_split(pair):
    for en, es in bible("test"):
        assert pair.source.decode(pair.source.encode(en)) == unicodedata.normalize("NFKC", en)
        assert pair.target.decode(pair.target.encode(es)) == unicodedata.normalize("NFKC", es)


def test_lowercase_option_folds_case():
    texts = ["In the Beginning", "GOD said"] * 30
    pair = TokenizerPair.train(
        texts,
        texts,
        source_vocab_size=40,
        target_vocab_size=40,
        byte_fallback=False,
        lowercase=True,
    )
    assert pair.source.decode(pair.source.encode("In The BEGINNING")) == "in the beginning"


def test_training_is_deterministic_and_bpe_works():
    texts = [en for en, _ in bible(limit=500)]
    one = TokenizerPair.train(texts, texts, source_vocab_size=400, target_vocab_size=400)
    two = TokenizerPair.train(texts, texts, source_vocab_size=400, target_vocab_size=400)
    assert one.source.model_proto == two.source.model_proto
    bpe = TokenizerPair.train(
        texts, texts, source_vocab_size=400, target_vocab_size=400, model_type="bpe"
    )
    assert bpe.source.model_proto != one.source.model_proto
    assert bpe.source.decode(bpe.source.encode(texts[0])) == texts[0]


def test_encode_batch_pads(pair):
    batch = pair.target.encode_batch(["Dios", "En el principio creó Dios"])
    assert batch.dtype == np.int32 and batch.shape[0] == 2
    assert batch[0, len(pair.target.encode("Dios")) :].tolist() == [PAD_ID] * (
        batch.shape[1] - len(pair.target.encode("Dios"))
    )
    assert pair.target.encode_batch(["Dios"], pad_to=10).shape == (1, 10)


def test_save_load_round_trip(pair, tmp_path):
    pair.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "source.model",
        "target.model",
        "tokenizer.json",
    ]
    loaded = TokenizerPair.load(tmp_path)
    assert loaded.source.model_proto == pair.source.model_proto
    assert loaded.target.encode("Dios es luz") == pair.target.encode("Dios es luz")


def test_shared_model_is_one_file(tmp_path):
    pairs = bible(limit=800)
    shared = TokenizerPair.train(
        [en for en, _ in pairs],
        [es for _, es in pairs],
        source_vocab_size=600,
        target_vocab_size=600,
        shared=True,
    )
    assert shared.shared and shared.source is shared.target
    shared.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.model", "tokenizer.json"]
    assert TokenizerPair.load(tmp_path).shared


def test_damaged_and_old_directories_are_one_line_errors(pair, tmp_path):
    (tmp_path / "source.vocab.txt").write_text("[PAD]\n")
    with pytest.raises(UserError, match="WordPiece tokenizer from seq2seq-attn 0.1"):
        TokenizerPair.load(tmp_path)
    good = tmp_path / "good"
    pair.save(good)
    (good / "target.model").write_bytes(b"not a model")
    with pytest.raises(UserError, match="SHA-256"):
        TokenizerPair.load(good)
    with pytest.raises(UserError, match="missing tokenizer.json"):
        TokenizerPair.load(tmp_path / "nothing")


@pytest.mark.parametrize(
    "options, match",
    [
        ({"model_type": "wordpiece"}, "model_type"),
        ({"source_vocab_size": 0}, "source_vocab_size"),
        ({"character_coverage": 1.5}, "character_coverage"),
        ({"byte_fallback": "yes"}, "byte_fallback"),
        ({"shared": True, "source_vocab_size": 100}, "same value"),
    ],
)
def test_bad_options(options, match):
    with pytest.raises(UserError, match=match):
        check_options(options)


def test_too_small_for_byte_fallback():
    with pytest.raises(UserError, match="byte pieces"):
        TokenizerPair.train(["a b"], ["c d"], source_vocab_size=100, target_vocab_size=100)


def test_foreign_model_is_refused():
    import io

    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(["a b c d"] * 10),
        model_writer=model,
        vocab_size=10,
        minloglevel=2,
        hard_vocab_limit=False,
    )
    with pytest.raises(UserError, match=r"\[START\]=2"):
        SentencePieceTokenizer(model.getvalue())


def test_lone_surrogates_become_replacement_characters(pair):
    # JSON may carry "\ud800"; Python keeps it in the str, UTF-8 cannot encode it
    assert pair.source.decode(pair.source.encode("a\ud800b")) == "a\ufffdb"
    assert pair.source.encode("\ud83d\ude42") == pair.source.encode("🙂")  # a pair is joined
