"""TensorFlow's start-up lines from C++, kept off a command's stderr.

Importing TensorFlow 2.21 and probing its devices writes seven lines to file descriptor 2
from C++ before any Python logging exists: absl's "All log messages before
absl::InitializeLog() is called are written to STDERR" (twice, one per shared library), the
oneDNN notice, "Could not find cuda drivers", and on a machine without a GPU driver an
E-level "failed call to cuInit". `TF_CPP_MIN_LOG_LEVEL` does not reach them (absl logs before
its initialisation), so every `seq2seq-attn` command began with them.

`quiet_tensorflow_startup()` imports TensorFlow and lists its devices with descriptor 2
pointed at a temporary file, then writes back to stderr every captured line that is not one
of those known notices: a real error at import (a missing library, a broken install) still
shows. Set `SEQ2SEQ_ATTN_NATIVE_LOGS=1` to see everything.

`set_verbosity(level)` sets a command's log levels for the CLI's `--quiet` ("quiet": only
results and errors), default ("normal") and `--verbose` ("verbose": TensorFlow's C++ and
Python logs too, start-up notices included).

Example:
    >>> from seq2seq_attn.native_logs import is_startup_noise
    >>> is_startup_noise("I0000 00:00:1.5  12 port.cc:153] oneDNN custom operations are on.")
    True
    >>> is_startup_noise("E0000 00:00:1.5  12 some_op.cc:9] a real error")
    False
"""

import contextlib
import logging
import os
import re
import sys
import tempfile
import warnings

SHOW_ALL = "SEQ2SEQ_ATTN_NATIVE_LOGS"
_NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|\] oneDNN custom operations are on\."
    r"|\] Could not find cuda drivers on your machine, GPU will not be used\."
    r"|This TensorFlow binary is optimized to use available CPU instructions"
    r"|To enable the following instructions: .*rebuild TensorFlow with the appropriate"
    r"|^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.$"  # LiteRT, per process
)
_NO_DRIVER = re.compile(r"\] failed call to cuInit: ")


def is_startup_noise(line, no_cuda_driver=False):
    """Whether a captured stderr line is one of TensorFlow's known start-up notices.

    Args:
        line: one line of captured text.
        no_cuda_driver: TensorFlow said it found no CUDA driver; only then is its failed
            `cuInit` expected rather than a problem worth showing.
    """
    if _NOISE.search(line):
        return True
    return no_cuda_driver and bool(_NO_DRIVER.search(line))


def filter_startup_noise(text):
    """`text` without TensorFlow's start-up notices (see `is_startup_noise`)."""
    lines = text.splitlines(keepends=True)
    no_driver = any("Could not find cuda drivers" in line for line in lines)
    return "".join(line for line in lines if not is_startup_noise(line, no_driver))


@contextlib.contextmanager
def native_stderr_filtered():
    """Inside the block, descriptor 2 goes to a temporary file; on leaving (also on an
    exception), what it caught is written to stderr without the start-up notices."""
    if os.environ.get(SHOW_ALL, "") not in ("", "0"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = filter_startup_noise(capture.read().decode("utf-8", errors="replace"))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


def quiet_tensorflow_startup():
    """Imports TensorFlow and probes its devices with the start-up notices filtered out.

    Does nothing if TensorFlow is already imported. Raises what the import raises
    (`ModuleNotFoundError` where TensorFlow is not installed), after showing what it printed.
    """
    if "tensorflow" in sys.modules:
        return
    with native_stderr_filtered():
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA probe (cuInit) logs here, not at import


VERBOSITIES = ("quiet", "normal", "verbose")
_PYTHON_LEVELS = {"quiet": logging.ERROR, "normal": logging.WARNING, "verbose": logging.INFO}


def set_verbosity(level):
    """Log levels for a command, before TensorFlow loads (`quiet_tensorflow_startup`).

    "verbose" sets `TF_CPP_MIN_LOG_LEVEL=0` and shows the start-up notices; otherwise
    `TF_CPP_MIN_LOG_LEVEL` defaults to 2 (C++ errors only). "quiet" also ignores Python
    warnings: the user asked for results and errors only.

    Args:
        level: one of `VERBOSITIES`.
    """
    if level not in VERBOSITIES:
        raise ValueError(f"`level` must be one of {VERBOSITIES}, received: level={level!r}")
    if level == "verbose":
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        os.environ[SHOW_ALL] = "1"
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if level == "quiet":
        warnings.simplefilter("ignore")


def set_python_log_levels(level):
    """TensorFlow's and absl's Python loggers at `level`'s threshold (ERROR for "quiet",
    WARNING for "normal", INFO for "verbose"). Call it once TensorFlow is imported: absl
    must create its own "absl" logger before anyone else asks for it."""
    import absl.logging  # TensorFlow's dependency; its import creates the "absl" logger

    absl.logging.get_absl_logger().setLevel(_PYTHON_LEVELS[level])
    logging.getLogger("tensorflow").setLevel(_PYTHON_LEVELS[level])
