"""Adam with TensorFlow's fused update kernel.

Keras 3's `Adam.update_step` is backend-neutral: about a dozen element-wise ops per
variable (subtract, multiply, square, sqrt, divide, three assigns), each a pass over the
variable's memory. On a CPU that is a fifth of a training step at the tutorial's size,
whose 5000-piece embeddings and output layer are most of the parameters.
TensorFlow's `ResourceApplyAdam` does the same arithmetic in one pass per variable.

With `use_ema=True` both Adams here average the weights the way TensorFlow's
`tf.train.ExponentialMovingAverage(decay, num_updates=t)` does (`WarmUpAverage`), not with
Keras' constant decay from the first update, under which the first weights still weigh
`decay ** t` after t updates (45% after 800 updates at 0.999).
"""

import keras
import tensorflow as tf

from seq2seq_attn import _compat

_compat.check_keras()  # a Keras that moved a private name used here stops at import


def warm_up_decay(decay, updates):
    """TensorFlow's moving-average decay after `updates` updates: min(decay, (1+t)/(10+t)).

    The decay `tf.train.ExponentialMovingAverage(decay, num_updates=updates)` uses: 0.1 at
    the first update (t = 0), 0.5 at t = 8, 0.9 at t = 80, `decay` = 0.999 from t = 8990.
    """
    updates = tf.cast(updates, tf.float32)
    return tf.minimum(tf.cast(decay, tf.float32), (1.0 + updates) / (10.0 + updates))


class WarmUpAverage(_compat.MovingAverageHook):
    """A Keras optimizer's `use_ema` average with TensorFlow's warm-up of the decay.

    Mix in before the Keras optimizer class. The average starts at the weights the
    optimizer is built with; optimizer update number t (from 0; with gradient accumulation,
    real updates only, not micro-batches) then sets

        average = d_t * average + (1 - d_t) * weights,   d_t = min(ema_momentum, (1+t)/(10+t))

    as `tf.train.ExponentialMovingAverage(ema_momentum, num_updates=t)` does. The average
    stays where Keras keeps it, so `finalize_variable_values` and
    `callbacks.averaged_weights` swap it in as before. `ema_overwrite_frequency` works as
    in Keras.
    """

    def build(self, variables):
        super().build(variables)
        if self.use_ema:
            with tf.init_scope():  # once, now, even when the first update's trace builds it
                for average, variable in zip(_compat.moving_averages(self), variables, strict=True):
                    if average is not None:
                        average.assign(variable)

    def update_moving_averages(self, variables, averages, updates, is_update):
        """One averaging step, run by Keras after each `apply` (see `MovingAverageHook`)."""

        def update():
            decay = warm_up_decay(self.ema_momentum, updates)
            for variable, average in zip(variables, averages, strict=True):
                if average is not None:
                    rate = tf.cast(1.0 - decay, average.dtype)
                    average.assign_add(rate * (tf.cast(variable, average.dtype) - average))

        if is_update is None:
            update()
        else:
            tf.cond(is_update, lambda: update() or tf.no_op(), tf.no_op)


@keras.saving.register_keras_serializable(package="seq2seq_attn")
class FusedAdam(WarmUpAverage, keras.optimizers.Adam):
    """`keras.optimizers.Adam` that applies dense float32 updates with one fused op.

    The same algorithm and arguments as Keras' Adam (epsilon outside the square root,
    bias correction folded into the step size), and with `use_ema` the warm-up average of
    `WarmUpAverage`. Embedding gradients (`IndexedSlices`),
    `amsgrad`, other dtypes and variables under a `tf.distribute` strategy take Keras'
    own update.

    Examples:
        >>> import numpy as np
        >>> from seq2seq_attn.optimizers import FusedAdam
        >>> w = keras.Variable(np.ones(3, "float32"))
        >>> opt = FusedAdam(learning_rate=0.1)
        >>> opt.apply([np.array([1.0, -1.0, 0.0], "float32")], [w])
        >>> [round(float(x), 4) for x in w.numpy()]
        [0.9, 1.1, 1.0]
    """

    def update_step(self, gradient, variable, learning_rate):
        if not self._fusable(gradient, variable):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        momentum, velocity = _compat.adam_slots(self, variable)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=momentum.value.handle,
            v=velocity.value.handle,
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )

    def _fusable(self, gradient, variable):
        return (
            keras.backend.backend() == "tensorflow"
            and not self.amsgrad
            and not isinstance(gradient, tf.IndexedSlices)
            and isinstance(variable, tf.Variable)
            and variable.dtype == tf.float32
            and not tf.distribute.has_strategy()
        )
