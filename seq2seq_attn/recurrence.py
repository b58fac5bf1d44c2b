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


def scan_in_chunks(step, elems, carry, output_zeros, chunk=2):
    """`tf.scan` over time-major `elems`, `chunk` steps per loop iteration.

    A TensorFlow loop iteration has a fixed cost (and in training, its gradient loop
    another), so taking two steps per iteration makes short sequences cheaper. The time
    axis is padded with zeros to a multiple of `chunk` and the outputs are cut back; the
    final carry has also been through the padding steps.

    Args:
        step: `(carry, x) -> (carry, outputs)`, `x` one time step of `elems`.
        elems: a list of `(time, batch_size, ...)` tensors.
        carry: the initial carry, a nest of tensors.
        output_zeros: a list of tensors shaped and typed like one step's outputs.
        chunk: Python int, steps per loop iteration.

    Returns:
        `(carry, outputs)`: the final carry and a list of `(time, batch_size, ...)`.
    """
    time = tf.shape(elems[0])[0]
    iterations = (time + chunk - 1) // chunk
    pad = iterations * chunk - time
    chunks = [
        tf.reshape(
            tf.pad(e, [[0, pad]] + [[0, 0]] * (e.shape.rank - 1)),
            tf.concat([[iterations, chunk], tf.shape(e)[1:]], 0),
        )
        for e in elems
    ]  # each (iterations, chunk, batch, ...)
    arrays = [
        tf.TensorArray(
            z.dtype, size=iterations, element_shape=tf.TensorShape([chunk]).concatenate(z.shape)
        )
        for z in output_zeros
    ]

    def body(i, carry, arrays):
        steps = []
        for k in range(chunk):
            carry, outs = step(carry, [c[i][k] for c in chunks])
            steps.append(outs)
        stacked = [tf.stack(per_step) for per_step in zip(*steps, strict=True)]
        return i + 1, carry, [a.write(i, s) for a, s in zip(arrays, stacked, strict=True)]

    _, carry, arrays = tf.while_loop(
        lambda i, *_: i < iterations,
        body,
        (tf.constant(0), carry, arrays),
        maximum_iterations=iterations,
    )
    outputs = [
        tf.reshape(a.stack(), tf.concat([[iterations * chunk], tf.shape(z)], 0))[:time]
        for a, z in zip(arrays, output_zeros, strict=True)
    ]
    return carry, outputs


def run_rnn(cell, inputs, mask, reverse=False, training=False):
    """Runs `cell` over time, skipping masked steps (the state is carried through them).

    In training the loop is `scan_in_chunks` (the same steps, fewer loop iterations);
    otherwise it is the export-friendly loop below, whose loop variables keep one shape.

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
    if training:
        return _run_rnn_in_chunks(cell, inputs, mask, states, reverse)
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


def _run_rnn_in_chunks(cell, inputs, mask, states, reverse):
    """`run_rnn`'s training loop: the same step maths through `scan_in_chunks`."""
    xs = tf.transpose(inputs, [1, 0, 2])  # (time, batch, features)
    keeps = tf.expand_dims(tf.transpose(mask), -1)  # (time, batch, 1); padding steps: False
    if reverse:
        xs, keeps = tf.reverse(xs, [0]), tf.reverse(keeps, [0])

    def step(states, x_keep):
        x, keep = x_keep
        out, new_states = cell(x, states, training=True)
        new_states = [tf.where(keep, n, s) for n, s in zip(new_states, states, strict=True)]
        return new_states, [tf.where(keep, out, tf.zeros_like(out))]

    zeros = [tf.zeros_like(states[0])]  # (batch, units)
    states, (outputs,) = scan_in_chunks(step, [xs, keeps], states, zeros)
    if reverse:
        outputs = tf.reverse(outputs, [0])
    return tf.transpose(outputs, [1, 0, 2]), states  # (batch, time, units)
