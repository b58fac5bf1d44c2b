"""The Keras callbacks `seq2seq_attn.training` adds to `model.fit`, and the EMA weight swap.

    DevScores          greedy translations of the dev set at each epoch end -> `val_bleu`,
                       `val_chrf` in the epoch logs (history.csv, TensorBoard, selection).
    AveragedEvaluation dev loss computed with the averaged (EMA) weights.
    AveragedCheckpoint `ModelCheckpoint` that saves the averaged weights.
    Budget             stops training cleanly after `max_steps` updates or `max_minutes`.
    Cooldown           lowers the learning rate linearly to zero over the budget's last share.
    RunClock           `minutes` and `step` in the epoch logs (history.csv, TensorBoard).
    LearningRateLogger the learning rate of every update, to TensorBoard.
    ProgressLog        one plain line per epoch for logs (no progress-bar frames).

Order matters: `DevScores` must come before the checkpoint, early stopping and plateau
callbacks, which read `val_bleu`/`val_chrf` from the same logs dict at `on_epoch_end`.

When the optimizer keeps an exponential moving average of the weights (`use_ema=True`,
`training.ema`), the model's variables hold the raw weights during training and the
optimizer holds their average; `averaged_weights(model)` swaps the average in for the
duration of a block (dev evaluation, dev decoding, saving) and puts the raw weights back,
so training continues from them.
"""

import contextlib
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from seq2seq_attn import evaluation
from seq2seq_attn.interface import max_length_for, trim_after_end


def ema_optimizer(model):
    """The optimizer keeping the model's moving average (inside a loss-scale wrapper), or None."""
    optimizer = getattr(model, "optimizer", None)
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    if getattr(optimizer, "use_ema", False) and getattr(optimizer, "built", False):
        return optimizer
    return None


@contextlib.contextmanager
def averaged_weights(model):
    """Within the block, `model`'s trainable weights are its optimizer's moving averages.

    A no-op when the optimizer keeps no average. The raw weights come back afterwards,
    even if the block raises.

    Args:
        model: A compiled Keras model whose optimizer was built.
    """
    optimizer = ema_optimizer(model)
    if optimizer is None:
        yield
        return
    variables = model.trainable_weights  # the optimizer's order: `fit` built it with them
    raw = [v.numpy() for v in variables]
    optimizer.finalize_variable_values(variables)  # Keras' end of `fit`: the averages in
    try:
        yield
    finally:
        for variable, value in zip(variables, raw, strict=True):
            variable.assign(value)


class AveragedEvaluation(keras.callbacks.Callback):
    """Evaluates (`val_loss`, `val_masked_accuracy`) with the averaged weights swapped in."""

    def __init__(self):
        super().__init__()
        self._swap = None

    def on_test_begin(self, logs=None):
        self._swap = averaged_weights(self.model)
        self._swap.__enter__()

    def on_test_end(self, logs=None):
        if self._swap is not None:
            self._swap.__exit__(None, None, None)
            self._swap = None


class AveragedCheckpoint(keras.callbacks.ModelCheckpoint):
    """`keras.callbacks.ModelCheckpoint` that saves the averaged weights, if any.

    It saves at epoch ends only (`save_freq="epoch"`, the default).
    """

    def __init__(self, filepath, save_freq="epoch", **kwargs):
        if save_freq != "epoch":
            raise ValueError(
                f"`save_freq` must be 'epoch' for AveragedCheckpoint, got {save_freq!r}"
            )
        super().__init__(filepath, save_freq=save_freq, **kwargs)

    def on_epoch_end(self, epoch, logs=None):
        with averaged_weights(self.model):
            super().on_epoch_end(epoch, logs)


