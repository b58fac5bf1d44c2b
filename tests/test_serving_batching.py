"""Micro-batching gives every text what decoding it alone gives (serving/batching.py).

The tiny model stops at once ([END] first), so these tests shift its logits by a fixed
vector (row-independent, like any model) to get outputs of varied length, and outputs that
never end (to exercise the re-decode of rows that outlive their own max_length).
"""

import concurrent.futures
import threading
import time

import numpy as np
import pytest

from seq2seq_attn.inference.runtime import OnnxModel
from seq2seq_attn.inference.search import decode_batch, pad
from seq2seq_attn.serving.batching import (
    BatchError,
    MicroBatcher,
    QueueFullError,
    UnavailableError,
)
from seq2seq_attn.tokenizer import END_ID, START_ID, TokenizerPair

# Batched and single runs pad differently and use other batch sizes, which changes the float32
# summation order inside onnxruntime: tokens must match exactly, floats to these tolerances.
SCORE_ATOL = 1e-5
ATTENTION_ATOL = 1e-6

TEXTS = [
    "March 3, 1999",
    "tuesday 4 june 2001",
    "12/05/1970",
    "1 de agosto de 1964",
    "den 23 oktober 1989",
    "may 5 2020",
    "sunday, 31 december 1961",
]


class ShiftedLogits(OnnxModel):
    """The exported model with `shift` added to every step's logits."""

    def __init__(self, directory, shift):
        super().__init__(directory)
        self.shift = np.asarray(shift, np.float32)

    def step(self, *args, **kwargs):
        logits, states, weights = super().step(*args, **kwargs)
        return logits + self.shift, states, weights


def _shift(export_dir, end_penalty):
    vocab = TokenizerPair.load(export_dir / "tokenizer").target.vocab_size
    shift = np.zeros(vocab, np.float32)
    shift[END_ID] = -end_penalty
    shift[END_ID + 1] = -end_penalty  # the tiny model's runner-up
    return shift


@pytest.fixture(scope="module")
def export_dir(tiny_export):
    return tiny_export[0]


@pytest.fixture(scope="module")
def sources(export_dir):
    tokenizer = TokenizerPair.load(export_dir / "tokenizer").source
    return [tokenizer.encode(text) for text in TEXTS]


def reference(model, ids, beam_width, max_length):
    """Decoding one text alone, cut after its first [END] (written independently here)."""
    out = model.decode(pad([ids]), START_ID, END_ID, beam_width=beam_width, max_length=max_length)
    tokens = out["tokens"][0]
    ends = np.flatnonzero(tokens == END_ID)
    n = ends[0] + 1 if ends.size else len(tokens)
    return tokens[:n], float(out["scores"][0]), out["attention"][0, :n, : len(ids)]


def assert_same(result, expected):
    tokens, score, attention = expected
    np.testing.assert_array_equal(result.tokens, tokens)
    np.testing.assert_allclose(result.score, score, rtol=0, atol=SCORE_ATOL)
    assert result.attention.shape == attention.shape
    np.testing.assert_allclose(result.attention, attention, rtol=0, atol=ATTENTION_ATOL)


@pytest.mark.parametrize("beam_width", [1, 3])
@pytest.mark.parametrize("end_penalty", [0.0, 0.5, 2.0])
def test_decode_batch_equals_one_by_one(export_dir, sources, beam_width, end_penalty):
    model = ShiftedLogits(export_dir, _shift(export_dir, end_penalty))
    calls = []

    def decode_fn(ids, beam, max_length):
        calls.append(ids.shape[0])
        return model.decode(ids, START_ID, END_ID, beam_width=beam, max_length=max_length)

    max_lengths = [2 * len(ids) + 10 for ids in sources]
    max_lengths[1], max_lengths[4] = 3, 1  # shorter than the batch: re-decoded if unfinished
    results = decode_batch(decode_fn, sources, beam_width, max_lengths, END_ID)
    for ids, max_length, result in zip(sources, max_lengths, results, strict=True):
        assert_same(result, reference(model, ids, beam_width, max_length))
    assert calls[0] == len(sources)
    if end_penalty == 2.0:  # nothing ends: every row with a smaller limit runs again alone
        longest = max(max_lengths)
        assert calls[1:] == [1] * sum(m < longest for m in max_lengths)


