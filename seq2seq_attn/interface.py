"""What every decoding path shares, TensorFlow-free: the search options, their one check and
its bounds, the maximum length rule, the result shape, cutting after [END], and the names of
the exported graphs' state tensors.

The Keras translator, the host-side runtimes, the parity harness, the CLI and the server all
take `DecodeOptions`, check it with `DecodeOptions.check` (a bad value raises `BadOption`,
whose message each channel shows as is), return `Translation` and use these helpers, so a
default, a bound or a rule lives in one place.

Example:
    >>> import numpy as np
    >>> trim_after_end([5, 7, 3, 0, 0], end_id=3).tolist()
    [5, 7, 3]
    >>> max_length_for(12)
    34
    >>> max_length_for(12, DecodeOptions(max_length_ratio=1.5, max_length_offset=2))
    20
    >>> DecodeOptions(beam_width=4, n_best=2, no_repeat_ngram=3).check().n_best
    2
    >>> DecodeOptions(**parse_sample("top-p=0.9"), seed=1).check().sampling
    True
    >>> try:
    ...     DecodeOptions(beam_width=9).check(max_beam_width=8)
    ... except BadOption as error:
    ...     print(error)
    `beam_width` must be at most 8 (the widest beam here), received: beam_width=9
    >>> state_names(["memory", "state_10", "state_2", "new_state_0"])
    ['state_2', 'state_10']
"""

import dataclasses
import math
import secrets
import sys
import warnings

import numpy as np

from seq2seq_attn.alignment import (
    WordAlignment,
    WordScores,
    check_kind,
    word_alignment,
    word_scores,
)
from seq2seq_attn.errors import UserError

PAD_ID = 0
STATE_PREFIX = "state_"  # decoder state tensors: state_0, state_1, ...; outputs new_state_i
NEG_INF = -1e9  # the log-prob (and logit) of a banned token, in both searches

# Defaults: the most target tokens are floor(ratio * source tokens + offset).
DEFAULT_MAX_LENGTH_RATIO = 2
MAX_LENGTH_OFFSET = 10
# Bounds `DecodeOptions.check` enforces (the server's OpenAPI schema states the same ones):
# no overflowing length, no infinite or vanishing logits, seeds that fit an int64.
MAX_LENGTH_RATIO_LIMIT = 100
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.01, 100
MAX_SEED = 2**63 - 1  # seeds travel as int64 in the graph

_RENAMED = {"MAX_LENGTH_RATIO": "DEFAULT_MAX_LENGTH_RATIO"}  # old name -> new, for one release


def __getattr__(name):
    if name in _RENAMED:
        message = f"seq2seq_attn.interface.{name} is deprecated; use {_RENAMED[name]}"
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        return globals()[_RENAMED[name]]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class BadOption(UserError, ValueError):
    """A decoding option out of its range, or at odds with another option.

    The message names the option, the value received and what is allowed; the CLI (exit 2),
    the library and the server (422 `bad_option`) show it as is.

    Attributes:
        option: the option's name, a `DecodeOptions` field or `max_length`.
        value: the value received.
        allowed: what the option accepts, in words.
        conflict: True when the value is in its own range but at odds with another option
            (`n_best` above the beam width, a beam width above 1 with sampling, ...).
    """

    def __init__(self, option, value, allowed, conflict=False):
        super().__init__(f"`{option}` must be {allowed}, received: {option}={value!r}")
        self.option, self.value, self.allowed, self.conflict = option, value, allowed, conflict

    def __reduce__(self):  # picklable, like other exceptions
        return type(self), (self.option, self.value, self.allowed, self.conflict)


def max_length_for(source_length, options=None, offset=None, *, ratio=None):
    """The most target tokens for a source of `source_length` tokens: floor(ratio *
    source_length + offset) with the ratio and offset of `options` (a `DecodeOptions`; None
    for the defaults, 2 and 10). In float64 unless the ratio is a whole number, then in
    exact integer arithmetic as the graph does (`source_length` may then be a tensor).

    The 0.1 form `max_length_for(n, ratio, offset)` still works, with a DeprecationWarning.
    """
    if not isinstance(options, DecodeOptions | None) or ratio is not None or offset is not None:
        options = _old_length_rule(options if ratio is None else ratio, offset)
    options = options or DecodeOptions()
    ratio, offset = options.max_length_ratio, options.max_length_offset
    if float(ratio).is_integer():
        if isinstance(source_length, int | np.integer):
            source_length = int(source_length)
        return int(ratio) * source_length + int(offset)
    return int(math.floor(float(ratio) * source_length + offset))


def _old_length_rule(ratio, offset):
    message = "max_length_for(n, ratio, offset) is deprecated; pass a DecodeOptions"
    warnings.warn(message, DeprecationWarning, stacklevel=3)
    return DecodeOptions(
        max_length_ratio=DEFAULT_MAX_LENGTH_RATIO if ratio is None else ratio,
        max_length_offset=MAX_LENGTH_OFFSET if offset is None else offset,
    )


