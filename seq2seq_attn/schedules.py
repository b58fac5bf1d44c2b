"""Learning-rate schedules: `training.schedule` -> the optimizer's learning rate.

    constant  the rate of `training.learning_rate` throughout (the default).
    plateau   the same rate, halved by `seq2seq_attn.callbacks.plateau` whenever the
              selection metric (`training.select_by`) has not improved for
              `training.patience` epochs, never below `training.min_learning_rate`.
    rsqrt     `InverseSquareRoot`: linear warm-up over `training.warmup_steps`, then
              inverse square root decay (fairseq's `inverse_sqrt`).

`training.cooldown` (a share of the budget, 0 for none) works on top of `constant` and
`rsqrt` when the run has a budget (`max_minutes` or `max_steps`): the rate then falls linearly
to zero over the budget's last share (`seq2seq_attn.callbacks.Cooldown`), so a run that is
stopped by its budget ends on a settled model instead of mid-stride.

Steps are optimizer updates: with `training.accumulate: K` one step is K batches (Keras
evaluates a schedule at its batch counter, so the schedule divides it by K itself).

Example:

>>> schedule = InverseSquareRoot(1e-3, warmup_steps=4)
>>> [round(float(schedule(step)), 6) for step in (0, 3, 15)]
[0.00025, 0.001, 0.0005]
"""

import keras
import tensorflow as tf

from seq2seq_attn.config import SCHEDULES


@keras.saving.register_keras_serializable(package="seq2seq_attn")
class InverseSquareRoot(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `learning_rate`, then decay with the inverse square root of the step.

    With `s = floor(step / batches_per_update) + 1` (the update being made, counted from 1)
    and `w = warmup_steps`:

        rate(s) = learning_rate * min(s / w, sqrt(w / s))

    so the rate climbs linearly to its peak `learning_rate` at `s = w` and then falls as
    `1 / sqrt(s)`: fairseq's `inverse_sqrt`, and Vaswani et al. (2017, eq. 3, "Noam") with the
    peak given directly instead of as `d_model ** -0.5 * w ** -0.5`.

    Args:
        learning_rate: Positive float, the peak rate.
        warmup_steps: Positive int.
        batches_per_update: Positive int, the optimizer's gradient accumulation steps (Keras
            calls a schedule with its count of batches, not of updates).

    Call arguments:
        step: Scalar int tensor, the optimizer's batch count (from 0).

    Returns:
        Scalar float32 tensor, the rate.
    """

    def __init__(self, learning_rate, warmup_steps, batches_per_update=1):
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 1:
            raise ValueError(
                f"`warmup_steps` must be a positive int, received: warmup_steps={warmup_steps!r}"
            )
        if not learning_rate > 0:
            raise ValueError(
                f"`learning_rate` must be positive, received: learning_rate={learning_rate!r}"
            )
        if (
            isinstance(batches_per_update, bool)
            or not isinstance(batches_per_update, int)
            or batches_per_update < 1
        ):
            raise ValueError(
                f"`batches_per_update` must be a positive int, received: "
                f"batches_per_update={batches_per_update!r}"
            )
        self.learning_rate = float(learning_rate)
        self.warmup_steps = warmup_steps
        self.batches_per_update = batches_per_update

    def __call__(self, step):
        update = tf.math.floordiv(tf.cast(step, tf.int64), self.batches_per_update)
        s = tf.cast(update, tf.float32) + 1.0
        w = tf.constant(float(self.warmup_steps))
        return self.learning_rate * tf.minimum(s / w, tf.sqrt(w / s))

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "warmup_steps": self.warmup_steps,
            "batches_per_update": self.batches_per_update,
        }


def cools(training):
    """Whether `training.cooldown` applies: a positive share, a step or minute budget, and a
    schedule other than `plateau` (which lowers the rate itself)."""
    return (
        bool(training.get("cooldown"))
        and bool(training.get("max_steps") or training.get("max_minutes"))
        and training["schedule"] != "plateau"
    )


def optimizer_rate(training):
    """The rate the optimizer is built with: `learning_rate(training)`, or with a cool-down its
    first value as a plain float, which `callbacks.Cooldown` then sets before every batch."""
    rate = learning_rate(training)
    if cools(training) and callable(rate):
        return float(rate(0))
    return rate


def learning_rate(training):
    """The optimizer's `learning_rate` argument for a `training` config section.

    Args:
        training: The resolved `training` section (`schedule`, `learning_rate`,
            `warmup_steps`, `accumulate`).

    Returns:
        A float for `constant` and `plateau` (plateau lowers it from a callback), an
        `InverseSquareRoot` for `rsqrt`.
    """
    if training["schedule"] not in SCHEDULES:
        raise ValueError(
            f"`schedule` must be one of {SCHEDULES}, received: schedule={training['schedule']!r}"
        )
    if training["schedule"] == "rsqrt":
        return InverseSquareRoot(
            training["learning_rate"], training["warmup_steps"], training.get("accumulate", 1)
        )
    return float(training["learning_rate"])