class DevScores(keras.callbacks.Callback):
    """Adds corpus BLEU and chrF of greedy dev translations to the epoch logs.

    At each epoch end it translates the dev sources greedily in batches (one `tf.function`
    around `model.generate`, dynamic batch and length, with the averaged weights when the
    optimizer keeps them), detokenizes with the run's tokenizer and scores with
    `seq2seq_attn.evaluation.score`: logs gain `val_bleu` and `val_chrf` (0..100).

    Args:
        pairs: `(source, target)` dev strings.
        tokenizers: A `seq2seq_attn.tokenizer.TokenizerPair`.
        batch_size: Positive int, sentences per decoding batch.
        max_length: Optional cap on output tokens per sentence. Each batch decodes at most
            2 * its longest source + 10 tokens, as `translate` and `evaluate` do, and at
            most `max_length`: a model that has not learnt to stop yet (the first epochs)
            then writes short junk, not `max_length` tokens of it per sentence.
    """

    def __init__(self, pairs, tokenizers, batch_size=64, max_length=None):
        super().__init__()
        if not pairs:
            raise ValueError("`pairs` is empty: DevScores needs dev pairs to translate")
        self.pairs = list(pairs)
        self.tokenizers = tokenizers
        self.batch_size = batch_size
        self.max_length = max_length
        self._generate = None

    def translate(self, sources):
        """Greedy translations of `sources` (strings), in their order."""
        if self._generate is None:
            self._generate = tf.function(
                lambda ids, n: self.model.generate(ids, max_length=n)["tokens"],
                input_signature=[
                    tf.TensorSpec([None, None], tf.int32),
                    tf.TensorSpec([], tf.int32),
                ],
                autograph=False,  # explicit tf.while_loops: nothing for AutoGraph to convert
            )
        encoder, decoder = self.tokenizers.source, self.tokenizers.target
        rows = [encoder.encode(text) for text in sources]
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))  # less padding
        out = [""] * len(rows)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            longest = max(len(rows[i]) for i in chunk)
            ids = np.zeros((len(chunk), longest), np.int32)  # (batch, source_length)
            for row, i in enumerate(chunk):
                ids[row, : len(rows[i])] = rows[i]
            n = self.output_length(longest)
            tokens = self._generate(tf.constant(ids), tf.constant(n, tf.int32)).numpy()
            for row, i in enumerate(chunk):
                out[i] = decoder.decode(trim_after_end(tokens[row], self.model.end_id))
        return out

    def output_length(self, longest):
        """Most output tokens of a batch whose longest source has `longest` tokens."""
        n = max_length_for(longest)
        return n if self.max_length is None else min(n, self.max_length)

    def scores(self):
        """`{"val_bleu": ..., "val_chrf": ...}` of the model's weights as they are now."""
        sources = [s for s, _ in self.pairs]
        hypotheses = self.translate(sources)
        result = evaluation.score(hypotheses, [t for _, t in self.pairs], sources)
        return {"val_bleu": result["bleu"], "val_chrf": result["chrf"]}

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        with averaged_weights(self.model):
            logs.update(self.scores())


class Budget(keras.callbacks.Callback):
    """Stops training once `max_steps` optimizer updates are done or `max_minutes` have passed.

    Checked after every batch; Keras then ends the epoch early, still evaluates the dev
    set and runs every `on_epoch_end` (so the checkpoint callback sees the partial
    epoch). `stopped_by` says which budget stopped training ("max_steps", "max_minutes")
    or is None. Steps are the optimizer's `iterations` (restored on resume, so they count
    the whole run); minutes count from the start of this `fit`.

    Args:
        max_steps: Positive int or None.
        max_minutes: Positive number or None.
        clock: Seconds as a float (`time.monotonic`; tests pass their own).
    """

    def __init__(self, max_steps=None, max_minutes=None, clock=time.monotonic):
        super().__init__()
        self.max_steps = max_steps
        self.max_minutes = max_minutes
        self.clock = clock
        self.stopped_by = None
        self._started = None

    def on_train_begin(self, logs=None):
        self._started = self.clock()
        self.stopped_by = None

    def on_train_batch_end(self, batch, logs=None):
        if self.max_steps and optimizer_steps(self.model.optimizer) >= self.max_steps:
            self.stopped_by = "max_steps"
        elif self.max_minutes and self.clock() - self._started >= 60 * self.max_minutes:
            self.stopped_by = "max_minutes"
        if self.stopped_by:
            self.model.stop_training = True

    def progress(self):
        """The share of the budget spent, in [0, 1] (the larger of steps and minutes), or
        None without a budget."""
        shares = []
        if self.max_steps:
            shares.append(optimizer_steps(self.model.optimizer) / self.max_steps)
        if self.max_minutes and self._started is not None:
            shares.append((self.clock() - self._started) / (60 * self.max_minutes))
        return min(1.0, max(shares)) if shares else None


