"""The tf.data input pipeline: strings -> in-graph tokenization -> length buckets -> batches.

Each element is `((source_ids, target_in_ids), target_out_ids)`, int32, padded with 0:
`target_in` is `[START] y_1 .. y_n` and `target_out` is `y_1 .. y_n [END]`.
"""

import tensorflow as tf

# The pipeline's functions are plain graph code: tf.data would otherwise run AutoGraph over
# them and over tensorflow-text's tokenizer on every trace.
from tensorflow.autograph.experimental import do_not_convert

from seq2seq_attn.errors import DataError
from seq2seq_attn.shortlist import top_ids
from seq2seq_attn.tokenizer import END_ID

DEFAULT_BOUNDARIES = (8, 12, 16, 24, 32, 48, 64, 96)


def tokenize_pairs(pairs, tokenizers, max_source_length=None, max_target_length=None):
    """Tokenizes `(source, target)` pairs once, in the graph, dropping over-long pairs.

    Args:
        pairs: sequence of `(source, target)` strings.
        tokenizers: a `seq2seq_attn.graph_tokenizer.GraphTokenizerPair`.
        max_source_length, max_target_length: optional token limits, counting
            [START] and [END]; longer pairs are dropped.

    Returns:
        A `tf.data.Dataset` of `(source_ids, target_ids)` int32 vectors, cached.
    """
    if not pairs:
        raise DataError("no sentence pairs to build a dataset from")
    sources = tf.constant([s for s, _ in pairs])
    targets = tf.constant([t for _, t in pairs])
    ds = tf.data.Dataset.from_tensor_slices((sources, targets)).batch(1024)
    ds = ds.map(
        do_not_convert(
            lambda s, t: (
                tokenizers.source.tokenize(s).to_tensor(),  # (1024, longest) padded with 0
                tokenizers.target.tokenize(t).to_tensor(),
            )
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
    ).unbatch()
    # Id 0 only ever appears as padding: strip it to get back one vector per sentence.
    ds = ds.map(
        do_not_convert(lambda s, t: (tf.boolean_mask(s, s != 0), tf.boolean_mask(t, t != 0)))
    )

    @do_not_convert
    def short_enough(source, target):
        ok = tf.constant(True)
        if max_source_length:
            ok = tf.logical_and(ok, tf.size(source) <= max_source_length)
        if max_target_length:
            ok = tf.logical_and(ok, tf.size(target) <= max_target_length)
        return ok

    return ds.filter(short_enough).cache()


@do_not_convert
def _to_model_inputs(source, target):
    # Drop [START] from the outputs and [END] from the inputs; padded [END]s
    # (0 after the first [END]) stay 0 because padding was 0 to begin with.
    target_in = tf.where(tf.equal(target[:, :-1], END_ID), 0, target[:, :-1])
    return (source, target_in), target[:, 1:]


def bucket_batch_sizes(boundaries, batch_size=None, batch_tokens=None, max_length=None):
    """Sentences per batch in each length bucket: fixed, or by token count.

    Bucket `i` holds pairs whose longer side has fewer than `boundaries[i]` tokens (the last
    bucket: `boundaries[-1]` or more, up to `max_length`). With `batch_tokens`, a bucket's
    batch holds `max(1, batch_tokens // longest)` pairs, `longest` being the most tokens a
    pair of that bucket can have, so a padded batch never exceeds `batch_tokens` tokens per
    side (fairseq's `--max-tokens`), except a lone pair longer than that.

    Args:
        boundaries: Increasing positive ints.
        batch_size: Positive int, sentences per batch when `batch_tokens` is None.
        batch_tokens: Positive int or None.
        max_length: The longest pair the last bucket can hold (default twice the last
            boundary).

    Returns:
        A list of `len(boundaries) + 1` positive ints.

    Example:

    >>> bucket_batch_sizes([8, 16], batch_tokens=100, max_length=40)
    [14, 6, 2]
    """
    if batch_tokens is None:
        if batch_size is None or batch_size <= 0:
            raise ValueError(f"`batch_size` must be positive, received: batch_size={batch_size}")
        return [batch_size] * (len(boundaries) + 1)
    if batch_tokens <= 0:
        raise ValueError(f"`batch_tokens` must be positive, received: batch_tokens={batch_tokens}")
    last = max_length if max_length else 2 * boundaries[-1]
    longest = [b - 1 for b in boundaries] + [max(last, boundaries[-1])]
    return [max(1, batch_tokens // n) for n in longest]


def padded_boundaries(boundaries, max_length):
    """The bucket boundaries under `pad_to_bucket`: those up to `max_length`, then
    `max_length + 1`, so that every pair fits a bucket and the last pads to `max_length`.

    Args:
        boundaries: Increasing positive ints.
        max_length: Positive int, the most tokens a pair (its longer side) can have.

    Returns:
        A list of increasing ints; a batch of bucket `i` is `boundaries[i] - 1` wide.

    Example:

    >>> padded_boundaries([8, 16, 32], 20)
    [8, 16, 21]
    """
    if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length <= 0:
        raise ValueError(
            f"`pad_to_bucket` needs a positive `max_length`, received: max_length={max_length!r}"
        )
    return [b for b in boundaries if b <= max_length] + [max_length + 1]


def make_dataset(
    tokenized,
    batch_size,
    shuffle=False,
    seed=0,
    boundaries=DEFAULT_BOUNDARIES,
    batch_tokens=None,
    max_length=None,
    pad_to_bucket=False,
):
    """Buckets tokenized pairs by length and pads them into model-ready batches.

    Args:
        tokenized: dataset from `tokenize_pairs`.
        batch_size: positive int, sentences per batch (unused with `batch_tokens`).
        shuffle: bool, shuffle before bucketing (each epoch differently, seeded).
        seed: int.
        boundaries: bucket boundaries on the longer side's token count.
        batch_tokens: optional positive int: batch by token count instead (see
            `bucket_batch_sizes`).
        max_length: optional int, the longest pair in `tokenized` (its length limits),
            which sizes the last bucket's batches under `batch_tokens`.
        pad_to_bucket: bool, pad each batch to the longest pair its bucket can hold
            (`padded_boundaries(boundaries, max_length)` minus one) rather than to its own
            longest pair; needs `max_length`. Batches then come in a bounded set of
            shapes, so XLA (`jit_compile`) compiles each once: one width per bucket,
            and at most two batch sizes (full, and the bucket's last batch, whose size
            is the same every epoch). No pair is dropped.

    Returns:
        `tf.data.Dataset` of `((source_ids, target_in_ids), target_out_ids)`.
    """
    if pad_to_bucket:
        boundaries = padded_boundaries(boundaries, max_length)
    sizes = bucket_batch_sizes(list(boundaries), batch_size, batch_tokens, max_length)
    ds = tokenized
    if shuffle:
        ds = ds.shuffle(20_000, seed=seed, reshuffle_each_iteration=True)
    ds = ds.bucket_by_sequence_length(
        lambda s, t: tf.maximum(tf.size(s), tf.size(t)),
        bucket_boundaries=list(boundaries),
        bucket_batch_sizes=sizes,
        padded_shapes=([None], [None]),
        pad_to_bucket_boundary=pad_to_bucket,
    )
    return ds.map(_to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def most_frequent_targets(tokenized, vocab_size, count):
    """Sorted int32 ids of the `count` most frequent target ids of `tokenized` (the pairs
    of `tokenize_pairs`), counted in one pass; ties go to the lower id."""
    counts = tokenized.reduce(
        tf.zeros([vocab_size], tf.int64),
        do_not_convert(
            lambda total, pair: (
                total
                + tf.math.bincount(
                    pair[1], minlength=vocab_size, maxlength=vocab_size, dtype=tf.int64
                )
            )
        ),
    )
    return top_ids(counts.numpy(), count)


def candidate_targets(always=(), full=None, vocab_size=None):
    """A `Dataset.map` function giving each batch its own softmax vocabulary.

    Sampled softmax by target partition (Jean et al. 2015): a batch's logits are computed
    only for the ids its targets hold, plus `always` (for example the most frequent
    pieces), so the output layer multiplies by `(feature_size, candidates)` weights
    instead of `(feature_size, vocab_size)`. The targets are renumbered to their position
    among the candidates; the candidates begin with 0 (padding), so padding stays 0.

    Args:
        always: int target ids every batch's candidates include.
        full: optional bool `tf.Variable`: while it holds True, a batch's candidates are
            all `vocab_size` ids in order and its targets are left as they are (the full
            softmax, for example in a budget's cool-down: `callbacks.FullSoftmaxCooldown`).
        vocab_size: the target vocabulary's size; required with `full`.

    Returns:
        A function `((source, target_in), target_out) -> ((source, target_in,
        candidates), positions)`: int32 candidates `(C,)`, unique, 0 first, and the
        targets' positions among them, shaped and typed like `target_out`.

    Example:

    >>> import numpy as np
    >>> remap = candidate_targets(always=[7])
    >>> (_, _, ids), positions = remap((None, None), np.array([[5, 3, 0], [9, 3, 0]]))
    >>> ids.numpy().tolist(), positions.numpy().tolist()
    ([0, 7, 5, 3, 9], [[2, 3, 0], [4, 3, 0]])
    """
    head = tf.constant([0, *[int(i) for i in always]], tf.int32)
    if full is not None and vocab_size is None:
        raise ValueError("candidate_targets(full=...) needs vocab_size")

    def partition(targets):
        flat = tf.reshape(targets, [-1])
        ids, index = tf.unique(tf.concat([head, flat], 0))  # first occurrences, in order
        return ids, tf.reshape(index[tf.size(head) :], tf.shape(targets))

    @do_not_convert
    def remap(inputs, target_out):
        targets = tf.cast(target_out, tf.int32)
        if full is None:
            ids, positions = partition(targets)
        else:
            ids, positions = tf.cond(
                full, lambda: (tf.range(vocab_size), targets), lambda: partition(targets)
            )
        return (*inputs, ids), tf.cast(positions, target_out.dtype)

    return remap
