"""Keras RNN cells and a time loop that every export target can run.

Keras 3's `GRU`/`LSTM` layers accumulate their outputs in a TensorList whose element
shape has a dynamic batch, which the TFLite converter cannot lower to builtin ops. `run_rnn`
drives the same Keras cells with a `tf.while_loop` whose loop variables keep a fixed shape
(the outputs buffer is written with a one-hot mask over time), so the encoder converts to
TFLite builtins and ONNX with dynamic batch and source length, and trains with `model.fit`.
"""

import keras
import tensorflow as tf

from seq2seq_attn.validation import check_layer_args


def make_rnn_cell(rnn, units, name):
    """A Keras GRU (reset_after, the Keras and cuDNN default) or LSTM cell."""
    check_layer_args(rnn=rnn)
    if rnn == "gru":
        return keras.layers.GRUCell(units, name=name)
    return keras.layers.LSTMCell(units, name=name)


def initial_cell_states(cell, batch_size, dtype):
    """Zero states for `cell`: `[h]` for GRU, `[h, c]` for LSTM."""
    n = 2 if isinstance(cell, keras.layers.LSTMCell) else 1
    return [tf.zeros([batch_size, cell.units], dtype) for _ in range(n)]


def run_rnn(cell, inputs, mask, reverse=False, training=False):
    """Runs `cell` over time, skipping masked steps (the state is carried through them).

    Args:
        cell: a built Keras `GRUCell` or `LSTMCell`.
        inputs: `(batch_size, time, features)`.
        mask: bool `(batch_size, time)`; False steps leave the state unchanged and output 0.
        reverse: bool, run from the last step to the first.
        training: Python bool.

    Returns:
        `(outputs, states)`: `(batch_size, time, units)` and the final state list.
    """
    batch, time = tf.shape(inputs)[0], tf.shape(inputs)[1]
    states = initial_cell_states(cell, batch, inputs.dtype)
    outputs = tf.zeros([batch, time, cell.units], inputs.dtype)

    def body(i, states, outputs):
        t = time - 1 - i if reverse else i
        x = tf.gather(inputs, t, axis=1)  # (batch, features)
        keep = tf.expand_dims(tf.gather(mask, t, axis=1), -1)  # (batch, 1)
        out, new_states = cell(x, states, training=training)
        new_states = [tf.where(keep, n, s) for n, s in zip(new_states, states, strict=True)]
        out = tf.where(keep, out, tf.zeros_like(out))
        at_t = tf.reshape(tf.one_hot(t, time, dtype=inputs.dtype), [1, -1, 1])  # (1, time, 1)
        return i + 1, new_states, outputs + at_t * tf.expand_dims(out, 1)

    # maximum_iterations lets XLA (jit_compile=True) size the gradient accumulators.
    _, states, outputs = tf.while_loop(
        lambda i, *_: i < time, body, (tf.constant(0), states, outputs), maximum_iterations=time
    )
    return outputs, states
