"""The decoder step against its teacher-forced unroll, state layout and bad arguments."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from seq2seq_attn.attention import BahdanauAttention, LuongAttention
from seq2seq_attn.decoder import AttentionDecoderCell

ATOL = 1e-5
VOCAB, EMB, UNITS, MEMORY_UNITS = 13, 5, 8, 6
RNG = np.random.default_rng(7)
MEMORY = RNG.normal(size=(2, 4, MEMORY_UNITS)).astype("float32")
MASK = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool)
TARGET_IN = np.array([[2, 5, 6, 7, 8], [2, 9, 10, 0, 0]], "int32")


def make_cell(rnn, attention, input_feeding=False):
    scorers = {
        "bahdanau": lambda: BahdanauAttention(7),
        "luong": lambda: LuongAttention(score="general"),
        None: lambda: None,
    }
    return AttentionDecoderCell(
        VOCAB,
        EMB,
        UNITS,
        MEMORY_UNITS,
        attention=scorers[attention](),
        rnn=rnn,
        input_feeding=input_feeding,
    )


def initial_states(cell):
    return [RNG.normal(size=(2, size)).astype("float32") for size in cell.state_sizes]


CASES = [
    ("gru", "bahdanau", False),
    ("lstm", "bahdanau", False),
    ("gru", "luong", True),
    ("lstm", "luong", True),
    ("lstm", "luong", False),
    ("gru", None, False),
]


@pytest.mark.parametrize("rnn, attention, input_feeding", CASES)
def test_step_by_step_equals_unroll(rnn, attention, input_feeding):
    cell = make_cell(rnn, attention, input_feeding)
    cell.build()
    states = initial_states(cell)
    keys = cell.project_keys(MEMORY)
    logits, weights = cell.unroll(TARGET_IN, states, MEMORY, keys, MASK)
    for t in range(TARGET_IN.shape[1]):
        step_logits, states, step_weights = cell(TARGET_IN[:, t], states, MEMORY, keys, MASK)
        np.testing.assert_allclose(step_logits, logits[:, t], atol=ATOL)
        np.testing.assert_allclose(step_weights, weights[:, t], atol=ATOL)
    assert logits.shape == (2, TARGET_IN.shape[1], VOCAB)
    assert logits.dtype == "float32"


def test_state_sizes():
    assert make_cell("gru", "bahdanau").state_sizes == [UNITS]
    assert make_cell("lstm", "bahdanau").state_sizes == [UNITS, UNITS]
    assert make_cell("lstm", "luong", True).state_sizes == [UNITS, UNITS, UNITS]


def test_vanilla_decoder_ignores_memory_after_start():
    cell = make_cell("gru", None)
    cell.build()
    states = initial_states(cell)
    a, _, w = cell(TARGET_IN[:, 0], states, MEMORY, None, MASK)
    b, _, _ = cell(TARGET_IN[:, 0], states, MEMORY * 0.0 + 5.0, None, MASK)
    np.testing.assert_array_equal(a, b)
    assert np.all(np.asarray(w) == 0.0)


def test_masked_memory_gets_zero_attention_in_step():
    cell = make_cell("gru", "bahdanau")
    cell.build()
    _, _, weights = cell(TARGET_IN[:, 0], initial_states(cell), MEMORY, None, MASK)
    assert np.all(np.asarray(weights)[~MASK] == 0.0)


@pytest.mark.parametrize("rnn, attention, input_feeding", CASES[:3])
def test_config_round_trip(rnn, attention, input_feeding):
    cell = make_cell(rnn, attention, input_feeding)
    cell.build()
    states = initial_states(cell)
    clone = AttentionDecoderCell.from_config(cell.get_config())
    clone.build()
    clone.set_weights(cell.get_weights())
    a = cell(TARGET_IN[:, 1], states, MEMORY, None, MASK)[0]
    b = clone(TARGET_IN[:, 1], states, MEMORY, None, MASK)[0]
    np.testing.assert_array_equal(a, b)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(cell))
    assert restored.get_config() == cell.get_config()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(vocab_size=0), "vocab_size=0"),
        (dict(units=-1), "units=-1"),
        (dict(rnn="transformer"), "rnn='transformer'"),
        (dict(input_feeding=True, attention=None), "attention=None"),
        (dict(dropout=1.0), "dropout=1.0"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = dict(vocab_size=VOCAB, embedding_dim=EMB, units=UNITS, memory_units=MEMORY_UNITS)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        AttentionDecoderCell(**args)


# Stacked layers and tied embeddings: an independent NumPy reference of one step.


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_gru(x, states, w):
    """Keras GRUCell, reset_after=True: gates [z, r, h], bias rows (input, recurrent)."""
    (h,) = states
    xz, xr, xh = np.split(x @ w["kernel"] + w["bias"][0], 3, axis=-1)
    hz, hr, hh = np.split(h @ w["recurrent_kernel"] + w["bias"][1], 3, axis=-1)
    z, r = sigmoid(xz + hz), sigmoid(xr + hr)
    h = z * h + (1.0 - z) * np.tanh(xh + r * hh)
    return h, [h]


def np_lstm(x, states, w):
    """Keras LSTMCell: gates [i, f, c, o]."""
    h, c = states
    i, f, g, o = np.split(x @ w["kernel"] + h @ w["recurrent_kernel"] + w["bias"], 4, axis=-1)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    h = sigmoid(o) * np.tanh(c)
    return h, [h, c]


def np_bahdanau(w, query, memory, mask):
    """e_j = v^T tanh(W_q s + b + W_k h_j), masked softmax, context = sum_j a_j h_j."""
    hidden = np.tanh(memory @ w["key_kernel"] + (query @ w["query_kernel"] + w["bias"])[:, None])
    scores = np.where(mask, hidden @ w["score_vector"], -np.inf)  # (batch, source_len)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return (weights[..., None] * memory).sum(1), weights


def np_step(w, rnn, num_layers, tied, prev, states, memory, mask):
    """The documented equations: query h^N_{i-1}; o^l = RNN_l(o^{l-1}) (+ o^{l-1} for l >= 3)."""
    n = 2 if rnn == "lstm" else 1
    cell = np_lstm if rnn == "lstm" else np_gru
    context, weights = np_bahdanau(w["attention"], states[(num_layers - 1) * n], memory, mask)
    x = np.concatenate([w["embedding"]["embeddings"][prev], context], axis=-1)
    new_states = []
    for layer in range(num_layers):
        name = "rnn_cell" if layer == 0 else f"rnn_cell_{layer + 1}"
        out, layer_states = cell(x, states[layer * n : (layer + 1) * n], w[name])
        x = out + x if layer >= 2 else out
        new_states += layer_states
    features = np.concatenate([x, context], axis=-1)  # (batch, units + memory_units)
    if tied:
        projected = features @ w["output_projection"]["kernel"]  # (batch, embedding_dim)
        logits = projected @ w["embedding"]["embeddings"].T + w["output_bias"]
    else:
        logits = features @ w["output"]["kernel"] + w["output"]["bias"]
    return logits, new_states, weights


def fill_weights(cell):
    """Deterministic, unit-distinct weights (no RNG); returns them as {layer: {name: array}}."""
    values = {}
    for k, variable in enumerate(cell.weights):
        size = int(np.prod(variable.shape))
        array = 0.4 * np.sin(0.7 * np.arange(size) + k + 1.0).reshape(variable.shape)
        variable.assign(array.astype("float32"))
        *layer, name = variable.path.split("/")[1:]
        target = values.setdefault(layer[0], {}) if layer else values
        target[name] = array
    return values


@pytest.mark.parametrize(
    "rnn, num_layers, tied",
    [("gru", 2, False), ("lstm", 2, True), ("gru", 3, True), ("lstm", 3, False)],
)
def test_stacked_step_matches_numpy_reference(rnn, num_layers, tied):
    cell = AttentionDecoderCell(
        VOCAB,
        EMB,
        UNITS,
        MEMORY_UNITS,
        attention=BahdanauAttention(7, name="attention"),
        rnn=rnn,
        num_layers=num_layers,
        tie_embeddings=tied,
    )
    cell.build()
    w = fill_weights(cell)
    states = initial_states(cell)
    assert len(states) == num_layers * (2 if rnn == "lstm" else 1)
    np_states = [s.astype("float64") for s in states]
    for prev in (TARGET_IN[:, 0], TARGET_IN[:, 1]):  # two steps: the state is carried
        logits, states, weights = cell(prev, states, MEMORY, None, MASK)
        ref_logits, np_states, ref_weights = np_step(
            w, rnn, num_layers, tied, prev, np_states, MEMORY, MASK
        )
        np.testing.assert_allclose(logits, ref_logits, atol=ATOL)
        np.testing.assert_allclose(weights, ref_weights, atol=ATOL)
        for got, expected in zip(states, np_states, strict=True):
            np.testing.assert_allclose(got, expected, atol=ATOL)


DEEP_CASES = [  # rnn, attention, input_feeding, num_layers, tie_embeddings
    ("gru", "bahdanau", False, 2, False),
    ("lstm", "bahdanau", False, 2, True),
    ("gru", "luong", True, 3, True),
    ("lstm", "luong", True, 3, False),
    ("lstm", None, False, 2, True),
]


def make_deep_cell(rnn, attention, input_feeding, num_layers, tie_embeddings, units=UNITS):
    scorer = {"bahdanau": BahdanauAttention(7), "luong": LuongAttention(), None: None}
    return AttentionDecoderCell(
        VOCAB,
        EMB,
        units,
        MEMORY_UNITS,
        attention=scorer[attention],
        rnn=rnn,
        input_feeding=input_feeding,
        num_layers=num_layers,
        tie_embeddings=tie_embeddings,
    )


@pytest.mark.parametrize("case", DEEP_CASES)
def test_stacked_step_by_step_equals_unroll(case):
    cell = make_deep_cell(*case)
    cell.build()
    states = initial_states(cell)
    keys = cell.project_keys(MEMORY)
    logits, weights = cell.unroll(TARGET_IN, states, MEMORY, keys, MASK)
    for t in range(TARGET_IN.shape[1]):
        step_logits, states, step_weights = cell(TARGET_IN[:, t], states, MEMORY, keys, MASK)
        np.testing.assert_allclose(step_logits, logits[:, t], atol=ATOL)
        np.testing.assert_allclose(step_weights, weights[:, t], atol=ATOL)


def test_stacked_state_layout_and_initial_states():
    cell = make_deep_cell("lstm", "luong", True, 3, False)
    assert cell.state_sizes == [UNITS] * 7  # (h, c) per layer, then h~
    bridge = [RNG.normal(size=(2, UNITS)).astype("float32") for _ in range(2)]
    states = cell.get_initial_states(bridge, 2)
    assert len(states) == 7
    for layer in range(3):  # every layer starts from the bridge state
        np.testing.assert_array_equal(states[2 * layer], bridge[0])
        np.testing.assert_array_equal(states[2 * layer + 1], bridge[1])
    np.testing.assert_array_equal(states[6], np.zeros((2, UNITS)))
    assert make_deep_cell("gru", "bahdanau", False, 2, True).state_sizes == [UNITS, UNITS]


def test_tied_output_kernel_is_the_embedding_variable():
    tied = make_deep_cell("gru", "bahdanau", False, 2, True)
    untied = make_deep_cell("gru", "bahdanau", False, 2, False)
    tied.build()
    untied.build()
    names = [w.path.split("/", 1)[1] for w in tied.trainable_weights]
    assert "output/kernel" not in names and names.count("embedding/embeddings") == 1
    assert len({id(w) for w in tied.trainable_weights}) == len(tied.trainable_weights)
    # A token never fed as input gets an embedding gradient only through the output layer.
    unseen = VOCAB - 1
    assert unseen not in TARGET_IN
    for cell, expect_gradient in [(tied, True), (untied, False)]:
        with tf.GradientTape() as tape:
            logits, _ = cell.unroll(TARGET_IN, initial_states(cell), MEMORY, None, MASK)
            loss = tf.reduce_sum(logits[:, :, unseen])
        grad = tf.convert_to_tensor(tape.gradient(loss, cell.embedding.embeddings))
        assert bool(np.any(grad.numpy()[unseen] != 0.0)) == expect_gradient
    # The logits are the (projected) features against the embedding table, plus a bias.
    features = RNG.normal(size=(3, tied.feature_size)).astype("float32")
    table = tied.embedding.embeddings.numpy()
    projection = tied.output_projection.kernel.numpy()
    np.testing.assert_allclose(
        tied.output_logits(features), features @ projection @ table.T, atol=ATOL
    )


def test_tied_without_projection_when_sizes_match():
    cell = make_deep_cell("gru", "luong", True, 2, True, units=EMB)  # features: units == EMB
    cell.build()
    assert not hasattr(cell, "output_projection")
    features = RNG.normal(size=(3, EMB)).astype("float32")
    expected = features @ cell.embedding.embeddings.numpy().T
    np.testing.assert_allclose(cell.output_logits(features), expected, atol=ATOL)


@pytest.mark.parametrize("case", DEEP_CASES[1:3])
def test_stacked_tied_config_round_trip(case):
    cell = make_deep_cell(*case)
    cell.build()
    states = initial_states(cell)
    clone = AttentionDecoderCell.from_config(cell.get_config())
    clone.build()
    clone.set_weights(cell.get_weights())
    a = cell(TARGET_IN[:, 1], states, MEMORY, None, MASK)[0]
    b = clone(TARGET_IN[:, 1], states, MEMORY, None, MASK)[0]
    np.testing.assert_array_equal(a, b)
    assert clone.get_config() == cell.get_config()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_layers=0), "num_layers=0"),
        (dict(num_layers=1.5), "num_layers=1.5"),
        (dict(tie_embeddings="yes"), "tie_embeddings='yes'"),
        (dict(tie_embeddings=1), "tie_embeddings=1"),
    ],
)
def test_bad_stacking_and_tying_arguments(kwargs, match):
    args = dict(vocab_size=VOCAB, embedding_dim=EMB, units=UNITS, memory_units=MEMORY_UNITS)
    with pytest.raises(ValueError, match=match):
        AttentionDecoderCell(**args, **kwargs)
