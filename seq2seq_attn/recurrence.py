"""Keras RNN cells and a time loop that every export target can run.

Keras 3's `GRU`/`LSTM` layers accumulate their outputs in a TensorList whose element
shape has a dynamic batch, which the TFLite converter cannot lower to builtin ops. `run_rnn`
(`run_rnns`: both directions of a layer in one loop) computes what the same Keras cells
compute with a `tf.while_loop` whose loop variables keep a fixed shape
(the outputs buffer is written with a one-hot mask over time), so the encoder converts to
TFLite builtins and ONNX with dynamic batch and source length, and trains with `model.fit`.
"""

import keras
import tensorflow as tf
from keras import ops

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
    return run_rnns([cell], inputs, mask, reverse=[reverse], training=training)[0]


def input_projection(cell, inputs):
    """The input's product with the cell's kernel, every time step at once.

    What a Keras cell computes first at each step (`inputs @ kernel`, plus the input bias of a
    `reset_after` GRU), as one `(batch * time, features) x (features, gates * units)` product
    before the time loop instead of one small product per step inside it.

    Args:
        cell: a built Keras `GRUCell` (`reset_after`) or `LSTMCell`, no dropout.
        inputs: `(batch_size, time, features)`, in the cell's compute dtype.

    Returns:
        `(batch_size, time, gates * units)`: 3 gates for a GRU, 4 for an LSTM.
    """
    gru = isinstance(cell, keras.layers.GRUCell)
    if (gru and not cell.reset_after) or cell.dropout or cell.recurrent_dropout:
        raise ValueError(
            f"{cell.name}: expected a cell of `make_rnn_cell` (reset_after, no dropout)"
        )
    x = ops.matmul(inputs, ops.cast(cell.kernel, inputs.dtype))
    if gru and cell.use_bias:
        x = x + ops.cast(cell.bias[0], inputs.dtype)  # bias rows: input, recurrent
    return x


def projected_step(cell, x, states):
    """One step of `cell` from its projected input `x`, as `cell(inputs, states)` computes it.

    Args:
        cell: as in `input_projection`.
        x: `(batch_size, gates * units)`, the step's slice of `input_projection`.
        states: `[h]` (GRU) or `[h, c]` (LSTM), each `(batch_size, units)`.

    Returns:
        `(output, new_states)`, as the Keras cell returns them.
    """
    recurrent = ops.cast(cell.recurrent_kernel, x.dtype)
    if isinstance(cell, keras.layers.LSTMCell):
        h, c = states
        z = ops.add(x, ops.matmul(h, recurrent))
        if cell.use_bias:
            z = ops.add(z, ops.cast(cell.bias, x.dtype))
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=1)
        gate = cell.recurrent_activation
        c = gate(z_f) * c + gate(z_i) * cell.activation(z_c)
        h = gate(z_o) * cell.activation(c)
        return h, [h, c]
    (h,) = states
    inner = ops.matmul(h, recurrent)  # (batch, 3 * units)
    if cell.use_bias:
        inner += ops.cast(cell.bias[1], x.dtype)
    x_z, x_r, x_h = ops.split(x, 3, axis=-1)
    units = cell.units
    z = cell.recurrent_activation(x_z + inner[:, :units])
    r = cell.recurrent_activation(x_r + inner[:, units : 2 * units])
    hh = cell.activation(x_h + r * inner[:, 2 * units :])
    h = z * h + (1 - z) * hh
    return h, [h]


def run_rnns(cells, inputs, mask, reverse, training=False):
    """Runs several cells over the same inputs in one time loop, as `run_rnn` runs one.

    Two things a bidirectional encoder would otherwise spend on TensorFlow's executor at every
    step (issue 34): its two directions share the loop (iteration i runs the forward cell at
    time i and the backward cell at time `time - 1 - i`), so the loop's bookkeeping (its
    condition, loop variables, frame) is paid once for both; and each cell's input product is
    taken for all steps before the loop (`input_projection`), leaving the recurrent product
    alone inside it. Each cell computes what `run_rnn` of the Keras cell computes.

    Args:
        cells: built Keras `GRUCell`s (`reset_after`) or `LSTMCell`s, without dropout.
        inputs: `(batch_size, time, features)`.
        mask: bool `(batch_size, time)`.
        reverse: one bool per cell.
        training: Python bool (the cells have no dropout: nothing depends on it).

    Returns:
        One `(outputs, states)` per cell, as `run_rnn` returns them.
    """
    del training  # make_rnn_cell's cells have no dropout
    batch, time = tf.shape(inputs)[0], tf.shape(inputs)[1]
    projected = [input_projection(cell, inputs) for cell in cells]  # (batch, time, gates*units)
    states = [initial_cell_states(cell, batch, inputs.dtype) for cell in cells]
    outputs = [tf.zeros([batch, time, cell.units], inputs.dtype) for cell in cells]

    def step(cell, x, t, states, outputs):
        keep = tf.expand_dims(tf.gather(mask, t, axis=1), -1)  # (batch, 1)
        out, new_states = projected_step(cell, tf.gather(x, t, axis=1), states)
        new_states = [tf.where(keep, n, s) for n, s in zip(new_states, states, strict=True)]
        out = tf.where(keep, out, tf.zeros_like(out))
        at_t = tf.reshape(tf.one_hot(t, time, dtype=inputs.dtype), [1, -1, 1])  # (1, time, 1)
        return new_states, outputs + at_t * tf.expand_dims(out, 1)

    def body(i, states, outputs):
        steps = [
            step(cell, x, time - 1 - i if back else i, s, o)
            for cell, x, back, s, o in zip(cells, projected, reverse, states, outputs, strict=True)
        ]
        return i + 1, [s for s, _ in steps], [o for _, o in steps]

    # maximum_iterations lets XLA (jit_compile=True) size the gradient accumulators.
    _, states, outputs = tf.while_loop(
        lambda i, *_: i < time, body, (tf.constant(0), states, outputs), maximum_iterations=time
    )
    return list(zip(outputs, states, strict=True))
