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


def cell_from_projection(cell, projected, states):
    """One inference step of a Keras cell whose input arrives already multiplied by its kernel.

    The maths of `cell(x, states)` (Keras' default implementation 2, GRU with
    `reset_after`, no dropout) with `projected = x @ cell.kernel` given instead of x.
    A caller that knows parts of x @ kernel in advance (the attention decoder folds
    its context's share into the encoder memory once per sentence, see
    `AttentionDecoderCell.step_memory`) then skips that share of the product.

    Args:
        cell: a built Keras `GRUCell` (`reset_after=True`) or `LSTMCell`.
        projected: `(batch_size, gates * units)`, x @ kernel without the bias.
        states: `[h]` (GRU) or `[h, c]` (LSTM), each `(batch_size, units)`.

    Returns:
        `(output, new_states)` as `cell(x, states)` returns them.
    """
    dtype = projected.dtype
    recurrent = tf.matmul(states[0], tf.cast(cell.recurrent_kernel, dtype))
    bias = tf.cast(cell.bias, dtype) if cell.use_bias else None
    if isinstance(cell, keras.layers.LSTMCell):
        z = projected + recurrent  # (batch, 4 units), Keras' order of additions
        if bias is not None:
            z = z + bias
        z_i, z_f, z_c, z_o = tf.split(z, 4, axis=-1)
        c = cell.recurrent_activation(z_f) * states[1] + cell.recurrent_activation(
            z_i
        ) * cell.activation(z_c)
        h = cell.recurrent_activation(z_o) * cell.activation(c)
        return h, [h, c]
    if not cell.reset_after:
        raise ValueError("cell_from_projection supports GRU cells with reset_after=True only")
    if bias is not None:
        projected = projected + bias[0]  # input bias
        recurrent = recurrent + bias[1]  # recurrent bias
    x_z, x_r, x_h = tf.split(projected, 3, axis=-1)  # (batch, units) each
    r_z, r_r, r_h = tf.split(recurrent, 3, axis=-1)
    z = cell.recurrent_activation(x_z + r_z)
    r = cell.recurrent_activation(x_r + r_r)
    hh = cell.activation(x_h + r * r_h)
    h = z * states[0] + (1 - z) * hh
    return h, [h]