def test_decode_batch_static_length(export_dir, sources):
    """An export with a fixed source length pads every batch, and every single text, to it."""
    model = ShiftedLogits(export_dir, _shift(export_dir, 0.5))

    def decode_fn(ids, beam, max_length):
        assert ids.shape[1] == 40
        return model.decode(ids, START_ID, END_ID, beam_width=beam, max_length=max_length)

    results = decode_batch(decode_fn, sources, 1, [20] * len(sources), END_ID, pad_to=40)
    for ids, result in zip(sources, results, strict=True):
        assert result.attention.shape[1] == len(ids)
        assert_same(result, reference(model, ids, 1, 20))


def test_decode_batch_checks_lengths():
    with pytest.raises(ValueError, match="max_lengths"):
        decode_batch(None, [[2, 3]], 1, [5, 5], END_ID)


def test_micro_batcher_batches_concurrent_texts(export_dir, sources):
    model = ShiftedLogits(export_dir, _shift(export_dir, 0.5))
    sizes = []

    def decode_fn(ids, beam, max_length):
        return model.decode(ids, START_ID, END_ID, beam_width=beam, max_length=max_length)

    batcher = MicroBatcher(
        decode_fn,
        END_ID,
        max_batch_size=4,
        batch_timeout_ms=50,
        on_batch=lambda size, _: sizes.append(size),
    )
    batcher.start()
    try:
        jobs = [(ids, beam) for beam in (1, 2) for ids in sources]
        futures = [batcher.submit(ids, beam, 2 * len(ids) + 10) for ids, beam in jobs]
        results = [f.result(timeout=30) for f in futures]
    finally:
        batcher.stop()
    for (ids, beam), result in zip(jobs, results, strict=True):
        assert_same(result, reference(model, ids, beam, 2 * len(ids) + 10))
    assert sum(sizes) == len(jobs)
    assert max(sizes) == 4  # batched, never beyond max_batch_size
    assert not batcher.alive


def test_micro_batcher_reports_errors_and_keeps_going():
    def decode_fn(ids, beam, max_length):
        if beam == 2:
            raise ValueError("boom")
        out = np.full((ids.shape[0], 1), END_ID, np.int32)
        return {
            "tokens": out,
            "scores": np.zeros(ids.shape[0], np.float32),
            "attention": np.zeros((ids.shape[0], 1, ids.shape[1]), np.float32),
        }

    errors = []
    batcher = MicroBatcher(
        decode_fn, END_ID, max_batch_size=2, batch_timeout_ms=0, on_error=errors.append
    )
    batcher.start()
    try:
        with pytest.raises(BatchError, match="boom") as raised:
            batcher.submit([2, 5, 3], 2, 5).result(timeout=10)
        assert isinstance(raised.value.__cause__, ValueError)
        assert batcher.submit([2, 5, 3], 1, 5).result(timeout=10).tokens.tolist() == [END_ID]
        assert errors == [1] and batcher.health(stall_timeout=5) is None
    finally:
        batcher.stop()


def test_micro_batcher_refuses_when_stopped_or_full():
    gate = concurrent.futures.Future()

    def decode_fn(ids, beam, max_length):
        gate.result(timeout=10)
        return {
            "tokens": np.full((ids.shape[0], 1), END_ID, np.int32),
            "scores": np.zeros(ids.shape[0], np.float32),
            "attention": np.zeros((ids.shape[0], 1, ids.shape[1]), np.float32),
        }

    batcher = MicroBatcher(decode_fn, END_ID, max_batch_size=1, batch_timeout_ms=0, max_queue=2)
    with pytest.raises(UnavailableError):
        batcher.submit([2, 3], 1, 5)
    batcher.start()
    try:
        first = batcher.submit([2, 3], 1, 5)
        for _ in range(1000):  # until the worker holds it (blocked on the gate)
            if batcher.depth() == 0:
                break
            time.sleep(0.005)
        waiting = [batcher.submit([2, 3], 1, 5) for _ in range(2)]
        with pytest.raises(QueueFullError):
            batcher.submit([2, 3], 1, 5)
        gate.set_result(None)
        assert first.result(timeout=10).tokens.tolist() == [END_ID]
    finally:
        batcher.stop()
    for future in waiting:  # decoded, or refused by the stop
        error = future.exception(timeout=10)
        assert error is None or isinstance(error, UnavailableError)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_batch_size": 0}, "max_batch_size"),
        ({"max_batch_size": True}, "max_batch_size"),
        ({"batch_timeout_ms": -1}, "batch_timeout_ms"),
    ],
)
def test_micro_batcher_checks_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MicroBatcher(lambda *a: None, END_ID, **kwargs)


