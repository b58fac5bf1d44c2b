"""The training callbacks: EMA swaps against a NumPy EMA, budgets with a fake clock, the
learning-rate log read back from its event file, dev scores against the Translator."""

import glob
import io
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from seq2seq_attn import evaluation
from seq2seq_attn.callbacks import (
    AveragedCheckpoint,
    Budget,
    Cooldown,
    DevScores,
    FullSoftmaxCooldown,
    LearningRateLogger,
    ProgressLog,
    RunClock,
    averaged_weights,
)
from seq2seq_attn.interface import max_length_for
from seq2seq_attn.schedules import InverseSquareRoot
from tests.rates_seen import RatesSeen

X = np.random.default_rng(0).normal(size=(40, 3)).astype("float32")
Y = np.random.default_rng(1).normal(size=(40, 2)).astype("float32")


def _dense(ema=None, rate=0.1):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    optimizer = keras.optimizers.Adam(rate, use_ema=ema is not None, ema_momentum=ema or 0.99)
    model.compile(optimizer, loss="mse")
    return model


def test_averaged_weights_are_the_moving_average_of_every_update():
    model = _dense(ema=0.8)
    after_each = []
    for step in range(6):
        model.train_on_batch(X[step * 4 : step * 4 + 4], Y[step * 4 : step * 4 + 4])
        after_each.append([w.copy() for w in model.get_weights()])
    expected = [w.copy() for w in after_each[0]]  # Keras starts the average at update 1
    for weights in after_each[1:]:
        expected = [0.8 * e + 0.2 * w for e, w in zip(expected, weights, strict=True)]
    with averaged_weights(model):
        for got, want in zip(model.get_weights(), expected, strict=True):
            np.testing.assert_allclose(got, want, atol=1e-6)
        assert not np.allclose(model.get_weights()[0], after_each[-1][0])
    for got, raw in zip(model.get_weights(), after_each[-1], strict=True):
        np.testing.assert_array_equal(got, raw)  # the raw weights come back exactly


def test_averaged_weights_restores_after_an_error_and_is_a_no_op_without_ema():
    model = _dense(ema=0.5)
    for _ in range(3):
        model.train_on_batch(X[:8], Y[:8])
    raw = model.get_weights()
    with pytest.raises(RuntimeError), averaged_weights(model):
        raise RuntimeError("inside")
    for got, want in zip(model.get_weights(), raw, strict=True):
        np.testing.assert_array_equal(got, want)
    plain = _dense()
    plain.train_on_batch(X[:8], Y[:8])
    before = plain.get_weights()
    with averaged_weights(plain):
        for got, want in zip(plain.get_weights(), before, strict=True):
            np.testing.assert_array_equal(got, want)


def test_averaged_checkpoint_saves_the_average(tmp_path):
    model = _dense(ema=0.7)
    averages = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            with averaged_weights(self.model):  # checked against a NumPy EMA above
                averages.append([w.copy() for w in self.model.get_weights()])

    path = tmp_path / "m.keras"
    checkpoint = AveragedCheckpoint(str(path), monitor="loss", save_best_only=False)
    model.fit(X, Y, batch_size=8, epochs=2, verbose=0, callbacks=[checkpoint, Record()])
    saved = keras.saving.load_model(path, compile=False)
    for got, want in zip(saved.get_weights(), averages[-1], strict=True):
        np.testing.assert_allclose(got, want, atol=1e-7)


def test_budget_stops_after_max_steps():
    model = _dense()
    budget = Budget(max_steps=7)
    history = model.fit(X, Y, batch_size=4, epochs=5, verbose=0, callbacks=[budget])
    assert int(model.optimizer.iterations) == 7  # 10 batches per epoch: mid-epoch
    assert budget.stopped_by == "max_steps" and len(history.epoch) == 1
    assert "loss" in history.history  # the cut epoch still ends (logs, checkpoints)


def test_budget_stops_after_max_minutes_on_its_clock():
    ticks = iter(range(1000))  # each reading one second later
    model = _dense()
    budget = Budget(max_minutes=0.1, clock=lambda: float(next(ticks)))
    model.fit(X, Y, batch_size=4, epochs=5, verbose=0, callbacks=[budget])
    # read at train begin (0 s), then after each batch (1 s, 2 s, ...): 6 s after batch 6
    assert int(model.optimizer.iterations) == 6
    assert budget.stopped_by == "max_minutes"


def test_budget_without_limits_never_stops():
    model = _dense()
    budget = Budget()
    model.fit(X, Y, batch_size=8, epochs=2, verbose=0, callbacks=[budget])
    assert budget.stopped_by is None and int(model.optimizer.iterations) == 10


