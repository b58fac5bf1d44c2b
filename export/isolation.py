"""Runs a function in a short-lived child process, so the memory it needed goes with it.

An export's heavy stages (freezing, each TFLite conversion, tf2onnx, parity) each peak at
2-2.6 GB at the benchmark size, and one process that runs them all keeps what TensorFlow and
glibc hold on to from one stage to the next. Run one by one in fresh processes (`spawn`, not
`fork`: TensorFlow's threads do not survive a fork) while the parent holds no TensorFlow, the
export's peak is the largest stage's.

A child that raises sends its exception back (with its traceback as a note) and the parent
raises it again, so a `UserError` in a child still ends as a one-line message. A child that
dies without an answer (killed by the kernel's out-of-memory killer, a crash in native code)
becomes a `StageDied` naming the stage and the signal.

Example:

>>> from seq2seq_attn.export.isolation import run_in_child
>>> run_in_child("sum", sum, [1, 2, 3])  # doctest: +SKIP
6
"""

import multiprocessing
import pickle
import signal
import traceback

from seq2seq_attn.errors import UserError


class StageDied(UserError):
    """A stage's process ended without an answer (out of memory, a native crash)."""


def _describe(exitcode):
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = " (out of memory?)" if -exitcode == signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    return f"exited with status {exitcode} without an answer"


def _child(send, fn, args):
    """The child's side: `fn(*args)`, and what came of it sent back through `send`."""
    try:
        outcome = (True, fn(*args))
    except BaseException as err:  # noqa: BLE001 - sent to the parent, which raises it
        err.add_note("in the export stage's process:\n" + traceback.format_exc().rstrip())
        outcome = (False, err)
    try:
        message = pickle.dumps(outcome)
        pickle.loads(message)  # some exceptions pickle but cannot be rebuilt
    except Exception as err:
        problem = f"{type(outcome[1]).__name__} does not pickle ({err}): {outcome[1]}"
        message = pickle.dumps((False, RuntimeError(problem)))
    send.send_bytes(message)
    send.close()


def run_in_child(name, fn, *args):
    """Returns `fn(*args)` computed in a fresh `spawn` process.

    Args:
        name: the stage's name, for error messages and the process title.
        fn: a module-level function (it is pickled by reference); `args` and its return
            value must pickle.

    Raises:
        whatever `fn` raised, or `StageDied` if the process ended without an answer.
    """
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(send, fn, args), name=f"export:{name}")
    process.start()
    send.close()  # else `recv` would wait forever for a child that died
    try:
        try:
            ok, value = pickle.loads(receive.recv_bytes())
        except EOFError:
            process.join()
            raise StageDied(f"the {name} stage {_describe(process.exitcode)}") from None
        process.join()
    finally:
        receive.close()
        if process.is_alive():  # interrupted: do not leave the child running
            process.kill()
            process.join()
    if not ok:
        raise value
    return value


def run_here(name, fn, *args):
    """`run_in_child`'s stand-in that runs `fn(*args)` in this process, then
    `release_memory()`."""
    try:
        return fn(*args)
    finally:
        release_memory()


def release_memory():
    """Collects garbage and hands freed heap pages back to the system (glibc `malloc_trim`).

    Each conversion frees its graphs, but glibc keeps the pages for reuse and the next
    conversion's peak then comes on top of them: at the benchmark size the export's peak
    RSS grew stage by stage to 5.5 GB. Trimming after each stage makes the peak the
    largest single stage's instead of their sum. Does nothing more than `gc.collect()`
    where there is no glibc.
    """
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
