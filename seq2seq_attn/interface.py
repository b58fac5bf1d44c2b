"""What every decoding path shares, TensorFlow-free: the search options and their checks,
the maximum length rule, the result shape, cutting after [END], and the names of the
exported graphs' state tensors.

The Keras translator, the host-side runtimes, the parity harness and the server all take
`DecodeOptions`, return `Translation` and use these helpers, so a default or a rule lives
in one place.

Example:
    >>> import numpy as np
    >>> trim_after_end([5, 7, 3, 0, 0], end_id=3).tolist()
    [5, 7, 3]
    >>> max_length_for(12)
    34
    >>> max_length_for(12, ratio=1.5, offset=2)
    20
    >>> DecodeOptions(beam_width=4, n_best=2, no_repeat_ngram=3).check().n_best
    2
    >>> DecodeOptions(**parse_sample("top-p=0.9"), seed=1).check().sampling
    True
    >>> state_names(["memory", "state_10", "state_2", "new_state_0"])
    ['state_2', 'state_10']
"""

import dataclasses
import math
import secrets

import numpy as np

PAD_ID = 0
MAX_LENGTH_RATIO = 2  # default max target length = ratio * source length + offset
MAX_LENGTH_OFFSET = 10
STATE_PREFIX = "state_"  # decoder state tensors: state_0, state_1, ...; outputs new_state_i


MAX_SEED = 2**63 - 1  # seeds travel as int64 in the graph


def max_length_for(source_length, ratio=MAX_LENGTH_RATIO, offset=MAX_LENGTH_OFFSET):
    """The most target tokens for a source of `source_length` tokens (a Python int):
    floor(ratio * source_length + offset), in float64 unless `ratio` is a whole number
    (then in exact integer arithmetic, as the graph does)."""
    if float(ratio).is_integer():
        return int(ratio) * int(source_length) + int(offset)
    return int(math.floor(float(ratio) * source_length + offset))


def _is_int(value):
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _is_number(value):
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _bad(name, value, rule):
    return ValueError(f"`{name}` must be {rule}, received: {name}={value!r}")


def parse_sample(spec):
    """`"top-k=K"` or `"top-p=P"` (the CLI's `--sample`) as `{"top_k": K}` or `{"top_p": P}`.

    Raises:
        ValueError: anything else, naming the text received.
    """
    name, sep, value = str(spec).strip().partition("=")
    key = {"top-k": "top_k", "top_k": "top_k", "top-p": "top_p", "top_p": "top_p"}.get(
        name.strip().lower()
    )
    try:
        if not sep or key is None:
            raise ValueError
        number = int(value) if key == "top_k" else float(value)
    except ValueError:
        raise ValueError(
            f"`sample` must be top-k=K (an integer >= 1) or top-p=P (0 < P <= 1), "
            f"received: sample={spec!r}"
        ) from None
    return {key: number}