def test_cooldown_takes_the_rate_linearly_to_zero_over_the_last_share_of_the_steps():
    model = _dense(rate=0.0)  # a plain rate, which the cool-down sets before every batch
    budget, seen = Budget(max_steps=10), RatesSeen()
    cooldown = Cooldown(budget, 0.4, InverseSquareRoot(0.01, 3))
    model.fit(X, Y, batch_size=4, epochs=5, verbose=0, callbacks=[budget, cooldown, seen])
    assert int(model.optimizer.iterations) == 10
    for n, rate in enumerate(seen.rates):  # update n (from 0), n of 10 steps spent
        scheduled = 0.01 * min((n + 1) / 3, np.sqrt(3 / (n + 1)))
        factor = min(1.0, (1 - n / 10) / 0.4)  # 1 up to step 6, then 0.75, 0.5, 0.25
        assert rate == pytest.approx(scheduled * factor, rel=1e-5)
    assert seen.rates[-1] == pytest.approx(0.25 * 0.01 * np.sqrt(3 / 10), rel=1e-5)


def test_cooldown_follows_the_minute_budget_and_a_constant_rate():
    ticks = iter(range(1000))  # each clock reading one second later
    clock = lambda: float(next(ticks))  # noqa: E731
    model = _dense(rate=0.0)
    budget, seen = Budget(max_minutes=0.2, clock=clock), RatesSeen()
    # The cool-down reads the clock once before each batch, the budget once after it.
    model.fit(
        X,
        Y,
        batch_size=4,
        epochs=5,
        verbose=0,
        callbacks=[budget, Cooldown(budget, 0.5, 0.1), seen],
    )
    spent = [(2 * n + 1) / 12 for n in range(len(seen.rates))]  # seconds 1, 3, 5, ... of 12
    assert seen.rates == pytest.approx([0.1 * min(1, (1 - p) / 0.5) for p in spent])
    assert budget.stopped_by == "max_minutes" and seen.rates[0] == pytest.approx(0.1)


def test_cooldown_without_a_budget_keeps_the_schedule():
    model = _dense(rate=0.0)
    budget, seen = Budget(), RatesSeen()
    model.fit(
        X,
        Y,
        batch_size=8,
        epochs=1,
        verbose=0,
        callbacks=[budget, Cooldown(budget, 0.5, 0.1), seen],
    )
    assert seen.rates == pytest.approx([0.1] * 5)


def test_the_full_softmax_switch_is_on_exactly_in_the_cool_down():
    model = _dense(rate=0.0)
    budget, switch = Budget(max_steps=10), tf.Variable(False)
    cooldown = Cooldown(budget, 0.3, 0.1)
    seen = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_begin=lambda batch, logs: seen.append(bool(switch.numpy()))
    )
    callbacks = [budget, cooldown, FullSoftmaxCooldown(cooldown, switch), record]
    model.fit(X, Y, batch_size=4, epochs=5, verbose=0, callbacks=callbacks)
    # the factor (1 - n / 10) / 0.3 is 1 up to update 7, 0.67 and 0.33 at updates 8 and 9
    assert seen == [False] * 8 + [True] * 2


def test_run_clock_adds_minutes_and_steps_counting_the_minutes_before_a_resume():
    ticks = iter([100.0, 130.0, 190.0])  # train begins; epochs end 30 s and 90 s later
    clock = RunClock(2.5, clock=lambda: next(ticks))
    out = io.StringIO()
    model = _dense()
    history = model.fit(
        X, Y, batch_size=8, epochs=2, verbose=0, callbacks=[clock, ProgressLog(stream=out)]
    )
    assert history.history["minutes"] == [3.0, 4.0]  # 2.5 minutes before this fit
    assert history.history["step"] == [5, 10]
    # The epoch line shows the run's minutes, not only this fit's.
    assert [line.rsplit(", ", 1)[1] for line in out.getvalue().splitlines()] == [
        "3.0 min",
        "4.0 min",
    ]


def _logged_rates(log_dir):
    rates = {}
    for path in glob.glob(f"{log_dir}/events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == "learning_rate":
                    rates[event.step] = float(tf.make_ndarray(value.tensor))
    return rates


def test_learning_rate_logger_writes_the_schedule_at_every_update(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.Adam(InverseSquareRoot(0.01, 3)), loss="mse")
    model.fit(X, Y, batch_size=8, epochs=2, verbose=0, callbacks=[LearningRateLogger(tmp_path)])
    rates = _logged_rates(tmp_path)
    assert sorted(rates) == list(range(1, 11))  # 5 batches x 2 epochs
    for step, rate in rates.items():  # the rate of update `step` (from 0): s = step + 1
        s = step + 1
        assert rate == pytest.approx(0.01 * min(s / 3, np.sqrt(3 / s)), rel=1e-6)


def test_learning_rate_logger_logs_once_per_accumulated_update(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.Adam(0.01, gradient_accumulation_steps=2), loss="mse")
    model.fit(X, Y, batch_size=4, epochs=1, verbose=0, callbacks=[LearningRateLogger(tmp_path)])
    assert sorted(_logged_rates(tmp_path)) == [0, 1, 2, 3, 4, 5]  # 10 batches, 5 updates


def test_progress_log_writes_one_plain_line_per_epoch():
    ticks = iter(range(0, 1000, 6))  # each reading six seconds later
    out = io.StringIO()
    scores = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: logs.update(val_bleu=12.5, val_chrf=40.0)
    )
    progress = ProgressLog(stream=out, clock=lambda: float(next(ticks)))
    model = _dense()
    history = model.fit(
        X,
        Y,
        batch_size=8,
        epochs=2,
        validation_data=(X, Y),
        verbose=0,
        callbacks=[scores, progress],
    ).history
    # read at train begin (0 s), each epoch begin (6, 18 s) and end (12, 24 s)
    assert out.getvalue().splitlines() == [
        f"epoch {e + 1}/2: loss {history['loss'][e]:.4f}, dev loss {history['val_loss'][e]:.4f}, "
        f"dev BLEU 12.50, dev chrF 40.00, lr 0.1, {minutes} min"
        for e, minutes in ((0, "0.2"), (1, "0.4"))
    ]


