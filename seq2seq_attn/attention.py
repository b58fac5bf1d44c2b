"""Attention scorers: Bahdanau (additive) and Luong (multiplicative / concat).

Every scorer has the same call contract so the decoder cell takes either:

    context, weights = scorer(query, keys, mask=None, projected_keys=None)

and splits its work in two so that the key side is computed once per source
sentence, not once per decoder step:

    projected_keys = scorer.project_keys(keys)          # once per batch
    context, weights = scorer(query, keys, mask, projected_keys)  # every step

The projection is returned, never cached on the layer: a cached tensor is
per-call state that breaks tracing and export.
"""

import math

import keras
from keras import ops

from seq2seq_attn.validation import check_positive_int

LUONG_SCORES = ("dot", "general", "scaled_dot", "concat")


def _check_last_dim(name, shape, expected, what):
    if shape[-1] is not None and expected is not None and shape[-1] != expected:
        raise ValueError(
            f"`{name}` last dimension must equal {what} ({expected}), received shape {tuple(shape)}"
        )


def masked_softmax(scores, mask=None):
    """Softmax over the last axis that gives masked positions exactly zero.

    Args:
        scores: float tensor `(batch_size, source_length)`.
        mask: optional bool tensor `(batch_size, source_length)`; False is padding.

    Returns:
        Float32 weights `(batch_size, source_length)`. Unmasked entries of a row
        sum to 1; a row whose positions are all masked is all zeros (finite).
    """
    scores = ops.cast(scores, "float32")
    if mask is None:
        return ops.softmax(scores, axis=-1)
    mask = ops.cast(mask, "bool")
    # A very negative score underflows to exactly 0 after exp; the final
    # multiplication also zeroes rows whose positions are all masked.
    scores = ops.where(mask, scores, ops.full_like(scores, -1e9))
    weights = ops.softmax(scores, axis=-1)
    return weights * ops.cast(mask, "float32")