class Cooldown(keras.callbacks.Callback):
    """Lowers the learning rate linearly to zero over the last `share` of a `Budget`.

    Before every batch the optimizer's rate becomes `rate(iterations) * factor`, with
    `factor = min(1, (1 - progress) / share)` and `progress` the budget's spent share (steps
    or minutes, whichever is further): the schedule's own rate until the cool-down begins,
    then a straight line to zero where the budget ends (the "cooldown" of warm-up-stable-decay
    schedules, Hägele et al. 2024). The optimizer must hold a plain rate (a variable), not a
    schedule; `rate` is the schedule. Without `max_steps` or `max_minutes` it leaves the rate
    to `rate` alone.

    Args:
        budget: The run's `Budget` callback (listed before this one).
        share: Float in (0, 1], the budget's last share over which the rate falls.
        rate: Callable, the optimizer's batch count -> the scheduled rate, or a float.
    """

    def __init__(self, budget, share, rate):
        super().__init__()
        self.budget, self.share, self.rate = budget, share, rate

    def factor(self):
        progress = self.budget.progress()
        if progress is None:
            return 1.0
        return min(1.0, max(0.0, (1.0 - progress) / self.share))

    def on_train_batch_begin(self, batch, logs=None):
        optimizer = self.model.optimizer
        scheduled = self.rate(optimizer.iterations) if callable(self.rate) else self.rate
        optimizer.learning_rate.assign(float(scheduled) * self.factor())


class FullSoftmaxCooldown(keras.callbacks.Callback):
    """Trains a `candidate_softmax` run's cool-down with the full softmax.

    Before every batch the pipeline's switch (`data.candidate_targets(full=...)`) is set
    to whether the `Cooldown` has begun: the cheap candidate softmax while the rate is
    high, the whole vocabulary's while it falls to zero, so that the pieces no batch held
    are pushed down again before the run ends. The pipeline computes a few batches ahead,
    so the switch takes effect a few batches late.

    Args:
        cooldown: The run's `Cooldown` callback.
        switch: The pipeline's bool `tf.Variable`.
    """

    def __init__(self, cooldown, switch):
        super().__init__()
        self.cooldown, self.switch = cooldown, switch

    def on_train_batch_begin(self, batch, logs=None):
        cooling = self.cooldown.factor() < 1.0
        if cooling != bool(self.switch.numpy()):
            self.switch.assign(cooling)


class RunClock(keras.callbacks.Callback):
    """Adds the run's elapsed `minutes` and optimizer `step` to each epoch's logs.

    After it, history.csv has `minutes` and `step` columns and TensorBoard the scalars
    `epoch_minutes` and `epoch_step`: when each dev score was reached, in wall-clock minutes
    of training (dev evaluation and decoding included) and in updates. Run it after the
    callbacks that add dev scores, before the loggers.

    Args:
        minutes_before: Minutes the run had trained before this `fit` (a resumed run: the
            last `minutes` of its history.csv; the time since that epoch's end is lost with
            the interruption and not counted).
        clock: Seconds as a float (`time.monotonic`; tests pass their own).
    """

    def __init__(self, minutes_before=0.0, clock=time.monotonic):
        super().__init__()
        self.minutes_before = minutes_before
        self.clock = clock
        self._started = None

    def on_train_begin(self, logs=None):
        self._started = self.clock()

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        logs["minutes"] = self.minutes_before + (self.clock() - self._started) / 60
        logs["step"] = optimizer_steps(self.model.optimizer)


def optimizer_steps(optimizer):
    """The optimizer's update count as an int (a mirrored variable under a strategy)."""
    return int(keras.ops.convert_to_numpy(optimizer.iterations))


def current_learning_rate(optimizer):
    """The rate the optimizer's next update uses (a schedule evaluated at its step)."""
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