def test_progress_log_batch_lines_come_at_most_once_per_interval():
    ticks = iter(range(0, 1000, 2))  # each reading two seconds later
    out = io.StringIO()
    model = _dense()
    progress = ProgressLog(stream=out, batch_interval=5, clock=lambda: float(next(ticks)))
    model.fit(X, Y, batch_size=8, epochs=1, verbose=0, callbacks=[progress])
    lines = out.getvalue().splitlines()
    # epoch begins at 2 s; batches end at 4, 6, 8 (a line), 10, 12 s; the epoch at 14 s
    assert len(lines) == 2 and re.fullmatch(r"epoch 1/1: batch 3/5, loss \d+\.\d{4}", lines[0])
    assert lines[1].startswith("epoch 1/1: loss ") and lines[1].endswith(", lr 0.1, 0.2 min")


def _untrained(sources, targets, vocab_size):
    """Tokenizers trained on the pairs (repeated) and a built, untrained model, seed 3."""
    from seq2seq_attn import Seq2SeqAttention
    from seq2seq_attn.tokenizer import TokenizerPair

    pair = TokenizerPair.train(
        sources * 5,
        targets * 5,
        source_vocab_size=vocab_size,
        target_vocab_size=vocab_size,
        byte_fallback=False,
    )
    keras.utils.set_random_seed(3)
    model = Seq2SeqAttention(
        pair.source.vocab_size, pair.target.vocab_size, embedding_dim=8, units=8
    )
    model.build()
    return pair, model


def test_dev_scores_match_the_translator_and_sacrebleu():
    from seq2seq_attn.translator import Translator

    sources = ["one two three", "four five", "six", "seven eight nine ten", "two one", "ten"]
    targets = ["uno dos tres", "cuatro cinco", "seis", "siete ocho nueve diez", "dos uno", "x"]
    pair, model = _untrained(sources, targets, 40)
    model.compile(keras.optimizers.Adam(0.01))
    pairs = list(zip(sources, targets, strict=True))
    scores = DevScores(pairs, pair, batch_size=4, max_length=7)  # batches of mixed lengths
    scores.set_model(model)
    logs = {}
    scores.on_epoch_end(0, logs)
    hypotheses = [t.text for t in Translator(model, pair).translate(sources, max_length=7)]
    assert scores.translate(sources) == hypotheses
    expected = evaluation.score(hypotheses, targets, sources)
    assert logs["val_bleu"] == pytest.approx(expected["bleu"], abs=1e-9)
    assert logs["val_chrf"] == pytest.approx(expected["chrf"], abs=1e-9)
    assert any(hypotheses)  # an untrained model still writes something to score


def test_dev_scores_decode_as_long_as_translate_does_under_the_cap():
    """`train` passes `max_target_length` (80 by default) as the cap; a batch of short
    sources decodes at most 2 * its longest + 10 tokens, as the translator's default does, so
    an untrained model's junk (no [END] yet) costs 20 steps here, not 80."""
    from seq2seq_attn.translator import Translator

    sources = ["one two three four five", "six seven", "eight"]
    pair, model = _untrained(sources, sources, 30)
    scores = DevScores([(s, s) for s in sources], pair, batch_size=1, max_length=80)
    scores.set_model(model)
    assert [scores.output_length(n) for n in (1, 5, 35, 70)] == [12, 20, 80, 80]
    assert DevScores([("a", "b")], pair, max_length=None).output_length(70) == 150
    translator = Translator(model, pair)
    hypotheses = [translator.translate([source])[0] for source in sources]
    limits = [max_length_for(len(pair.source.encode(source))) for source in sources]
    assert any(len(h.tokens) == n for h, n in zip(hypotheses, limits, strict=True))  # no [END]
    assert scores.translate(sources) == [h.text for h in hypotheses]
