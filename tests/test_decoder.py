"""The decoder step against its teacher-forced unroll, state layout and bad arguments."""

import keras
import numpy as np
import pytest

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
