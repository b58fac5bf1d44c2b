"""The tf.data input pipeline: strings -> in-graph tokenization -> length buckets -> batches.

Each element is `((source_ids, target_in_ids), target_out_ids)`, int32, padded with 0:
`target_in` is `[START] y_1 .. y_n` and `target_out` is `y_1 .. y_n [END]`.
"""

import tensorflow as tf

from seq2seq_attn.errors import DataError
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
        lambda s, t: (
            tokenizers.source.tokenize(s).to_tensor(),  # (1024, longest) padded with 0
            tokenizers.target.tokenize(t).to_tensor(),
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
    ).unbatch()
    # Id 0 only ever appears as padding: strip it to get back one vector per sentence.
    ds = ds.map(lambda s, t: (tf.boolean_mask(s, s != 0), tf.boolean_mask(t, t != 0)))

    def short_enough(source, target):
        ok = tf.constant(True)
        if max_source_length:
            ok = tf.logical_and(ok, tf.size(source) <= max_source_length)
        if max_target_length:
            ok = tf.logical_and(ok, tf.size(target) <= max_target_length)
        return ok

    return ds.filter(short_enough).cache()


def _to_model_inputs(source, target):
    # Drop [START] from the outputs and [END] from the inputs; padded [END]s
    # (0 after the first [END]) stay 0 because padding was 0 to begin with.
    target_in = tf.where(tf.equal(target[:, :-1], END_ID), 0, target[:, :-1])
    return (source, target_in), target[:, 1:]


def make_dataset(tokenized, batch_size, shuffle=False, seed=0, boundaries=DEFAULT_BOUNDARIES):
    """Buckets tokenized pairs by length and pads them into model-ready batches.

    Args:
        tokenized: dataset from `tokenize_pairs`.
        batch_size: positive int, sentences per batch.
        shuffle: bool, shuffle before bucketing (each epoch differently, seeded).
        seed: int.
        boundaries: bucket boundaries on the longer side's token count.

    Returns:
        `tf.data.Dataset` of `((source_ids, target_in_ids), target_out_ids)`.
    """
    if batch_size <= 0:
        raise ValueError(f"`batch_size` must be positive, received: batch_size={batch_size}")
    ds = tokenized
    if shuffle:
        ds = ds.shuffle(20_000, seed=seed, reshuffle_each_iteration=True)
    ds = ds.bucket_by_sequence_length(
        lambda s, t: tf.maximum(tf.size(s), tf.size(t)),
        bucket_boundaries=list(boundaries),
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        padded_shapes=([None], [None]),
    )
    return ds.map(_to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
