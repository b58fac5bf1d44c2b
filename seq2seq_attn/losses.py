"""Token-level loss and accuracy that ignore padding (id 0 in the targets)."""

import keras
import tensorflow as tf
from keras import ops


def replica_share(loss_sum, tokens, rows, context):
    """One replica's part of the global-batch loss under a `tf.distribute` strategy.

    Keras sums the replicas' gradients, so each replica differentiates its own loss
    sum over the token count of the whole global batch; the gradients then add up to
    the single-device gradient. Keras reports the loss as the replicas' values times
    `num_replicas`, weighted by their rows (`unscale_loss_for_distribution`), which
    is wrong when a batch splits unevenly (the last batch of a bucket); the value,
    but not the gradient, is rescaled so that the report is the global-batch mean.

    Args:
        loss_sum: float32 scalar, this replica's sum of token losses.
        tokens: float32 scalar, this replica's non-padding target tokens.
        rows: float32 scalar, this replica's sentences.
        context: the `tf.distribute.ReplicaContext`.

    Returns:
        A float32 scalar to return from the loss.
    """
    n = context.num_replicas_in_sync
    totals = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.stack([tokens, rows]))
    share = loss_sum / tf.maximum(totals[0], 1.0)  # what the gradient comes from
    reported = tf.math.divide_no_nan(share * totals[1], n * rows)
    return share + tf.stop_gradient(reported - share)


@keras.saving.register_keras_serializable(package="seq2seq_attn")
class MaskedCrossEntropy(keras.losses.Loss):
    """Sparse cross-entropy averaged over non-padding target tokens.

    With `label_smoothing = eps`, the target distribution puts `1 - eps` on
    the true token and spreads `eps` uniformly over the vocabulary (Szegedy
    et al. 2016). Computed in float32 whatever the compute dtype. Under a
    `tf.distribute` strategy with several replicas the average is over the
    tokens of the global batch (see `replica_share`).

    Args:
        label_smoothing: Float in [0, 1).
        pad_id: Int, target id excluded from the average.

    Call arguments:
        y_true: int `(batch_size, target_length)`.
        y_pred: logits `(batch_size, target_length, vocab_size)`.

    Returns:
        A float32 scalar: sum of token losses / number of non-padding tokens.

    Example:

    >>> import numpy as np
    >>> from seq2seq_attn.losses import MaskedCrossEntropy
    >>> loss = MaskedCrossEntropy()
    >>> float(loss(np.array([[1, 0]]), np.zeros((1, 2, 4))))  # log(4)
    1.386...
    """

    def __init__(self, label_smoothing=0.0, pad_id=0, name="masked_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(
                "`label_smoothing` must be in [0, 1), received: "
                f"label_smoothing={label_smoothing!r}"
            )
        self.label_smoothing = label_smoothing
        self.pad_id = pad_id

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        logits = ops.cast(y_pred, "float32")
        # One fused softmax cross-entropy whose gradient is softmax - target (a gather of
        # log_softmax would scatter its gradient into a (batch, target_len, vocab) tensor).
        if self.label_smoothing:
            # target (1 - eps) one_hot + eps / vocab: (1 - eps) nll + eps mean(-log p)
            eps, vocab = self.label_smoothing, ops.shape(logits)[-1]
            off = eps / ops.cast(vocab, "float32")
            target = tf.one_hot(y_true, vocab, on_value=1.0 - eps + off, off_value=off)
            nll = ops.categorical_crossentropy(target, logits, from_logits=True)
        else:
            nll = ops.sparse_categorical_crossentropy(y_true, logits, from_logits=True)
        mask = ops.cast(ops.not_equal(y_true, self.pad_id), "float32")
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            rows = ops.cast(ops.shape(y_true)[0], "float32")
            return replica_share(ops.sum(nll * mask), ops.sum(mask), rows, context)
        return ops.sum(nll * mask) / ops.maximum(ops.sum(mask), 1.0)

    def get_config(self):
        config = super().get_config()
        config.update(label_smoothing=self.label_smoothing, pad_id=self.pad_id)
        return config


@keras.saving.register_keras_serializable(package="seq2seq_attn")
class MaskedAccuracy(keras.metrics.Metric):
    """Fraction of non-padding target tokens whose arg-max prediction is right."""

    def __init__(self, pad_id=0, name="token_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.pad_id = pad_id
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        predicted = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
        mask = ops.cast(ops.not_equal(y_true, self.pad_id), "float32")
        hits = ops.cast(ops.equal(predicted, y_true), "float32") * mask
        self.correct.assign_add(ops.sum(hits))
        self.count.assign_add(ops.sum(mask))

    def result(self):
        return self.correct / ops.maximum(self.count, 1.0)

    def get_config(self):
        return {**super().get_config(), "pad_id": self.pad_id}