@dataclasses.dataclass(frozen=True)
class DecodeOptions:
    """How to search, the same on every path (graph, host, CLI, server); hashable.

    Attributes:
        beam_width: 1 is greedy (or sampling); above, beam search.
        n_best: hypotheses returned per input, best first, at most `beam_width`.
        max_length_ratio, max_length_offset: the most target tokens are
            floor(ratio * source tokens + offset) unless a `max_length` is given.
        no_repeat_ngram: N >= 1 bans any token that would repeat an n-gram of size N
            of the hypothesis (fairseq's `--no-repeat-ngram-size`); None is off.
        top_k: sample among the K most likely tokens (beam width 1 only).
        top_p: sample among the smallest set of tokens with probability mass >= P (nucleus
            sampling, beam width 1 only). At most one of `top_k` and `top_p`.
        temperature: sampling divides the logits by it; 1 unless sampling.
        seed: int >= 0, sampling with a seed is reproducible; None draws a fresh one.
        length_penalty: GNMT alpha >= 0.
        coverage_penalty: GNMT beta >= 0.
    """

    beam_width: int = 1
    n_best: int = 1
    max_length_ratio: float = MAX_LENGTH_RATIO
    max_length_offset: int = MAX_LENGTH_OFFSET
    no_repeat_ngram: int | None = None
    top_k: int | None = None
    top_p: float | None = None
    temperature: float = 1.0
    seed: int | None = None
    length_penalty: float = 0.0
    coverage_penalty: float = 0.0

    @property
    def sampling(self):
        return self.top_k is not None or self.top_p is not None

    def with_seed(self):
        """These options, with a fresh random seed (0 to MAX_SEED) when sampling without
        one, so that the seed can be reported and the output reproduced."""
        if not self.sampling or self.seed is not None:
            return self
        return dataclasses.replace(self, seed=secrets.randbits(63))

    def max_length(self, source_length):
        """`max_length_for(source_length)` with these options' ratio and offset."""
        return max_length_for(source_length, self.max_length_ratio, self.max_length_offset)

    def search_kwargs(self):
        """The keyword arguments of the searches (`seq2seq_attn.search`,
        `seq2seq_attn.inference.search`) but `beam_width` and `max_length`."""
        fields = dataclasses.asdict(self)
        del fields["beam_width"]
        return fields

    def check(self):
        """Returns self, or raises ValueError naming the first bad value."""
        self._check_search()
        self._check_sampling()
        return self

    def _check_search(self):
        if not _is_int(self.beam_width) or self.beam_width < 1:
            raise _bad("beam_width", self.beam_width, "an integer >= 1")
        if not _is_int(self.n_best) or not 1 <= self.n_best <= self.beam_width:
            rule = f"an integer from 1 to the beam width ({self.beam_width})"
            raise _bad("n_best", self.n_best, rule)
        ratio, offset = self.max_length_ratio, self.max_length_offset
        if not _is_number(ratio) or not 0 <= ratio < math.inf:
            raise _bad("max_length_ratio", ratio, "a finite number >= 0")
        if not _is_int(offset) or offset < 0:
            raise _bad("max_length_offset", offset, "an integer >= 0")
        if self.no_repeat_ngram is not None and (
            not _is_int(self.no_repeat_ngram) or self.no_repeat_ngram < 1
        ):
            raise _bad("no_repeat_ngram", self.no_repeat_ngram, "an integer >= 1 or None")
        for name in ("length_penalty", "coverage_penalty"):
            value = getattr(self, name)
            if not _is_number(value) or not 0 <= value < math.inf:
                raise _bad(name, value, "a finite number >= 0")

    def _check_sampling(self):
        if self.top_k is not None and (not _is_int(self.top_k) or self.top_k < 1):
            raise _bad("top_k", self.top_k, "an integer >= 1 or None")
        if self.top_p is not None and (not _is_number(self.top_p) or not 0 < self.top_p <= 1):
            raise _bad("top_p", self.top_p, "in (0, 1] or None")
        if self.top_k is not None and self.top_p is not None:
            raise _bad("top_p", self.top_p, "None when top_k is given (one of the two)")
        temperature = self.temperature
        if not _is_number(temperature) or not 0 < temperature < math.inf:
            raise _bad("temperature", temperature, "a finite number > 0")
        if temperature != 1 and not self.sampling:
            raise _bad("temperature", temperature, "1 unless sampling (top_k or top_p)")
        if self.sampling and self.beam_width != 1:
            raise _bad("beam_width", self.beam_width, "1 when sampling (top_k or top_p)")
        if self.seed is not None and (not _is_int(self.seed) or not 0 <= self.seed <= MAX_SEED):
            raise _bad("seed", self.seed, f"an integer from 0 to {MAX_SEED} or None")


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
        nbest: the n-best list when asked for, best first: `Translation`s whose first
            is this one's tokens, score and attention.
    """

    tokens: np.ndarray
    score: float
    attention: np.ndarray
    source_ids: np.ndarray | None = None
    source: str | None = None
    text: str | None = None
    source_tokens: list | None = None
    target_tokens: list | None = None
    nbest: list | None = None

    @classmethod
    def from_search(cls, out, row, end_id, source_length=None, n_best=None):
        """Row `row` of a search result dict (`tokens` `(batch, length)`, `scores`,
        `attention` `(batch, length, source_length)`), cut after [END]; with `n_best`, also
        the first `n_best` of `nbest_tokens` `(batch, n, length)`, `nbest_scores` and
        `nbest_attention` `(batch, n, length, source_length)` as `nbest`."""
        result = cls._from_arrays(out["tokens"][row], out["scores"][row], out["attention"][row])
        result = result._cut(end_id, source_length)
        if n_best is not None:
            result.nbest = [
                cls._from_arrays(
                    out["nbest_tokens"][row][i],
                    out["nbest_scores"][row][i],
                    out["nbest_attention"][row][i],
                )._cut(end_id, source_length)
                for i in range(n_best)
            ]
        return result

    @classmethod
    def _from_arrays(cls, tokens, score, attention):
        return cls(tokens=np.asarray(tokens), score=float(score), attention=np.asarray(attention))

    def _cut(self, end_id, source_length):
        self.tokens = trim_after_end(self.tokens, end_id)
        self.attention = np.asarray(self.attention, np.float32)[: len(self.tokens), :source_length]
        return self
