"""Dynamic micro-batching: one worker thread owns the model and decodes queued texts together.

Concurrent requests put their texts on a queue; the worker takes the oldest one and, for at
most `batch_timeout_ms`, gathers more texts with the same search options (a beam width, or a
whole `seq2seq_attn.interface.DecodeOptions`: n-best, no-repeat-ngram, sampling, seed, ...),
up to `max_batch_size`,
then decodes them in one padded batch (the same design as TF Serving's batching session and
Triton's dynamic batcher). The runtimes are not thread-safe, so only the worker calls them.

A text's result does not depend on its batch mates: `decode_batch` gives every text what
decoding it alone gives (`model.decode` on that text, with its own `max_length`):

- Greedy and beam search treat rows independently; a row that has finished (every beam
  ended, for beam search) only repeats padding while the others go on, so its result is
  the single-text result followed by padding, which is cut off.
- The batch runs up to the longest `max_length` asked. A row that had not finished within
  its own `max_length` would differ from the single-text run (it was allowed to go on), so
  that row is decoded again alone. With the default `max_length` (2 * source length + 10,
  the runtime's own default for a single text) this happens only for runaway outputs.
- The other options are per row too: n-best lists come from each row's own beams, banned
  n-grams from each row's own hypothesis, and sampling draws one noise vector per step from
  the seed (see `seq2seq_attn.inference.search`), shared by every row: a sampled text's
  tokens depend on its seed and on the text, never on its batch mates.

A text whose request ended first (its client disconnected, or it timed out) is not decoded:
`discard` cancels its future and takes it off the queue at once, and the worker skips any
other cancelled text when it gathers a batch. A text already in the batch being decoded
finishes; its result is dropped.

Floats can differ in the last bits from a single-text run (the padded length and the
batch size change the summation order inside the runtime); tokens are the same unless two
logits tie to within float32 rounding.

Example:
    >>> batcher = MicroBatcher(decode_fn, end_id=3, max_batch_size=8)  # doctest: +SKIP
    >>> batcher.start()  # doctest: +SKIP
    >>> batcher.submit(ids, 1, max_length=20).result().tokens  # doctest: +SKIP
"""

import collections
import concurrent.futures
import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from seq2seq_attn.inference.search import decode_batch
from seq2seq_attn.interface import DecodeOptions

logger = logging.getLogger(__name__)


class UnavailableError(RuntimeError):
    """The worker cannot take the text now (stopped, or too much waiting): retry later."""


class QueueFullError(UnavailableError):
    """More texts are waiting than the server accepts; the client should retry later."""


class BatchError(RuntimeError):
    """Decoding the batch that held this text failed; the worker logged why and went on."""


@dataclass(eq=False)  # compared by identity: `==` on the id arrays would broadcast
class _Item:
    ids: np.ndarray
    options: object  # the batching key: a beam width or a DecodeOptions
    max_length: int
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)


