"""Learning-rate schedules: golden values from the formula, serialization, the optimizer's step."""

import keras
import numpy as np
import pytest

from seq2seq_attn.config import DEFAULTS, resolve_config
from seq2seq_attn.schedules import InverseSquareRoot, cools, learning_rate, optimizer_rate


def _reference(peak, warmup, step):
    """fairseq inverse_sqrt written out in NumPy: s = step + 1."""
    s = np.float64(step) + 1.0
    return peak * min(s / warmup, np.sqrt(warmup / s))


@pytest.mark.parametrize("warmup", [1, 4, 1000])
def test_inverse_square_root_matches_the_formula(warmup):
    schedule = InverseSquareRoot(2e-3, warmup)
    steps = [0, 1, warmup - 2, warmup - 1, warmup, 3 * warmup, 100 * warmup + 7]
    got = [float(schedule(step)) for step in steps if step >= 0]
    want = [_reference(2e-3, warmup, step) for step in steps if step >= 0]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_inverse_square_root_peaks_at_the_end_of_warmup():
    schedule = InverseSquareRoot(1e-3, 10)
    rates = np.array([float(schedule(step)) for step in range(40)])
    assert int(np.argmax(rates)) == 9  # the 10th update (s = 10)
    assert rates[9] == pytest.approx(1e-3, rel=1e-6)
    assert np.all(np.diff(rates[:10]) > 0) and np.all(np.diff(rates[9:]) < 0)
    # hand values: s=1 -> 1e-3 * 1/10; s=40 -> 1e-3 * sqrt(10/40) = 5e-4
    assert rates[0] == pytest.approx(1e-4, rel=1e-6)
    assert rates[39] == pytest.approx(5e-4, rel=1e-6)


def test_inverse_square_root_round_trips_through_keras_serialization():
    schedule = InverseSquareRoot(3e-3, 7)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert isinstance(again, InverseSquareRoot)
    assert again.get_config() == {
        "learning_rate": 3e-3,
        "warmup_steps": 7,
        "batches_per_update": 1,
    }
    assert float(again(20)) == pytest.approx(float(schedule(20)))


@pytest.mark.parametrize("warmup", [0, -5, 2.5, True])
def test_inverse_square_root_rejects_bad_warmup(warmup):
    with pytest.raises(ValueError, match="warmup_steps"):
        InverseSquareRoot(1e-3, warmup)


def test_learning_rate_per_schedule():
    base = {"learning_rate": 0.002, "warmup_steps": 8}
    assert learning_rate({**base, "schedule": "constant"}) == 0.002
    assert learning_rate({**base, "schedule": "plateau"}) == 0.002  # lowered by a callback
    rsqrt = learning_rate({**base, "schedule": "rsqrt"})
    assert isinstance(rsqrt, InverseSquareRoot) and rsqrt.warmup_steps == 8
    assert learning_rate({**base, "schedule": "rsqrt", "accumulate": 4}).batches_per_update == 4
    with pytest.raises(ValueError, match="schedule"):
        learning_rate({**base, "schedule": "cosine"})


@pytest.mark.parametrize("accumulate", [None, 3])
def test_the_optimizer_steps_the_schedule_once_per_update(accumulate):
    """With gradient accumulation over K batches a step is an update, not a batch."""
    variable = keras.Variable(np.zeros(3, "float32"))
    optimizer = keras.optimizers.SGD(
        InverseSquareRoot(0.5, 4, batches_per_update=accumulate or 1),
        gradient_accumulation_steps=accumulate,
    )
    optimizer.build([variable])
    batches = 12
    for _ in range(batches):
        optimizer.apply([np.ones(3, "float32")], [variable])
    updates = batches // (accumulate or 1)
    assert int(optimizer.iterations) == updates
    assert float(optimizer.learning_rate) == pytest.approx(_reference(0.5, 4, updates), rel=1e-6)
    # SGD on a constant gradient of 1: the weights moved by the sum of the rates used.
    moved = -float(variable.numpy()[0])
    assert moved == pytest.approx(sum(_reference(0.5, 4, s) for s in range(updates)), rel=1e-5)


def _resolved(**training):
    return resolve_config({"training": training})["training"]


def test_the_default_cooldown_applies_only_with_a_budget_and_not_to_plateau():
    assert DEFAULTS["training"]["cooldown"] == 0.4
    assert not cools(_resolved())  # epochs are not a budget
    assert cools(_resolved(max_minutes=3)) and cools(_resolved(max_steps=100))
    assert not cools(_resolved(max_minutes=3, cooldown=0))
    assert not cools(_resolved(max_minutes=3, schedule="plateau"))  # the default, unused


def test_with_a_cooldown_the_optimizer_starts_from_the_schedules_first_rate():
    training = _resolved(max_steps=10, learning_rate=4e-3, warmup_steps=4)
    assert optimizer_rate(training) == pytest.approx(1e-3)  # a float, set per batch
    assert isinstance(optimizer_rate(_resolved(learning_rate=4e-3)), InverseSquareRoot)
