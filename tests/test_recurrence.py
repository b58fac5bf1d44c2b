"""run_rnn and run_rnns against Keras' own GRU/LSTM layers and cells, masks included."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from seq2seq_attn.recurrence import (
    input_projection,
    make_rnn_cell,
    projected_step,
    run_rnn,
    run_rnns,
)

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


@pytest.mark.parametrize("rnn", ["gru", "lstm"])
def test_projected_step_equals_the_keras_cell(rnn):
    """The input product taken before the loop changes nothing a step computes."""
    cell = make_rnn_cell(rnn, 5, name="c")
    cell.build((None, 4))
    cell.set_weights([RNG.normal(size=w.shape).astype("float32") for w in cell.get_weights()])
    x = tf.constant(X)  # (3, 6, 4)
    states = [
        tf.constant(RNG.normal(size=(3, 5)).astype("float32"))
        for _ in range(2 if rnn == "lstm" else 1)
    ]
    projected = input_projection(cell, x)  # (3, 6, gates * 5)
    assert projected.shape == (3, 6, (4 if rnn == "lstm" else 3) * 5)
    for t in range(6):
        want, want_states = cell(x[:, t], states)
        got, got_states = projected_step(cell, projected[:, t], states)
        np.testing.assert_allclose(got, want, atol=1e-6)
        for mine, theirs in zip(got_states, want_states, strict=True):
            np.testing.assert_allclose(mine, theirs, atol=1e-6)


@pytest.mark.parametrize("rnn", ["gru", "lstm"])
def test_two_directions_in_one_loop_equal_two_loops(rnn):
    cells = [make_rnn_cell(rnn, 5, name=f"c{i}") for i in range(2)]
    for cell in cells:
        cell.build((None, 4))
    x, mask = tf.constant(X), tf.constant(MASK)
    together = run_rnns(cells, x, mask, reverse=[False, True])
    apart = [
        run_rnn(cell, x, mask, reverse=back)
        for cell, back in zip(cells, (False, True), strict=True)
    ]
    for (out, states), (out_alone, states_alone) in zip(together, apart, strict=True):
        np.testing.assert_array_equal(out, out_alone)
        for mine, theirs in zip(states, states_alone, strict=True):
            np.testing.assert_array_equal(mine, theirs)
    # the backward cell really ran backward: its first output saw the whole sentence
    assert not np.allclose(together[1][0][0, 0], apart[0][0][0, 0])


def test_bfloat16_cells_compute_in_bfloat16():
    """Under mixed precision the input product is taken in the compute dtype, as the
    Keras cell's own call takes it."""
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        cell = make_rnn_cell("gru", 5, name="c")
        cell.build((None, 4))
    finally:
        keras.mixed_precision.set_global_policy(policy)
    x = tf.cast(tf.constant(X), tf.bfloat16)
    outputs, (h,) = run_rnn(cell, x, tf.constant(MASK))
    assert outputs.dtype == h.dtype == tf.bfloat16
    want, _ = cell(x[:, 0], [tf.zeros([3, 5], tf.bfloat16)])
    np.testing.assert_allclose(
        np.asarray(outputs[:, 0], np.float32), np.asarray(want, np.float32), atol=1e-2
    )


@pytest.mark.parametrize("kwargs", [{"reset_after": False}, {"dropout": 0.1}])
def test_input_projection_refuses_cells_it_does_not_compute(kwargs):
    cell = keras.layers.GRUCell(5, **kwargs)
    cell.build((None, 4))
    with pytest.raises(ValueError, match="make_rnn_cell"):
        input_projection(cell, tf.constant(X))