def _ended(ids, beam, max_length):
    """A stand-in decode: every row ends at once; echoes the beam width as the score."""
    rows, length = ids.shape
    return {
        "tokens": np.full((rows, 1), END_ID, np.int32),
        "beam_tokens": np.full((rows, beam, 1), END_ID, np.int32),
        "scores": np.full(rows, float(beam), np.float32),
        "attention": np.zeros((rows, 1, length), np.float32),
    }


def _wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def _blocked_batcher(gate, **kwargs):
    """A started batcher whose decode waits on `gate`, holding a first text already."""

    def decode_fn(ids, beam, max_length):
        gate.wait(10)
        return _ended(ids, beam, max_length)

    batcher = MicroBatcher(decode_fn, END_ID, batch_timeout_ms=0, **kwargs)
    batcher.start()
    first = batcher.submit([2, 3], 1, 5)
    _wait_until(lambda: batcher.depth() == 0)  # the worker holds it, blocked on the gate
    return batcher, first


def test_mixed_beam_widths_and_lengths_queue_by_identity():
    """The crash of issue 10: texts of other beam widths wait in the queue while a batch of one
    beam width forms; taking them out compared records holding id arrays of unequal length."""
    gate = threading.Event()
    batcher, first = _blocked_batcher(gate, max_batch_size=3)
    rng = np.random.default_rng(0)
    try:
        jobs = [(rng.integers(4, 30, size=rng.integers(2, 40)), int(rng.integers(1, 5)))]
        jobs += [
            (rng.integers(4, 30, size=rng.integers(2, 40)), int(b)) for b in rng.integers(1, 5, 60)
        ]
        futures = [batcher.submit(ids, beam, 5) for ids, beam in jobs]
        gate.set()
        results = [f.result(timeout=10) for f in futures]
        assert first.result(timeout=10).tokens.tolist() == [END_ID]
        assert batcher.alive and batcher.health(stall_timeout=5) is None
    finally:
        batcher.stop()
    assert [r.score for r in results] == [float(beam) for _, beam in jobs]


def test_failure_while_gathering_fails_that_batch_only(caplog):
    errors = []
    batcher = MicroBatcher(
        _ended, END_ID, max_batch_size=4, batch_timeout_ms=20, on_error=errors.append
    )
    original = batcher._take_batch
    calls = {"n": 0}

    def flaky_take(batch):
        original(batch)
        if batch and calls["n"] == 0:
            calls["n"] += 1
            raise RuntimeError("bookkeeping bug")

    batcher._take_batch = flaky_take
    batcher.start()
    try:
        doomed = batcher.submit_many([[2, 5, 3], [2, 6, 7, 3]], 2, [5, 5])
        for future in doomed:
            with pytest.raises(BatchError, match="bookkeeping bug"):
                future.result(timeout=10)
        assert batcher.submit([2, 5, 3], 2, 5).result(timeout=10).score == 2.0
    finally:
        batcher.stop()
    assert errors == [2]
    logged = [r for r in caplog.records if r.name == "seq2seq_attn.serving.batching" and r.exc_info]
    assert len(logged) == 1  # the traceback once per batch, not once per text


