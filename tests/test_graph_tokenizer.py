"""In-graph SentencePiece (tensorflow-text) against the host side (sentencepiece): the same
`.model` bytes give identical ids and identical decoded strings, on the whole Bible corpus and
on hard inputs (accents, emoji, CJK, control characters, long words, empty strings, runs of
whitespace, newlines)."""

import numpy as np
import pytest
import tensorflow as tf

from seq2seq_attn.graph_tokenizer import GraphTokenizerPair
from seq2seq_attn.tokenizer import TokenizerPair
from tests.test_tokenizer import bible
from tests.tokenizer_inputs import HARD, SENTENCES


@pytest.fixture(scope="module")
def pairs():
    """The host pair (cased, byte fallback, trained on the train split) and its graph twin."""
    train = bible("train")
    host = TokenizerPair.train(
        [en for en, _ in train],
        [es for _, es in train],
        source_vocab_size=3000,
        target_vocab_size=3000,
    )
    return host, GraphTokenizerPair(host)


def _check_identical(host, graph, texts):
    ids = graph.tokenize(tf.constant(texts)).to_list()
    expected = [host.encode(t) for t in texts]
    mismatched = [t for t, a, b in zip(texts, ids, expected, strict=True) if a != b]
    assert not mismatched, mismatched[:5]
    padded = host.encode_batch(texts)
    decoded = [s.decode("utf-8") for s in graph.detokenize(tf.constant(padded)).numpy()]
    expected_text = [host.decode(row) for row in padded]
    mismatched = [t for t, a, b in zip(texts, decoded, expected_text, strict=True) if a != b]
    assert not mismatched, mismatched[:5]


@pytest.mark.slow
def test_identical_on_the_whole_corpus(pairs):
    host, graph = pairs
    rows = bible("train") + bible("dev") + bible("test")
    for start in range(0, len(rows), 4096):
        chunk = rows[start : start + 4096]
        _check_identical(host.source, graph.source, [en for en, _ in chunk])
        _check_identical(host.target, graph.target, [es for _, es in chunk])


def test_identical_on_hard_inputs(pairs):
    host, graph = pairs
    for side in ("source", "target"):
        _check_identical(getattr(host, side), getattr(graph, side), SENTENCES + HARD)


def test_graph_tokenizer_traces_with_dynamic_batch(pairs):
    host, graph = pairs
    fn = tf.function(
        lambda s: graph.target.tokenize(s).to_tensor(),
        input_signature=[tf.TensorSpec([None], tf.string)],
        autograph=False,  # as the package traces it (tests/test_tracing.py)
    )
    out = fn(tf.constant(["Dios", "En el principio"])).numpy()
    np.testing.assert_array_equal(out, host.target.encode_batch(["Dios", "En el principio"]))


def test_shared_pair_is_one_graph_tokenizer():
    texts = ["a b c", "d e f"] * 10
    host = TokenizerPair.train(
        texts, texts, source_vocab_size=30, target_vocab_size=30, byte_fallback=False, shared=True
    )
    graph = GraphTokenizerPair(host)
    assert graph.source is graph.target


def test_two_models_survive_a_saved_model_round_trip(pairs, tmp_path):
    """Source and target are different models: a reloaded SavedModel must keep them apart (the
    op's kernel shares resources by node name; unnamed, both sides decoded with the first)."""
    host, graph = pairs
    module = tf.Module()
    module.tokenizers = graph
    texts = ["En el principio creó Dios los cielos y la tierra.", "Dios es amor."]
    ids = host.target.encode_batch(texts)
    module.both = tf.function(
        lambda s, i: {
            "source": graph.source.tokenize(s).to_tensor(),
            "target": graph.target.detokenize(i),
        },
        input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([None, None], tf.int32)],
        autograph=False,
    )
    tf.saved_model.save(module, str(tmp_path / "sm"))
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    out = loaded.both(tf.constant(["In the beginning"]), tf.constant(ids))
    assert [s.decode() for s in out["target"].numpy()] == texts
    np.testing.assert_array_equal(
        out["source"].numpy(), host.source.encode_batch(["In the beginning"])
    )
