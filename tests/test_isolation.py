"""Stages in short-lived processes: answers, exceptions and deaths come back to the parent."""

import os
import re
import signal

import pytest
from seq2seq_attn.export.isolation import StageDied, run_here, run_in_child

from seq2seq_attn.errors import UserError


class _Unrebuildable(Exception):
    """Pickles, but cannot be rebuilt from its args (a required keyword argument)."""

    def __init__(self, message, *, code):
        super().__init__(message)
        self.code = code


def _raise_unrebuildable():
    raise _Unrebuildable("broken", code=3)


def _raise_user_error(path):
    raise UserError(f"{path} does not exist")


def test_the_answer_comes_from_another_process():
    assert run_in_child("pid", os.getpid) != os.getpid()
    assert run_in_child("sum", sum, [1, 2, 3]) == 6
    assert run_here("sum", sum, [1, 2, 3]) == 6


def test_a_user_error_is_raised_again_with_the_child_traceback_as_a_note():
    with pytest.raises(UserError) as caught:
        run_in_child("load", _raise_user_error, "runs/x")
    assert caught.value.args == ("runs/x does not exist",)  # what the command line prints
    assert "in _raise_user_error" in "".join(caught.value.__notes__)


def test_an_exception_that_cannot_be_rebuilt_becomes_a_runtime_error():
    with pytest.raises(RuntimeError, match="_Unrebuildable does not pickle.*broken"):
        run_in_child("odd", _raise_unrebuildable)


@pytest.mark.parametrize(
    "signum, words",
    [(signal.SIGKILL, "killed by SIGKILL (out of memory?)"), (signal.SIGSEGV, "killed by SIGSEGV")],
)
def test_a_child_that_dies_is_named_with_its_signal(signum, words):
    with pytest.raises(StageDied, match="^the tflite stage was " + re.escape(words)) as caught:
        run_in_child("tflite", signal.raise_signal, signum)
    assert isinstance(caught.value, UserError)  # the command line prints one line, exit 2


def test_a_child_that_exits_without_an_answer():
    with pytest.raises(StageDied, match="exited with status 7 without an answer"):
        run_in_child("parity", os._exit, 7)