def test_an_error_outside_a_batch_restarts_the_loop():
    restarts = []
    batcher = MicroBatcher(
        _ended, END_ID, batch_timeout_ms=0, on_restart=lambda: restarts.append(1)
    )
    original, calls = batcher._fail, {"n": 0}

    def broken_fail(batch, error):
        if calls["n"] == 0:
            calls["n"] += 1
            raise RuntimeError("the error handler itself failed")
        original(batch, error)

    batcher._fail = broken_fail
    batcher.decode_fn = lambda *a: (_ for _ in ()).throw(ValueError("first batch fails"))
    batcher.start()
    try:
        lost = batcher.submit([2, 3], 1, 5)
        _wait_until(lambda: restarts)
        batcher.decode_fn = _ended
        assert batcher.submit([2, 3], 1, 5).result(timeout=10).score == 1.0
        assert batcher.alive
        assert not lost.done()  # its handler failed: the request's own timeout answers it
    finally:
        batcher.stop()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_worker_that_dies_is_reported():
    def exits(ids, beam, max_length):
        raise SystemExit("the runtime called exit()")

    batcher = MicroBatcher(exits, END_ID, batch_timeout_ms=0)
    batcher.start()
    future = batcher.submit([2, 3], 1, 5)
    with pytest.raises(BatchError, match="SystemExit"):
        future.result(timeout=10)
    _wait_until(lambda: not batcher.alive)
    assert batcher.health(stall_timeout=5) == "the decode worker is not running"
    with pytest.raises(UnavailableError):
        batcher.submit([2, 3], 1, 5)
    batcher.stop()


def test_a_stuck_worker_is_reported_while_texts_wait():
    gate = threading.Event()
    batcher, first = _blocked_batcher(gate)
    try:
        assert batcher.health(stall_timeout=0.2) is None or batcher.depth() == 0
        waiting = batcher.submit([2, 3], 1, 5)
        time.sleep(0.3)
        assert "no progress" in batcher.health(stall_timeout=0.2)
        gate.set()
        waiting.result(timeout=10)
        _wait_until(lambda: batcher.health(stall_timeout=0.2) is None)
    finally:
        batcher.stop()


def test_submit_many_is_all_or_nothing():
    gate = threading.Event()
    batcher, first = _blocked_batcher(gate, max_queue=3)
    try:
        held = batcher.submit_many([[2, 3], [2, 4, 3]], 1, [5, 5])
        with pytest.raises(QueueFullError, match="limit 3"):
            batcher.submit_many([[2, 3], [2, 3]], 1, [5, 5])
        assert batcher.depth() == 2
        gate.set()
        assert all(f.result(timeout=10).tokens.tolist() == [END_ID] for f in held)
    finally:
        batcher.stop()


def test_discarded_texts_leave_the_queue_at_once_and_are_never_decoded():
    """A request that ended first (client gone, timeout): its waiting texts neither wait for
    nor fill a batch, and are counted; a text already being decoded finishes."""
    gate, dropped, decoded = threading.Event(), [], []
    batcher, first = _blocked_batcher(gate, max_batch_size=4, on_drop=dropped.append)
    original = batcher.decode_fn
    batcher.decode_fn = lambda ids, beam, n: decoded.append(len(ids)) or original(ids, beam, n)
    try:
        gone = batcher.submit_many([[2, 5, 3]] * 6, 1, [5] * 6)
        kept = batcher.submit_many([[2, 6, 3]] * 2, 1, [5] * 2)
        assert batcher.depth() == 8
        assert batcher.discard(gone) == 6
        assert batcher.depth() == 2 and dropped == [6]
        assert batcher.discard([first]) == 0  # being decoded: not cancelled, left to finish
        assert batcher.discard(kept[:0]) == 0
        gate.set()
        assert [f.result(timeout=10).tokens.tolist() for f in kept] == [[END_ID]] * 2
        assert first.result(timeout=10).tokens.tolist() == [END_ID]
    finally:
        batcher.stop()
    assert all(f.cancelled() for f in gone)
    assert decoded == [2]  # the kept texts in one batch; the first was decoded before the swap


def test_texts_cancelled_without_discard_are_skipped_and_counted():
    gate, dropped = threading.Event(), []
    batcher, first = _blocked_batcher(gate, max_batch_size=2, on_drop=dropped.append)
    try:
        futures = batcher.submit_many([[2, 5, 3]] * 3, 1, [5] * 3)
        futures[0].cancel()
        futures[1].cancel()
        gate.set()
        assert futures[2].result(timeout=10).tokens.tolist() == [END_ID]
    finally:
        batcher.stop()
    assert sum(dropped) == 2 and batcher.depth() == 0