class MicroBatcher:
    """Queues texts from many requests and decodes them in batches on one worker thread.

    The worker cannot be stopped by a batch: whatever one batch raises (while gathering,
    padding, decoding or answering) fails only that batch's texts with a `BatchError`, is
    logged once and counted (`on_error`), and the next batch runs. An error outside any
    batch restarts the worker loop (`on_restart`). `health()` tells whether the worker runs
    and makes progress.

    Args:
        decode_fn: see `decode_batch`; called only from the worker thread.
        end_id: the [END] id.
        max_batch_size: most texts decoded together.
        batch_timeout_ms: how long the oldest waiting text waits for batch mates.
        max_queue: most texts waiting; `submit` raises QueueFullError beyond it.
        pad_to: optional fixed source length.
        on_batch: optional `on_batch(size, seconds)` callback after each batch (metrics).
        on_error: optional `on_error(size)` callback after a batch failed (metrics).
        on_restart: optional `on_restart()` callback after the worker loop restarted.
        on_drop: optional `on_drop(count)` callback when texts whose futures were cancelled
            leave the queue undecoded (metrics).
    """

    def __init__(
        self,
        decode_fn,
        end_id,
        max_batch_size=16,
        batch_timeout_ms=5,
        max_queue=1024,
        pad_to=None,
        on_batch=None,
        on_error=None,
        on_restart=None,
        on_drop=None,
    ):
        if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int):
            raise ValueError(f"`max_batch_size` must be an int, received: {max_batch_size!r}")
        if max_batch_size < 1:
            raise ValueError(f"`max_batch_size` must be >= 1, received: {max_batch_size!r}")
        if not batch_timeout_ms >= 0:
            raise ValueError(f"`batch_timeout_ms` must be >= 0, received: {batch_timeout_ms!r}")
        if isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 1:
            raise ValueError(f"`max_queue` must be an int >= 1, received: {max_queue!r}")
        self.decode_fn = decode_fn
        self.end_id = end_id
        self.max_batch_size = max_batch_size
        self.batch_timeout = batch_timeout_ms / 1000.0
        self.max_queue = max_queue
        self.pad_to = pad_to
        self.on_batch = on_batch
        self.on_error = on_error
        self.on_restart = on_restart
        self.on_drop = on_drop
        self._items = collections.deque()  # waiting texts, oldest first
        self._inflight = []  # the batch the worker holds
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = None
        self._heartbeat = time.monotonic()  # last time the worker was between batches

    @property
    def alive(self):
        return self._thread is not None and self._thread.is_alive()

    def depth(self):
        """Texts waiting for the worker."""
        return len(self._items)

    def health(self, stall_timeout):
        """None if the worker runs and makes progress, else why not (one line).

        Args:
            stall_timeout: seconds the worker may spend on one batch while texts wait.
        """
        if not self.alive:
            return "the decode worker is not running"
        busy = time.monotonic() - self._heartbeat
        if busy > stall_timeout and (self._items or self._inflight):
            return f"the decode worker has made no progress for {busy:.0f} s"
        return None

    def start(self):
        if self.alive:
            return
        self._stop.clear()
        self._heartbeat = time.monotonic()
        self._thread = threading.Thread(target=self._supervise, name="decode-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout=5.0):
        """Stops taking texts, lets the batch in flight finish (up to `timeout` seconds), then
        fails the texts still waiting with an UnavailableError."""
        with self._cond:
            self._stop.set()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None
        with self._cond:
            leftovers, self._items = list(self._items), collections.deque()
        for item in leftovers:
            if item.future.set_running_or_notify_cancel():
                item.future.set_exception(UnavailableError("the server is shutting down"))

    def submit(self, ids, options, max_length):
        """Queues one text; returns a Future of its `decode_batch` result."""
        return self.submit_many([ids], options, [max_length])[0]

    def submit_many(self, sequences, options, max_lengths):
        """Queues all of `sequences` or none of them; returns one Future per sequence.

        `options` is a beam width or a `DecodeOptions`; only texts with equal options share
        a batch.

        Raises:
            UnavailableError: the worker is not running or is stopping.
            QueueFullError: the texts would take the queue past `max_queue`.
        """
        with self._cond:
            if not self.alive or self._stop.is_set():
                raise UnavailableError("the decode worker is not running")
            if len(self._items) + len(sequences) > self.max_queue:
                raise QueueFullError(
                    f"{len(self._items)} texts are waiting (limit {self.max_queue}); "
                    "try again later"
                )
            if not isinstance(options, DecodeOptions):
                options = int(options)
            items = [
                _Item(np.asarray(ids, np.int32), options, int(length))
                for ids, length in zip(sequences, max_lengths, strict=True)
            ]
            self._items.extend(items)
            self._cond.notify()
        return [item.future for item in items]

    def discard(self, futures):
        """Cancels `futures` (those of one request that ended first) and takes their texts off
        the queue now, so they neither wait for nor fill a batch; returns how many texts
        left the queue. A text the worker has started is left to finish."""
        if not any([future.cancel() for future in futures]):  # a list: cancel every one
            return 0
        with self._cond:
            return self._drop_cancelled()

    def _drop_cancelled(self):
        """Takes the texts whose futures were cancelled off the queue (the lock held)."""
        waiting = collections.deque(item for item in self._items if not item.future.cancelled())
        dropped = len(self._items) - len(waiting)
        self._items = waiting
        if dropped:
            self._count_dropped(dropped)
        return dropped

    def _count_dropped(self, count):
        if self.on_drop is not None:
            self.on_drop(count)

    def _supervise(self):
        """The worker thread: runs the loop again after any error outside a batch."""
        while not self._stop.is_set():
            try:
                self._run()
            except Exception:
                logger.exception("the decode worker loop failed; restarting it")
                if self.on_restart is not None:
                    self.on_restart()
                time.sleep(0.01)

    def _run(self):
        while not self._stop.is_set():
            self._heartbeat = time.monotonic()
            batch = self._inflight = []
            try:
                self._take_batch(batch)
                live = [item for item in batch if item.future.set_running_or_notify_cancel()]
                if len(live) < len(batch):  # cancelled while the batch was gathered
                    self._count_dropped(len(batch) - len(live))
                if live:
                    self._decode(live)
            except BaseException as error:  # noqa: B036 -- fail the batch, then decide
                self._fail(batch, error)
                if not isinstance(error, Exception):
                    raise  # SystemExit and the like end the worker; health reports it
            finally:
                self._inflight = []

    def _take_batch(self, batch):
        """Moves the oldest text and up to max_batch_size - 1 more with its options into
        `batch`, waiting up to batch_timeout for batch mates; texts with other options
        keep their place in the queue; cancelled texts leave it."""
        with self._cond:
            if not self._items:
                self._cond.wait(0.05)
            self._drop_cancelled()
            if not self._items or self._stop.is_set():
                return
            batch.append(self._items.popleft())
            options = batch[0].options
            deadline = time.monotonic() + self.batch_timeout
            while True:
                self._drop_cancelled()
                keep = collections.deque()
                for item in self._items:
                    if len(batch) < self.max_batch_size and item.options == options:
                        batch.append(item)
                    else:
                        keep.append(item)
                self._items = keep
                remaining = deadline - time.monotonic()
                if len(batch) >= self.max_batch_size or remaining <= 0 or self._stop.is_set():
                    return
                self._cond.wait(remaining)

    def _decode(self, batch):
        start = time.perf_counter()
        results = decode_batch(
            self.decode_fn,
            [item.ids for item in batch],
            batch[0].options,
            [item.max_length for item in batch],
            self.end_id,
            self.pad_to,
        )
        if self.on_batch is not None:
            self.on_batch(len(batch), time.perf_counter() - start)
        for item, result in zip(batch, results, strict=True):
            item.future.set_result(result)

    def _fail(self, batch, error):
        """Every unanswered text of `batch` gets a BatchError; the error is logged once."""
        logger.error("decoding a batch of %d texts failed", len(batch), exc_info=error)
        failure = BatchError(f"decoding failed: {type(error).__name__}: {error}")
        failure.__cause__ = error
        for item in batch:
            future = item.future
            if future.done():
                continue
            if future.running() or future.set_running_or_notify_cancel():
                future.set_exception(failure)
        if self.on_error is not None:
            self.on_error(len(batch))
