"""Errors that mean "the user asked for something wrong", not "the code is broken".

The command line turns a :class:`UserError` into a one-line message and exit code 2;
anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A mistake in the user's input: a bad path, a malformed file, an unknown name."""


class DataError(UserError, ValueError):
    """A data file that cannot be read or parsed; the message names the file and line."""


class ParityError(Exception):
    """An exported artifact does not compute what the Keras model computes (exit code 1)."""
