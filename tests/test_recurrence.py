"""run_rnn against Keras' own GRU/LSTM layers with the same weights, masks included."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from seq2seq_attn.recurrence import make_rnn_cell, run_rnn

RNG = np.random.default_rng(5)
X = RNG.normal(size=(3, 6, 4)).astype("float32")
MASK = np.array([[1] * 6, [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]], bool)


@pytest.mark.parametrize("rnn", ["gru", "lstm"])
@pytest.mark.parametrize("reverse", [False, True])
def test_matches_keras_rnn_layer(rnn, reverse):
    cell = make_rnn_cell(rnn, 5, name="c")
    cell.build((None, 4))
    layer_cls = keras.layers.GRU if rnn == "gru" else keras.layers.LSTM
    reference = layer_cls(5, return_sequences=True, return_state=True, go_backwards=reverse)
    reference.build((None, None, 4))
    reference.set_weights(cell.get_weights())
    outputs, states = run_rnn(cell, tf.constant(X), tf.constant(MASK), reverse=reverse)
    ref = reference(X, mask=MASK)
    ref_outputs = np.asarray(ref[0])
    if reverse:  # Keras returns go_backwards outputs in reversed time order
        ref_outputs = ref_outputs[:, ::-1]
    # Keras keeps the previous output at masked steps; run_rnn writes zeros there.
    np.testing.assert_allclose(np.asarray(outputs)[MASK], ref_outputs[MASK], atol=1e-6)
    assert np.all(np.asarray(outputs)[~MASK] == 0.0)
    for mine, theirs in zip(states, ref[1:], strict=True):
        np.testing.assert_allclose(mine, theirs, atol=1e-6)


def test_traces_with_dynamic_batch_and_time():
    cell = make_rnn_cell("gru", 5, name="c")
    cell.build((None, 4))
    fn = tf.function(
        lambda x, m: run_rnn(cell, x, m)[0],
        input_signature=[tf.TensorSpec([None, None, 4]), tf.TensorSpec([None, None], tf.bool)],
        autograph=False,  # as the package traces it (tests/test_tracing.py)
    )
    assert fn(X, MASK).shape == (3, 6, 5)
    assert fn(X[:1, :2], MASK[:1, :2]).shape == (1, 2, 5)