class _Scorer(keras.layers.Layer):
    """Shared call logic: score, masked softmax, weighted sum of the keys."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # The mask is consumed here; the outputs carry no time axis to mask.
        self.supports_masking = True

    def compute_mask(self, *args, **kwargs):
        return None

    def project_keys(self, keys):
        """Key-side part of the score, computed once per source sentence.

        Args:
            keys: `(batch_size, source_length, key_dim)` encoder memory.

        Returns:
            `(batch_size, source_length, projected_dim)`; pass it back as
            `projected_keys` at every decoder step.
        """
        raise NotImplementedError

    def score(self, query, projected_keys):
        """Unnormalised scores e_j, `(batch_size, source_length)`."""
        raise NotImplementedError

    def call(self, query, keys, mask=None, projected_keys=None):
        if projected_keys is None:
            projected_keys = self.project_keys(keys)
        scores = self.score(query, projected_keys)  # (batch, source_len)
        weights = masked_softmax(scores, mask)  # (batch, source_len), float32
        weights_c = ops.cast(weights, keys.dtype)
        context = ops.einsum("bs,bsd->bd", weights_c, keys)  # (batch, key_dim)
        return context, weights

    def compute_output_spec(self, query, keys, mask=None, projected_keys=None):
        batch, source_len, key_dim = keys.shape
        return (
            keras.KerasTensor((batch, key_dim), dtype=keys.dtype),
            keras.KerasTensor((batch, source_len), dtype="float32"),
        )


@keras.saving.register_keras_serializable(package="seq2seq_attn")
class BahdanauAttention(_Scorer):
    """Additive attention of Bahdanau et al. (2015), eq. 6 and appendix A.1.1.

    e_j = v^T tanh(W_q s + W_k h_j + b); weights = softmax_j(e_j) over unmasked j;
    context = sum_j weights_j h_j. With `normalize=True` the score vector is
    weight-normalised, v <- g v / ||v|| with a learned scalar gain g (the
    "normed Bahdanau" option of the TensorFlow NMT codebase).

    Args:
        units: Positive int, size of the hidden layer of the scorer.
        normalize: Bool, use the weight-normalised score vector.
        kernel_initializer: Initializer for `W_q` and `W_k`.
        bias_initializer: Initializer for `b`.
        score_initializer: Initializer for `v`.

    Call arguments:
        query: `(batch_size, query_dim)`, the previous decoder state s_{i-1}.
        keys: `(batch_size, source_length, key_dim)`, the encoder states h_j.
        mask: Optional bool `(batch_size, source_length)`; False marks padding.
        projected_keys: Optional result of `project_keys(keys)`.

    Returns:
        `(context, weights)`: `(batch_size, key_dim)` and float32
        `(batch_size, source_length)`.

    Example:

    >>> import numpy as np
    >>> from seq2seq_attn.attention import BahdanauAttention
    >>> layer = BahdanauAttention(8)
    >>> context, weights = layer(np.ones((2, 4)), np.ones((2, 5, 6)))
    >>> context.shape, weights.shape
    (TensorShape([2, 6]), TensorShape([2, 5]))
    """

    def __init__(
        self,
        units,
        normalize=False,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        score_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_int("units", units)
        self.units = units
        self.normalize = bool(normalize)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.score_initializer = keras.initializers.get(score_initializer)

    def build(self, query_shape, keys_shape, projected_keys_shape=None):
        if query_shape[-1] is None or keys_shape[-1] is None:
            raise ValueError(
                "BahdanauAttention needs known feature sizes, received "
                f"query_shape={tuple(query_shape)}, keys_shape={tuple(keys_shape)}"
            )
        self.query_kernel = self.add_weight(
            name="query_kernel",
            shape=(query_shape[-1], self.units),
            initializer=self.kernel_initializer,
        )
        self.key_kernel = self.add_weight(
            name="key_kernel",
            shape=(keys_shape[-1], self.units),
            initializer=self.kernel_initializer,
        )
        self.bias = self.add_weight(
            name="bias", shape=(self.units,), initializer=self.bias_initializer
        )
        self.score_vector = self.add_weight(
            name="score_vector", shape=(self.units,), initializer=self.score_initializer
        )
        if self.normalize:
            # TF NMT initialises g to sqrt(1 / units).
            self.gain = self.add_weight(
                name="gain",
                shape=(),
                initializer=keras.initializers.Constant(math.sqrt(1.0 / self.units)),
            )

    def project_keys(self, keys):
        _check_last_dim("keys", keys.shape, self.key_kernel.shape[0], "the key kernel input size")
        return ops.matmul(keys, self.key_kernel)  # (batch, source_len, units)

    def score(self, query, projected_keys):
        _check_last_dim(
            "query", query.shape, self.query_kernel.shape[0], "the query kernel input size"
        )
        q = ops.matmul(query, self.query_kernel) + self.bias  # (batch, units)
        hidden = ops.tanh(projected_keys + ops.expand_dims(q, 1))  # (batch, source_len, units)
        v = self.score_vector
        if self.normalize:
            v = self.gain * v / ops.sqrt(ops.sum(ops.square(v)))
        return ops.einsum("bsu,u->bs", hidden, v)  # (batch, source_len)

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            normalize=self.normalize,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            score_initializer=keras.initializers.serialize(self.score_initializer),
        )
        return config


@keras.saving.register_keras_serializable(package="seq2seq_attn")
class LuongAttention(_Scorer):
    """Multiplicative attention of Luong et al. (2015), eq. 8.

    Scores, for query s (decoder state) and key h_j (encoder state):
      - "dot":        e_j = s . h_j  (needs query_dim == key_dim)
      - "scaled_dot": e_j = s . h_j / sqrt(key_dim)
      - "general":    e_j = s^T W_a h_j, with W_a `(query_dim, key_dim)`
      - "concat":     e_j = v^T tanh(W_q s + W_k h_j)  (needs `units`)

    Args:
        units: Positive int, hidden size of the "concat" score; must be None
            for the other scores.
        score: One of "dot", "general", "scaled_dot", "concat".
        kernel_initializer: Initializer for the kernels.

    Call arguments and returns: as `BahdanauAttention`.

    Example:

    >>> import numpy as np
    >>> from seq2seq_attn.attention import LuongAttention
    >>> layer = LuongAttention(score="general")
    >>> context, weights = layer(np.ones((2, 4)), np.ones((2, 5, 6)))
    >>> weights.shape
    TensorShape([2, 5])
    """

    def __init__(self, units=None, score="general", kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if score not in LUONG_SCORES:
            raise ValueError(f"`score` must be one of {LUONG_SCORES}, received: score={score!r}")
        if score == "concat":
            check_positive_int("units", units)
        elif units is not None:
            raise ValueError(f"`units` is only used by score='concat', received: units={units!r}")
        self.units = units
        self.score_name = score
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, query_shape, keys_shape, projected_keys_shape=None):
        query_dim, key_dim = query_shape[-1], keys_shape[-1]
        if self.score_name in ("dot", "scaled_dot") and query_dim != key_dim:
            raise ValueError(
                f"score={self.score_name!r} needs query and keys of the same size, received "
                f"query_shape={tuple(query_shape)}, keys_shape={tuple(keys_shape)}"
            )
        init = self.kernel_initializer
        if self.score_name == "general":
            self.kernel = self.add_weight(
                name="kernel", shape=(query_dim, key_dim), initializer=init
            )
        elif self.score_name == "concat":
            self.query_kernel = self.add_weight(
                name="query_kernel", shape=(query_dim, self.units), initializer=init
            )
            self.key_kernel = self.add_weight(
                name="key_kernel", shape=(key_dim, self.units), initializer=init
            )
            self.score_vector = self.add_weight(
                name="score_vector", shape=(self.units,), initializer=init
            )
        self._key_dim = key_dim

    def project_keys(self, keys):
        if self.score_name == "general":
            return ops.matmul(keys, ops.transpose(self.kernel))  # (batch, source_len, query_dim)
        if self.score_name == "concat":
            return ops.matmul(keys, self.key_kernel)  # (batch, source_len, units)
        if self.score_name == "scaled_dot":
            return keys / math.sqrt(self._key_dim)
        return keys

    def score(self, query, projected_keys):
        if self.score_name == "concat":
            q = ops.matmul(query, self.query_kernel)  # (batch, units)
            hidden = ops.tanh(projected_keys + ops.expand_dims(q, 1))  # (batch, source_len, units)
            return ops.einsum("bsu,u->bs", hidden, self.score_vector)
        _check_last_dim("query", query.shape, projected_keys.shape[-1], "the projected key size")
        return ops.einsum("bd,bsd->bs", query, projected_keys)  # (batch, source_len)

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            score=self.score_name,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
