"""Encoder shapes, padding invariance and configuration."""

import numpy as np
import pytest

from seq2seq_attn.encoder import Encoder

SOURCE = np.array([[5, 6, 7, 8], [9, 4, 0, 0]], "int32")


@pytest.mark.parametrize("rnn", ["gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_shapes_and_states(rnn, bidirectional):
    encoder = Encoder(12, 6, 5, decoder_units=7, num_layers=2, rnn=rnn, bidirectional=bidirectional)
    memory, mask, states = encoder(SOURCE)
    assert memory.shape == (2, 4, 10 if bidirectional else 5)
    assert np.asarray(mask).tolist() == (SOURCE != 0).tolist()
    assert len(states) == (2 if rnn == "lstm" else 1)
    assert all(s.shape == (2, 7) for s in states)
    assert np.all(np.asarray(memory)[1, 2:] == 0.0)  # padded positions are zero


@pytest.mark.parametrize("rnn", ["gru", "lstm"])
def test_padding_does_not_change_outputs(rnn):
    encoder = Encoder(12, 6, 5, decoder_units=7, num_layers=2, rnn=rnn)
    short = SOURCE[1:, :2]
    padded = np.concatenate([short, np.zeros((1, 6), "int32")], axis=1)
    m_short, _, s_short = encoder(short)
    m_padded, _, s_padded = encoder(padded)
    np.testing.assert_allclose(m_short, m_padded[:, :2], atol=1e-6)
    for a, b in zip(s_short, s_padded, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_config_round_trip():
    encoder = Encoder(12, 6, 5, decoder_units=7, rnn="lstm", dropout=0.1)
    outputs = encoder(SOURCE)
    clone = Encoder.from_config(encoder.get_config())
    clone.build()
    clone.set_weights(encoder.get_weights())
    memory, _, states = outputs
    clone_memory, _, clone_states = clone(SOURCE)
    np.testing.assert_array_equal(memory, clone_memory)
    for a, b in zip(states, clone_states, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(units=0), "units=0"),
        (dict(num_layers=0), "num_layers=0"),
        (dict(rnn="rnn"), "rnn='rnn'"),
        (dict(dropout=-0.1), "dropout=-0.1"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = dict(vocab_size=12, embedding_dim=6, units=5, decoder_units=7)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        Encoder(**args)


@pytest.mark.parametrize("rnn", ["gru", "lstm"])
def test_one_loop_at_inference_equals_a_loop_per_direction_in_training(rnn):
    """Inference runs both directions in one loop, training one loop each: same numbers
    (no dropout, so `training` changes nothing else)."""
    encoder = Encoder(20, 8, 6, decoder_units=10, num_layers=2, rnn=rnn)
    ids = np.array([[5, 6, 7, 8, 9], [4, 3, 0, 0, 0]])
    infer, train = encoder(ids, training=False), encoder(ids, training=True)
    np.testing.assert_array_equal(infer[0], train[0])
    for mine, theirs in zip(infer[2], train[2], strict=True):
        np.testing.assert_array_equal(mine, theirs)
