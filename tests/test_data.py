"""The input pipeline's batching: sentences per batch, or tokens per batch within buckets."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from seq2seq_attn.data import bucket_batch_sizes, make_dataset, padded_boundaries

BOUNDARIES = (4, 8, 16)


def _tokenized(lengths):
    """A `tokenize_pairs`-like dataset: pair i is [START] i.. [END] on both sides, `lengths`
    tokens on the longer side (the target one token shorter where possible)."""
    sources, targets = [], []
    for i, n in enumerate(lengths):
        body = [10 + i] * (n - 2)
        sources.append([2, *body, 3])
        targets.append([2, *body[: max(0, n - 3)], 3])
    return tf.data.Dataset.from_tensor_slices(
        (tf.ragged.constant(sources), tf.ragged.constant(targets))
    ).map(lambda s, t: (s, t))


def test_bucket_batch_sizes_by_hand():
    # buckets hold longest 3, 7, 15 and (last) up to max_length 40 tokens
    assert bucket_batch_sizes(BOUNDARIES, batch_tokens=60, max_length=40) == [20, 8, 4, 1]
    assert bucket_batch_sizes(BOUNDARIES, batch_tokens=10, max_length=40) == [3, 1, 1, 1]
    assert bucket_batch_sizes(BOUNDARIES, batch_size=5) == [5, 5, 5, 5]
    # no max_length: the last bucket is taken as twice the last boundary
    assert bucket_batch_sizes(BOUNDARIES, batch_tokens=64) == [21, 9, 4, 2]
    with pytest.raises(ValueError, match="batch_tokens"):
        bucket_batch_sizes(BOUNDARIES, batch_tokens=0)
    with pytest.raises(ValueError, match="batch_size"):
        bucket_batch_sizes(BOUNDARIES, batch_size=0)


def test_token_batches_stay_under_the_budget_and_keep_every_pair():
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 41, size=300).tolist()
    budget = 60
    ds = make_dataset(
        _tokenized(lengths), 999, boundaries=BOUNDARIES, batch_tokens=budget, max_length=40
    )
    rows, sizes = 0, {}
    for (source, target_in), _ in ds.as_numpy_iterator():
        batch, width = source.shape
        longest = max(width, target_in.shape[1] + 1)  # target_in lacks [END]
        assert batch * longest <= budget or batch == 1, (batch, longest)
        bucket = int(np.searchsorted(BOUNDARIES, longest, side="right"))
        sizes.setdefault(bucket, []).append(batch)
        rows += batch
    assert rows == len(lengths)
    # Each bucket's batches are full but for its last one.
    expected = bucket_batch_sizes(BOUNDARIES, batch_tokens=budget, max_length=40)
    in_bucket = np.bincount(np.searchsorted(BOUNDARIES, lengths, side="right"), minlength=4)
    for bucket, found in sizes.items():
        assert sum(found) == in_bucket[bucket]
        assert found.count(expected[bucket]) == in_bucket[bucket] // expected[bucket]


def test_sentence_batches_are_unchanged_without_batch_tokens():
    lengths = [3] * 10 + [20] * 7
    ds = make_dataset(_tokenized(lengths), 4, boundaries=BOUNDARIES)
    batches = sorted(x[0].shape[0] for x, _ in ds.as_numpy_iterator())
    assert batches == [2, 3, 4, 4, 4]  # 10 short -> 4, 4, 2; 7 long -> 4, 3


def test_padded_boundaries_by_hand():
    assert padded_boundaries(BOUNDARIES, 40) == [4, 8, 16, 41]
    assert padded_boundaries(BOUNDARIES, 10) == [4, 8, 11]  # 16 is past the longest pair
    assert padded_boundaries(BOUNDARIES, 8) == [4, 8, 9]
    assert padded_boundaries(BOUNDARIES, 3) == [4]
    for bad in (None, 0, True):
        with pytest.raises(ValueError, match="max_length"):
            padded_boundaries(BOUNDARIES, bad)
    with pytest.raises(ValueError, match="max_length"):
        make_dataset(_tokenized([5]), 4, boundaries=BOUNDARIES, pad_to_bucket=True)


def _pairs_back(batches):
    """The `(source, target)` id tuples of model-ready batches, padding stripped."""
    pairs = []
    for (source, target_in), target_out in batches:
        for s, t_in, t_out in zip(source, target_in, target_out, strict=True):
            target = [int(t_in[0])] + [int(v) for v in t_out if v]
            pairs.append((tuple(int(v) for v in s if v), tuple(target)))
    return sorted(pairs)


@pytest.mark.parametrize("batch_tokens", [None, 60])
def test_pad_to_bucket_pads_to_the_boundaries_and_keeps_every_pair(batch_tokens):
    rng = np.random.default_rng(1)
    lengths = rng.integers(2, 41, size=300).tolist()
    tokenized = _tokenized(lengths)
    padded = list(
        make_dataset(
            tokenized,
            16,
            shuffle=True,
            boundaries=BOUNDARIES,
            batch_tokens=batch_tokens,
            max_length=40,
            pad_to_bucket=True,
        ).as_numpy_iterator()
    )
    # Bucket edges [4, 8, 16, 41]: widths 3, 7, 15, 40 (target_in/out one shorter).
    widths = {3, 7, 15, 40}
    shapes = set()
    for (source, target_in), target_out in padded:
        assert source.shape[1] in widths
        assert target_in.shape == target_out.shape == (len(source), source.shape[1] - 1)
        longest = max(
            np.count_nonzero(source, axis=1).max(),
            1 + np.count_nonzero(target_out, axis=1).max(),  # [START] y_1 .. [END]
        )
        bucket = int(np.searchsorted([4, 8, 16], longest, side="right"))
        assert source.shape[1] == [3, 7, 15, 40][bucket]
        shapes.add(source.shape)
    assert len(shapes) <= 2 * len(widths)  # a full and a last batch size per bucket
    assert len({s[1] for s in shapes}) == len(widths)
    tokens = list(tokenized.as_numpy_iterator())
    expected = sorted((tuple(map(int, s)), tuple(map(int, t))) for s, t in tokens)
    assert _pairs_back(padded) == expected  # nothing lost, nothing added


def test_loss_on_a_padded_batch_equals_the_loss_on_the_unpadded_one():
    from seq2seq_attn import Seq2SeqAttention

    rng = np.random.default_rng(2)
    lengths = rng.integers(3, 16, size=40).tolist()
    sources, targets = [], []
    for n in lengths:  # random ids: [START] ... [END], source and target of other lengths
        sources.append([2, *rng.integers(4, 30, n - 2).tolist(), 3])
        m = int(rng.integers(3, n + 1))
        targets.append([2, *rng.integers(4, 40, m - 2).tolist(), 3])
    tokenized = tf.data.Dataset.from_tensor_slices(
        (tf.ragged.constant(sources), tf.ragged.constant(targets))
    ).map(lambda s, t: (s, t))
    common = dict(boundaries=BOUNDARIES, max_length=16)
    tight = list(make_dataset(tokenized, 8, **common).as_numpy_iterator())
    padded = list(make_dataset(tokenized, 8, pad_to_bucket=True, **common).as_numpy_iterator())
    assert len(tight) == len(padded)
    keras.utils.set_random_seed(3)
    model = Seq2SeqAttention(30, 40, embedding_dim=8, units=16, attention_units=12)
    model.compile(label_smoothing=0.1)
    wider = 0
    for ((s1, t1), y1), ((s2, t2), y2) in zip(tight, padded, strict=True):
        # the same pairs in the same order, only the padding differs
        np.testing.assert_array_equal(s2[:, : s1.shape[1]], s1)
        np.testing.assert_array_equal(y2[:, : y1.shape[1]], y1)
        wider += s2.shape[1] > s1.shape[1] or y2.shape[1] > y1.shape[1]
        loss1 = float(model.compute_loss(y=y1, y_pred=model((s1, t1))))
        loss2 = float(model.compute_loss(y=y2, y_pred=model((s2, t2))))
        assert loss1 > 1.0
        assert loss2 == pytest.approx(loss1, abs=1e-5)
    assert wider > 0  # some batches really were padded further
