"""Adam with TensorFlow's fused update kernel.

Keras 3's `Adam.update_step` is backend-neutral: about a dozen element-wise ops per
variable (subtract, multiply, square, sqrt, divide, three assigns), each a pass over the
variable's memory. On a CPU that is a fifth of a training step at the tutorial's size,
whose 5000-piece embeddings and output layer are most of the parameters.
TensorFlow's `ResourceApplyAdam` does the same arithmetic in one pass per variable.
"""

import keras
import tensorflow as tf

from seq2seq_attn import _compat

_compat.check_keras()  # a Keras that moved a private name used here stops at import


@keras.saving.register_keras_serializable(package="seq2seq_attn")
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` that applies dense float32 updates with one fused op.

    The same algorithm and arguments as Keras' Adam (epsilon outside the square root,
    bias correction folded into the step size). Embedding gradients (`IndexedSlices`),
    `amsgrad`, other dtypes and variables under a `tf.distribute` strategy take Keras'
    own update.

    Example:

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
