"""What every decoding path shares, TensorFlow-free: the result shape, the default maximum
length, cutting after [END], and the names of the exported graphs' state tensors.

The Keras translator, the host-side runtimes, the parity harness and the server all return
`Translation` and use these helpers, so a default or a rule lives in one place.

Example:
    >>> import numpy as np
    >>> trim_after_end([5, 7, 3, 0, 0], end_id=3).tolist()
    [5, 7, 3]
    >>> default_max_length(12)
    34
    >>> state_names(["memory", "state_10", "state_2", "new_state_0"])
    ['state_2', 'state_10']
"""

import dataclasses

import numpy as np

PAD_ID = 0
MAX_LENGTH_RATIO = 2  # default max target length = ratio * source length + offset
MAX_LENGTH_OFFSET = 10
STATE_PREFIX = "state_"  # decoder state tensors: state_0, state_1, ...; outputs new_state_i


def default_max_length(source_length):
    """The default most target tokens for a source of `source_length` tokens (a Python int
    or a scalar tensor): 2 * source_length + 10."""
    return MAX_LENGTH_RATIO * source_length + MAX_LENGTH_OFFSET


def trim_after_end(tokens, end_id):
    """int32 `(n,)`: `tokens` through the first [END], or without trailing padding if none."""
    tokens = np.asarray(tokens, np.int32).reshape(-1)
    ends = np.flatnonzero(tokens == end_id)
    if ends.size:
        return tokens[: int(ends[0]) + 1]
    kept = np.flatnonzero(tokens != PAD_ID)
    return tokens[: int(kept[-1]) + 1] if kept.size else tokens[:0]


def state_name(index):
    return f"{STATE_PREFIX}{index}"


def new_state_name(index):
    return f"new_{STATE_PREFIX}{index}"


def state_names(names):
    """The `state_<i>` among `names`, in index order."""
    ours = [n for n in names if n.startswith(STATE_PREFIX) and n[len(STATE_PREFIX) :].isdigit()]
    return sorted(ours, key=lambda n: int(n[len(STATE_PREFIX) :]))


@dataclasses.dataclass(eq=False)
class Translation:
    """One decoded sentence, whichever path decoded it.

    Attributes:
        tokens: int32 `(n,)` target ids through [END].
        score: the search score (log-probability, length-normalised if asked).
        attention: float32 `(n, source_length)` weights over the source tokens.
        source_ids: int32 `(source_length,)`, [START] and [END] included, when known.
        source: the input text, for text-to-text paths.
        text: the detokenized translation, for text-to-text paths.
        source_tokens: subword strings of the input (the columns of `attention`).
        target_tokens: subword strings of `tokens` (the rows of `attention`).
    """

    tokens: np.ndarray
    score: float
    attention: np.ndarray
    source_ids: np.ndarray | None = None
    source: str | None = None
    text: str | None = None
    source_tokens: list | None = None
    target_tokens: list | None = None

    @classmethod
    def from_search(cls, out, row, end_id, source_length=None):
        """Row `row` of a search result dict (`tokens` `(batch, length)`, `scores`,
        `attention` `(batch, length, source_length)`), cut after [END]."""
        tokens = trim_after_end(np.asarray(out["tokens"][row]), end_id)
        attention = np.asarray(out["attention"][row], np.float32)[: len(tokens), :source_length]
        return cls(tokens=tokens, score=float(out["scores"][row]), attention=attention)
