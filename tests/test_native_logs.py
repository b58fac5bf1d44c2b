"""TensorFlow's C++ start-up notices are filtered off stderr; anything else still shows."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from seq2seq_attn.native_logs import SHOW_ALL, filter_startup_noise, is_startup_noise

ROOT = Path(__file__).resolve().parents[1]
# What TensorFlow 2.21 printed at every `seq2seq-attn` start on a machine without a GPU.
STARTUP = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796224864.090874   12999 port.cc:153] oneDNN custom operations are on. You may see \
slightly different numerical results due to floating-point round-off errors from different \
computation orders. To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.
I0000 00:00:1796224864.091919   12999 cudart_stub.cc:31] Could not find cuda drivers on your \
machine, GPU will not be used.
E0000 00:00:1796224866.679891   12999 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA \
error: Failed call to cuInit: UNKNOWN ERROR (303)
"""
LITERT = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"  # where it is applied
REAL = "E0000 00:00:1796224866.7  12999 op_kernel.cc:1828] OP_REQUIRES failed: a real problem\n"


def test_the_startup_notices_go_and_everything_else_stays():
    assert filter_startup_noise(STARTUP) == ""
    assert filter_startup_noise(LITERT) == ""
    assert filter_startup_noise(STARTUP + REAL + "Traceback (most recent call last):\n") == (
        REAL + "Traceback (most recent call last):\n"
    )


def test_a_failed_cuinit_shows_where_a_driver_was_found():
    cuinit = STARTUP.splitlines(keepends=True)[-1]
    assert is_startup_noise(cuinit, no_cuda_driver=True)
    assert not is_startup_noise(cuinit)
    assert filter_startup_noise(cuinit) == cuinit  # a driver exists, so cuInit failing matters


def _run(code, **env):
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        timeout=300,
    )


FAKE_NATIVE_LIBRARY = f"""
    import os, sys
    from seq2seq_attn.native_logs import native_stderr_filtered
    print("python before", file=sys.stderr)
    with native_stderr_filtered():
        os.write(2, {(STARTUP + REAL).encode()!r})  # what C++ writes, straight to fd 2
        print("python inside", file=sys.stderr)
    print("python after", file=sys.stderr)
"""


def test_descriptor_two_is_filtered_in_the_block_and_restored_after():
    err = _run(FAKE_NATIVE_LIBRARY).stderr
    assert err == f"python before\n{REAL}python inside\npython after\n"


def test_everything_shows_when_asked():
    err = _run(FAKE_NATIVE_LIBRARY, **{SHOW_ALL: "1"}).stderr
    assert "oneDNN custom operations" in err and REAL in err


def test_what_was_caught_still_shows_when_the_block_raises():
    code = """
        import os
        from seq2seq_attn.native_logs import native_stderr_filtered
        with native_stderr_filtered():
            os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on.\\n")
            os.write(2, b"broken.so: missing\\n")
            import no_such_module_here
    """
    result = _run(code)
    assert result.returncode == 1
    assert "broken.so: missing" in result.stderr and "ModuleNotFoundError" in result.stderr
    assert "oneDNN" not in result.stderr


@pytest.mark.parametrize("command", [["translate", "In the beginning God created the heaven."]])
def test_a_command_starts_without_tensorflow_notices(command):
    result = _run(f"from seq2seq_attn.cli import main; raise SystemExit(main({command!r}))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()  # the translation
    assert result.stderr == "", result.stderr


def test_verbosity_sets_the_log_levels_the_user_asked_for():
    code = """
        import os, warnings
        from seq2seq_attn.native_logs import SHOW_ALL, set_verbosity
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "1"
        set_verbosity("normal")  # the user's own level stays
        print(os.environ["TF_CPP_MIN_LOG_LEVEL"], os.environ.get(SHOW_ALL))
        set_verbosity("verbose")  # --verbose asked for everything
        print(os.environ["TF_CPP_MIN_LOG_LEVEL"], os.environ.get(SHOW_ALL))
        set_verbosity("quiet")
        warnings.warn("a warning nobody asked to see")
        set_verbosity("loud")
    """
    result = _run(code, **{"TF_CPP_MIN_LOG_LEVEL": "", SHOW_ALL: ""})
    assert result.stdout.splitlines() == ["1 ", "0 1"]
    assert "nobody asked" not in result.stderr
    assert "ValueError: `level` must be one of ('quiet', 'normal', 'verbose')" in result.stderr


def test_verbose_shows_tensorflows_own_startup_lines():
    command = ["translate", "--verbose", "In the beginning God created the heaven."]
    result = _run(f"from seq2seq_attn.cli import main; raise SystemExit(main({command!r}))")
    assert result.returncode == 0, result.stderr
    assert "absl::InitializeLog() is called" in result.stderr