class LearningRateLogger(keras.callbacks.Callback):
    """Writes the learning rate of each optimizer update as a TensorBoard scalar.

    Args:
        log_dir: Directory of the event file (e.g. `RUN_DIR/logs/optimizer`).
    """

    def __init__(self, log_dir):
        super().__init__()
        self.log_dir = str(log_dir)
        self._writer = None
        self._last_step = None

    def on_train_begin(self, logs=None):
        self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_train_batch_end(self, batch, logs=None):
        optimizer = self.model.optimizer
        step = optimizer_steps(optimizer)
        if step == self._last_step:  # gradient accumulation: no update this batch
            return
        self._last_step = step
        # At step s: the rate update number s (from 0) uses, the next one.
        with self._writer.as_default():
            tf.summary.scalar("learning_rate", current_learning_rate(optimizer), step=step)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class ProgressLog(keras.callbacks.Callback):
    """Plain progress lines for a log: one per epoch, and optionally a few per epoch's batches.

    Keras' progress bar (`fit(verbose=1)`) redraws itself with carriage returns, backspaces
    and ANSI colours whether or not stdout is a terminal (Keras 3.15 counts any POSIX system
    as a dynamic display), and `verbose=2` writes an "Epoch 1/3" line, a metrics line, and
    no learning rate or elapsed time. This callback, with `fit(verbose=0)`, writes one line
    per epoch, flushed at once:

        epoch 2/10: loss 3.1023, dev loss 3.0115, dev BLEU 12.30, dev chrF 40.10, lr 0.001, 0.4 min

    (dev scores when the logs have them; `lr` is the rate of the next update; minutes since
    training began, or the logs' `minutes` from `RunClock`, which count a resumed run's
    earlier part too). Run it after the callbacks that add `val_bleu`/`val_chrf`.

    Args:
        stream: Where lines go; default `sys.stdout` at the time of writing.
        batch_interval: Seconds, or None. When set, also a line during an epoch,
            `epoch 2/10: batch 40/120, loss 3.2010`, at most one per `batch_interval`.
        clock: Seconds as a float (`time.monotonic`; tests pass their own).
    """

    def __init__(self, stream=None, batch_interval=None, clock=time.monotonic):
        super().__init__()
        self.stream = stream
        self.batch_interval = batch_interval
        self.clock = clock
        self._started = None
        self._last_batch_line = None
        self._epoch = 0

    def _write(self, line):
        stream = self.stream or sys.stdout
        stream.write(line + "\n")
        stream.flush()

    def _epoch_name(self):
        total = self.params.get("epochs") if self.params else None
        return f"epoch {self._epoch + 1}/{total}" if total else f"epoch {self._epoch + 1}"

    def on_train_begin(self, logs=None):
        self._started = self.clock()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._last_batch_line = self.clock()

    def on_train_batch_end(self, batch, logs=None):
        if self.batch_interval is None:
            return
        now = self.clock()
        if now - self._last_batch_line < self.batch_interval:
            return
        self._last_batch_line = now
        steps = self.params.get("steps") if self.params else None
        done = f"batch {batch + 1}/{steps}" if steps else f"batch {batch + 1}"
        loss = (logs or {}).get("loss")
        self._write(
            f"{self._epoch_name()}: {done}" + (f", loss {loss:.4f}" if loss is not None else "")
        )

    def on_epoch_end(self, epoch, logs=None):
        self._epoch = epoch
        self._write(f"{self._epoch_name()}: " + ", ".join(self.fields(logs or {})))

    def fields(self, logs):
        """The epoch line's `name value` parts, from the epoch logs and the optimizer."""
        parts = [f"loss {logs['loss']:.4f}"] if "loss" in logs else []
        for key, name, digits in (
            ("val_loss", "dev loss", 4),
            ("val_bleu", "dev BLEU", 2),
            ("val_chrf", "dev chrF", 2),
        ):
            if key in logs:
                parts.append(f"{name} {float(logs[key]):.{digits}f}")
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            parts.append(f"lr {current_learning_rate(optimizer):.3g}")
        if "minutes" in logs:
            parts.append(f"{float(logs['minutes']):.1f} min")
        elif self._started is not None:
            parts.append(f"{(self.clock() - self._started) / 60:.1f} min")
        return parts
