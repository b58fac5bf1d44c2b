"""Argument checks shared by the layers: each raises ValueError naming the argument and value."""

RNN_TYPES = ("gru", "lstm")


def check_positive_int(name, value):
    """`value` must be an int > 0 (bools are rejected)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer, received: {name}={value!r}")


def check_layer_args(rnn=None, dropout=None, **positive_ints):
    """Checks the common layer arguments: positive sizes, the RNN type, the dropout rate."""
    for name, value in positive_ints.items():
        check_positive_int(name, value)
    if rnn is not None and rnn not in RNN_TYPES:
        raise ValueError(f"`rnn` must be one of {RNN_TYPES}, received: rnn={rnn!r}")
    if dropout is not None and not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1), received: dropout={dropout!r}")