def check_max_length(max_length, least=0, most=None):
    """`max_length` if it is None or an integer from `least` to `most` (None: no most), else
    `BadOption`."""
    highest = math.inf if most is None else most
    if max_length is None or _is_int(max_length) and least <= max_length <= highest:
        return max_length
    allowed = f"an integer >= {least}" if most is None else f"an integer from {least} to {most}"
    raise BadOption("max_length", max_length, allowed + " or None")


def _is_int(value):
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _between(value, low, high):
    """A number (not a bool) in [low, high]; NaN is not."""
    number = isinstance(value, int | float | np.integer | np.floating)
    return number and not isinstance(value, bool | np.bool_) and low <= value <= high


def parse_sample(spec):
    """`"top-k=K"` or `"top-p=P"` (the CLI's `--sample`) as `{"top_k": K}` or `{"top_p": P}`.

    Raises:
        BadOption: anything else, naming the text received.
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
        allowed = "top-k=K (an integer >= 1) or top-p=P (0 < P <= 1)"
        raise BadOption("sample", spec, allowed) from None
    return {key: number}


@dataclasses.dataclass(frozen=True)
class DecodeOptions:
    """How to search, the same on every path (graph, host, CLI, server); hashable.

    Attributes:
        beam_width: 1 is greedy (or sampling); above, beam search.
        n_best: hypotheses returned per input, best first, at most `beam_width`.
        max_length_ratio, max_length_offset: the most target tokens are
            floor(ratio * source tokens + offset) unless a `max_length` is given; the ratio
            is from 0 to `MAX_LENGTH_RATIO_LIMIT` (100).
        no_repeat_ngram: N >= 1 bans any token that would repeat an n-gram of size N
            of the hypothesis (fairseq's `--no-repeat-ngram-size`); None is off.
        top_k: sample among the K most likely tokens (beam width 1 only).
        top_p: sample among the smallest set of tokens with probability mass >= P (nucleus
            sampling, beam width 1 only). At most one of `top_k` and `top_p`.
        temperature: sampling divides the logits by it (`MIN_TEMPERATURE` 0.01 to
            `MAX_TEMPERATURE` 100); 1 unless sampling.
        seed: int from 0 to `MAX_SEED`, sampling with a seed is reproducible; None draws a
            fresh one.
        length_penalty: GNMT alpha >= 0.
        coverage_penalty: GNMT beta >= 0.
    """

    beam_width: int = 1
    n_best: int = 1
    max_length_ratio: float = DEFAULT_MAX_LENGTH_RATIO
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
        """`max_length_for(source_length, self)`."""
        return max_length_for(source_length, self)

    def search_kwargs(self):
        """The keyword arguments of the searches (`seq2seq_attn.search`,
        `seq2seq_attn.inference.search`) but `beam_width` and `max_length`."""
        fields = dataclasses.asdict(self)
        del fields["beam_width"]
        return fields

    def check(self, max_beam_width=None):
        """Returns self, or raises `BadOption` for the first bad value: the one check of
        decoding options, which the CLI, the library, the server and the export's parity
        harness all call.

        Args:
            max_beam_width: the widest beam the caller can decode (the target vocabulary
                size, a server's limit); None for no limit.
        """
        widest = math.inf if max_beam_width is None else max_beam_width
        for name, ok, allowed, conflict in _RULES:
            if not ok(self, widest):
                allowed = allowed.format(o=self, widest=widest)
                raise BadOption(name, getattr(self, name), allowed, conflict)
        return self


# What `DecodeOptions.check` tries, in order: (option, test of the options `o` and the widest
# beam `w`, what is allowed (formatted with `o` and `widest`), whether it is a conflict).
# One message per bad value, whatever the caller knows: a beam of 0 reads the same in the CLI
# (before the model loads) as in the library and the server.
# fmt: off
_RULES = (
    ("beam_width", lambda o, w: _is_int(o.beam_width) and o.beam_width >= 1,
     "an integer >= 1", False),
    ("beam_width", lambda o, w: o.beam_width <= w,
     "at most {widest} (the widest beam here)", False),
    ("n_best", lambda o, w: _is_int(o.n_best) and 1 <= o.n_best <= o.beam_width,
     "an integer from 1 to the beam width ({o.beam_width})", True),
    ("max_length_ratio", lambda o, w: _between(o.max_length_ratio, 0, MAX_LENGTH_RATIO_LIMIT),
     f"a number from 0 to {MAX_LENGTH_RATIO_LIMIT}", False),
    ("max_length_offset", lambda o, w: _is_int(o.max_length_offset) and o.max_length_offset >= 0,
     "an integer >= 0", False),
    ("no_repeat_ngram", lambda o, w: o.no_repeat_ngram is None or _is_int(o.no_repeat_ngram)
     and o.no_repeat_ngram >= 1, "an integer >= 1 or None", False),
    ("length_penalty", lambda o, w: _between(o.length_penalty, 0, sys.float_info.max),
     "a finite number >= 0", False),
    ("coverage_penalty", lambda o, w: _between(o.coverage_penalty, 0, sys.float_info.max),
     "a finite number >= 0", False),
    ("top_k", lambda o, w: o.top_k is None or _is_int(o.top_k) and o.top_k >= 1,
     "an integer >= 1 or None", False),
    ("top_p", lambda o, w: o.top_p is None or _between(o.top_p, 0, 1) and o.top_p > 0,
     "in (0, 1] or None", False),
    ("top_p", lambda o, w: o.top_k is None or o.top_p is None,
     "None when top_k is given (one of the two)", True),
    ("temperature", lambda o, w: _between(o.temperature, MIN_TEMPERATURE, MAX_TEMPERATURE),
     f"a number from {MIN_TEMPERATURE} to {MAX_TEMPERATURE}", False),
    ("temperature", lambda o, w: o.sampling or o.temperature == 1,
     "1 unless sampling (top_k or top_p)", True),
    ("beam_width", lambda o, w: not o.sampling or o.beam_width == 1,
     "1 when sampling (top_k or top_p)", True),
    ("seed", lambda o, w: o.seed is None or _is_int(o.seed) and 0 <= o.seed <= MAX_SEED,
     f"an integer from 0 to {MAX_SEED} or None", False),
)
# fmt: on


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
        token_log_probs: float32 `(n,)`, each token's log-probability under the model
            (row i of `attention` and entry i belong to `tokens[i]`), when known.
        alignment: a `seq2seq_attn.alignment.WordAlignment` (source and target words, the
            soft alignment, `.pharaoh()`), when asked for (`with_words`).
        alignment_kind: "hard" or "soft", the kind asked for (how to print `alignment`).
        scores: a `seq2seq_attn.alignment.WordScores` (per token, per word, the sentence
            score normalised by length), when asked for (`with_words`).
        placeholders: a `seq2seq_attn.placeholders.PlaceholderReport` when the input had
            placeholders or markup (how many, how many re-inserted by alignment, where).
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
    token_log_probs: np.ndarray | None = None
    alignment: WordAlignment | None = None
    alignment_kind: str | None = None
    scores: WordScores | None = None
    placeholders: object | None = None

    @classmethod
    def from_search(cls, out, row, end_id, source_length=None, n_best=None):
        """Row `row` of a search result dict (`tokens` `(batch, length)`, `scores`,
        `attention` `(batch, length, source_length)`), cut after [END]; with `n_best`, also
        the first `n_best` of `nbest_tokens` `(batch, n, length)`, `nbest_scores` and
        `nbest_attention` `(batch, n, length, source_length)` as `nbest`."""
        lps = out.get("token_log_probs")
        result = cls._from_arrays(
            out["tokens"][row],
            out["scores"][row],
            out["attention"][row],
            None if lps is None else lps[row],
        )._cut(end_id, source_length)
        if n_best is not None:
            lps = out.get("nbest_token_log_probs")
            result.nbest = [
                cls._from_arrays(
                    out["nbest_tokens"][row][i],
                    out["nbest_scores"][row][i],
                    out["nbest_attention"][row][i],
                    None if lps is None else lps[row][i],
                )._cut(end_id, source_length)
                for i in range(n_best)
            ]
        return result

    @classmethod
    def _from_arrays(cls, tokens, score, attention, token_log_probs=None):
        lps = None if token_log_probs is None else np.asarray(token_log_probs, np.float32)
        return cls(
            tokens=np.asarray(tokens),
            score=float(score),
            attention=np.asarray(attention),
            token_log_probs=lps,
        )

    def _cut(self, end_id, source_length):
        self.tokens = trim_after_end(self.tokens, end_id)
        self.attention = np.asarray(self.attention, np.float32)[: len(self.tokens), :source_length]
        if self.token_log_probs is not None:
            self.token_log_probs = self.token_log_probs[: len(self.tokens)]
        return self

    def with_words(self, alignment=None, scores=False):
        """Sets `alignment` ("hard" or "soft": the word alignment, see
        `seq2seq_attn.alignment`) and, with `scores`, `scores` from `attention`,
        `token_log_probs`, `source_tokens` and `target_tokens`; the same for the n-best
        list. Returns self.

        Raises:
            ValueError: an unknown alignment kind, or `scores` without `token_log_probs`.
        """
        for one in [self, *(self.nbest or [])]:
            if alignment is not None:
                one.alignment_kind = check_kind(alignment)
                one.alignment = word_alignment(one.attention, one.source_tokens, one.target_tokens)
            if scores:
                if one.token_log_probs is None:
                    raise ValueError("`scores` needs the token log-probs of the search")
                one.scores = word_scores(one.token_log_probs, one.target_tokens)
        return self


def with_prefix(target, tokens, prefix):
    """The text of `tokens` (which begin with the pieces of `prefix`), starting with `prefix`
    verbatim: the pieces decode back to the prefix but for NFKC normalisation, so the text
    is `prefix` + the decode of everything after the prefix's own decode."""
    text = target.decode(tokens)
    if not prefix:
        return text
    decoded_prefix = target.decode(target.processor.encode(prefix))
    if not text.startswith(decoded_prefix):  # (cannot happen: the pieces are forced)
        return text
    return prefix + text[len(decoded_prefix) :]
