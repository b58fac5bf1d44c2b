"""The benchmarks' own premises: the naive baseline computes the same function as the library."""

import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from seq2seq_attn import Seq2SeqAttention
from seq2seq_attn.losses import MaskedCrossEntropy

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from naive_seq2seq import naive_like  # noqa: E402

SOURCE = np.array([[4, 5, 6, 7, 0, 0], [8, 9, 10, 11, 12, 13]], "int32")
TARGET_IN = np.array([[2, 5, 6, 0], [2, 7, 8, 9]], "int32")
TARGET_OUT = np.array([[5, 6, 3, 0], [7, 8, 9, 3]], "int32")


def _model(**kwargs):
    keras.utils.set_random_seed(1)
    model = Seq2SeqAttention(30, 40, embedding_dim=8, units=16, attention_units=12, **kwargs)
    model.build()
    return model


def test_naive_baseline_gives_the_same_logits():
    model = _model()
    naive = naive_like(model)
    ours = np.asarray(model((SOURCE, TARGET_IN)))
    theirs = np.asarray(naive((SOURCE, TARGET_IN)))
    assert np.abs(ours).max() > 1e-3  # not trivially zero
    np.testing.assert_allclose(theirs, ours, atol=1e-6)


def test_naive_baseline_takes_the_same_training_step():
    model = _model()
    naive = naive_like(model)
    losses = []
    for m, eager in ((model, False), (naive, True)):
        m.compile(keras.optimizers.Adam(0.01), loss=MaskedCrossEntropy(), run_eagerly=eager)
        losses.append([_step(m) for _ in range(3)])
    assert losses[0][2] < losses[0][0]  # it learns
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)
    after = np.asarray(naive((SOURCE, TARGET_IN)))
    np.testing.assert_allclose(after, np.asarray(model((SOURCE, TARGET_IN))), atol=1e-4)


def _step(model):
    return float(model.train_on_batch((SOURCE, TARGET_IN), TARGET_OUT, return_dict=True)["loss"])


@pytest.mark.parametrize("kwargs", [dict(rnn="lstm"), dict(bidirectional=False)])
def test_naive_baseline_refuses_other_architectures(kwargs):
    with pytest.raises(ValueError, match="one bidirectional GRU layer"):
        naive_like(_model(**kwargs))
