"""Attention scorers against an independent NumPy computation, invariants and bad arguments."""

import keras
import numpy as np
import pytest

from seq2seq_attn.attention import BahdanauAttention, LuongAttention, masked_softmax

ATOL = 1e-6
RNG = np.random.default_rng(1234)
BATCH, SOURCE_LEN, QUERY_DIM, KEY_DIM, UNITS = 3, 5, 4, 6, 7
QUERY = RNG.normal(size=(BATCH, QUERY_DIM)).astype("float32")
KEYS = RNG.normal(size=(BATCH, SOURCE_LEN, KEY_DIM)).astype("float32")
MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=bool)


def np_softmax(scores, mask):
    scores = np.where(mask, scores, -np.inf)
    e = np.exp(scores - scores.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_attend(scores, keys, mask):
    if mask is None:
        mask = np.ones(scores.shape, bool)
    weights = np_softmax(scores.astype("float64"), mask)
    return np.einsum("bs,bsd->bd", weights, keys), weights


def np_bahdanau(query, keys, w_q, w_k, b, v, gain=None):
    if gain is not None:
        v = gain * v / np.linalg.norm(v)
    hidden = np.tanh((query @ w_q)[:, None, :] + keys @ w_k + b)  # (b, s, u)
    return hidden @ v


def set_random_weights(layer):
    weights = [RNG.normal(size=w.shape).astype("float32") for w in layer.get_weights()]
    layer.set_weights(weights)
    return weights


@pytest.mark.parametrize("mask", [None, MASK], ids=["no_mask", "mask"])
@pytest.mark.parametrize("normalize", [False, True])
def test_bahdanau_matches_numpy(normalize, mask):
    layer = BahdanauAttention(UNITS, normalize=normalize)
    layer(QUERY, KEYS)
    weights = set_random_weights(layer)
    w_q, w_k, b, v = weights[:4]
    gain = weights[4] if normalize else None
    context, attn = layer(QUERY, KEYS, mask=mask)
    ref_context, ref_attn = np_attend(np_bahdanau(QUERY, KEYS, w_q, w_k, b, v, gain), KEYS, mask)
    np.testing.assert_allclose(attn, ref_attn, atol=ATOL)
    np.testing.assert_allclose(context, ref_context, atol=ATOL)


def test_bahdanau_constant_weights_by_hand():
    # All weights 0.5, gain unused; query and keys chosen so the scores are simple.
    const = keras.initializers.Constant(0.5)
    layer = BahdanauAttention(
        2, kernel_initializer=const, bias_initializer=const, score_initializer=const
    )
    query = np.array([[0.0]], "float32")
    keys = np.array([[[0.0], [2.0]]], "float32")
    context, weights = layer(query, keys)
    # e_j = 0.5 * 2 * tanh(0.5 * h_j + 0.5) -> e = [tanh(0.5), tanh(1.5)]
    e = np.array([np.tanh(0.5), np.tanh(1.5)])
    expected = np.exp(e) / np.exp(e).sum()
    np.testing.assert_allclose(weights[0], expected, atol=ATOL)
    np.testing.assert_allclose(context[0, 0], 2.0 * expected[1], atol=ATOL)


def test_bahdanau_weight_shapes_and_names():
    layer = BahdanauAttention(UNITS, normalize=True)
    layer(QUERY, KEYS)
    shapes = {w.name: tuple(w.shape) for w in layer.weights}
    assert shapes == {
        "query_kernel": (QUERY_DIM, UNITS),
        "key_kernel": (KEY_DIM, UNITS),
        "bias": (UNITS,),
        "score_vector": (UNITS,),
        "gain": (),
    }
    assert len(BahdanauAttention(UNITS).weights) == 0  # nothing before build


@pytest.mark.parametrize("mask", [None, MASK], ids=["no_mask", "mask"])
@pytest.mark.parametrize("score", ["dot", "scaled_dot", "general", "concat"])
def test_luong_matches_numpy(score, mask):
    query = QUERY if score in ("general", "concat") else RNG.normal(size=(BATCH, KEY_DIM))
    query = query.astype("float32")
    layer = LuongAttention(UNITS if score == "concat" else None, score=score)
    layer(query, KEYS)
    weights = set_random_weights(layer)
    if score == "dot":
        scores = np.einsum("bd,bsd->bs", query, KEYS)
    elif score == "scaled_dot":
        scores = np.einsum("bd,bsd->bs", query, KEYS) / np.sqrt(KEY_DIM)
    elif score == "general":
        scores = np.einsum("bq,qk,bsk->bs", query, weights[0], KEYS)
    else:
        w_q, w_k, v = weights
        scores = np.tanh((query @ w_q)[:, None, :] + KEYS @ w_k) @ v
    context, attn = layer(query, KEYS, mask=mask)
    ref_context, ref_attn = np_attend(scores, KEYS, mask)
    np.testing.assert_allclose(attn, ref_attn, atol=ATOL)
    np.testing.assert_allclose(context, ref_context, atol=ATOL)


@pytest.mark.parametrize(
    "layer",
    [BahdanauAttention(UNITS), BahdanauAttention(UNITS, normalize=True), LuongAttention()],
    ids=["bahdanau", "normed", "luong"],
)
def test_mask_invariants(layer):
    mask = MASK.copy()
    mask[2] = False  # a fully masked row
    scale = np.float32(30.0)  # large scores stress the masking
    context, weights = layer(QUERY * scale, KEYS * scale, mask=mask)
    weights, context = np.asarray(weights), np.asarray(context)
    assert np.all(weights[~mask] == 0.0)
    np.testing.assert_allclose(weights[:2].sum(-1), 1.0, atol=1e-6)
    assert np.all(np.isfinite(weights)) and np.all(np.isfinite(context))
    assert np.all(weights[2] == 0.0) and np.all(context[2] == 0.0)


def test_projected_keys_reused_gives_same_result():
    layer = BahdanauAttention(UNITS)
    direct = layer(QUERY, KEYS, mask=MASK)
    projected = layer.project_keys(KEYS)
    reused = layer(QUERY, KEYS, mask=MASK, projected_keys=projected)
    for a, b in zip(direct, reused, strict=True):
        np.testing.assert_array_equal(a, b)


def test_masked_softmax_exact_zero_and_normalised():
    scores = np.array([[1.0, 2.0, 3.0], [5.0, -5.0, 0.0]], "float32")
    mask = np.array([[True, False, True], [False, False, False]])
    weights = np.asarray(masked_softmax(scores, mask))
    expected = np.exp([1.0, 3.0]) / np.exp([1.0, 3.0]).sum()
    np.testing.assert_allclose(weights[0, [0, 2]], expected, atol=ATOL)
    assert weights[0, 1] == 0.0 and np.all(weights[1] == 0.0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: BahdanauAttention(UNITS, normalize=True, name="a"),
        lambda: LuongAttention(UNITS, score="concat"),
        lambda: LuongAttention(score="scaled_dot"),
    ],
)
def test_config_round_trip(make):
    layer = make()
    query = QUERY if layer.get_config().get("score") != "scaled_dot" else KEYS[:, 0]
    out = layer(query, KEYS, mask=MASK)
    clone = layer.__class__.from_config(layer.get_config())
    clone(query, KEYS, mask=MASK)
    clone.set_weights(layer.get_weights())
    for a, b in zip(out, clone(query, KEYS, mask=MASK), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: BahdanauAttention(0), "units=0"),
        (lambda: BahdanauAttention(-3), "units=-3"),
        (lambda: BahdanauAttention(2.5), "units=2.5"),
        (lambda: LuongAttention(score="cosine"), "score='cosine'"),
        (lambda: LuongAttention(score="concat"), "units=None"),
        (lambda: LuongAttention(8, score="dot"), "units=8"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_mismatched_shapes():
    with pytest.raises(ValueError, match="same size"):
        LuongAttention(score="dot")(QUERY, KEYS)  # query 4 vs keys 6
    layer = BahdanauAttention(UNITS)
    layer(QUERY, KEYS)
    with pytest.raises(ValueError, match="keys"):
        layer(QUERY, np.ones((BATCH, SOURCE_LEN, KEY_DIM + 1), "float32"))
    with pytest.raises(ValueError, match="query"):
        layer(np.ones((BATCH, QUERY_DIM + 2), "float32"), KEYS)
