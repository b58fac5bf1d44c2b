"""Greedy and beam search on the host, in NumPy, one decoder step at a time.

The TensorFlow-free twin of `seq2seq_attn.search`: the loop runs in Python
around a step function

    step_fn(prev_tokens, states, memory, projected_keys, mask)
        -> (logits (n, vocab), new_states, weights (n, source_len))

that takes and returns NumPy arrays, e.g. an onnxruntime session of
`decoder_step.onnx` or the TFLite `decode_step` signature. Every operation
mirrors the in-graph version in float32 and in the same order, so both pick
the same tokens: `tf.argmax` keeps the first maximum like `np.argmax`, and
`tf.math.top_k` puts the lower flat index first among ties like a stable
descending sort.

Scoring follows GNMT (Wu et al. 2016, eq. 14): score = log P(Y|X) / lp(Y) +
cp(X; Y), lp(Y) = ((5 + |Y|) / 6) ** length_penalty, cp = coverage_penalty *
sum_j log(min(sum_i a_ij, 1)) over unmasked source positions j, applied to
finished hypotheses only. |Y| counts the [END] token. Tokens after [END] are
0 (padding) and their attention rows are zeros.

Example:
    >>> import numpy as np
    >>> table = np.log(np.full((4, 4), 0.1) + 0.6 * np.eye(4)[[1, 2, 3, 3]])
    >>> def step_fn(prev, states, memory, keys, mask):
    ...     return table[prev], states, mask / mask.sum(-1, keepdims=True)
    >>> mask = np.ones((1, 2), bool)
    >>> out = beam_search(step_fn, [np.zeros((1, 1), np.float32)], np.zeros((1, 2, 1)),
    ...                   None, mask, start_id=0, end_id=3, beam_width=2)
    >>> out["tokens"].tolist()  # 0.7 ** 3 beats ending at once (0.1); 0s after [END]
    [[1, 2, 3, 0, 0, 0]]
"""

import numpy as np

from seq2seq_attn.interface import default_max_length

NEG_INF = np.float32(-1e9)
_F32 = np.float32


def log_softmax(logits):
    """float32 log-softmax in TensorFlow's order: (x - max) - log(sum(exp(x - max))).

    Kept in float32 rather than float64-then-cast: `x - max` is then bit-identical
    to TF's, and only the per-row log-sum-exp may differ by an ulp or two (another
    exp and summation order). That shifts the whole row, which cannot reverse the
    order of two tokens of one row; float64-then-cast rounds every element once
    where TF rounds twice. Against `tf.nn.log_softmax` on random logits, 82-99% of
    the values come out bit-equal this way and 70-76% in float64, max |diff| alike.

    Args:
        logits: `(..., vocab)`, any float dtype.

    Returns:
        float32 `(..., vocab)`.
    """
    x = np.asarray(logits, _F32)
    shifted = x - x.max(axis=-1, keepdims=True)  # (..., vocab)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def length_penalty_factor(lengths, alpha):
    """GNMT lp(Y) = ((5 + |Y|) / 6) ** alpha, float32, same shape as `lengths`."""
    return np.power((_F32(5) + np.asarray(lengths, _F32)) / _F32(6), _F32(alpha))


def coverage_score(coverage, mask, beta):
    """beta * sum_j log(min(coverage_j, 1)) over unmasked j; coverage `(..., source_len)`."""
    clipped = np.where(mask, np.minimum(coverage, _F32(1)), _F32(1))
    # A position never attended would give log(0); floor it so scores stay finite.
    return _F32(beta) * np.log(np.maximum(clipped, _F32(1e-10))).sum(axis=-1, dtype=_F32)


def final_score(log_probs, lengths, coverage, finished, mask, length_penalty, coverage_penalty):
    """The ranking score of hypotheses: normalised log-prob plus coverage (finished only)."""
    score = log_probs / length_penalty_factor(lengths, length_penalty)
    if coverage_penalty:
        cp = coverage_score(coverage, mask, coverage_penalty)
        score = score + np.where(finished, cp, _F32(0))
    return score.astype(_F32)


def _check_args(max_length, length_penalty, coverage_penalty, beam_width=1):
    """Raises ValueError naming the first bad argument and its value."""
    if (
        isinstance(beam_width, bool)
        or not isinstance(beam_width, int | np.integer)
        or beam_width <= 0
    ):
        raise ValueError(f"`beam_width` must be a positive integer, received: {beam_width=!r}")
    if max_length is not None and (
        isinstance(max_length, bool)
        or not isinstance(max_length, int | np.integer)
        or max_length < 0
    ):
        raise ValueError(f"`max_length` must be an int >= 0 or None, received: {max_length=!r}")
    for name, value in [("length_penalty", length_penalty), ("coverage_penalty", coverage_penalty)]:
        if not value >= 0:  # also rejects NaN
            raise ValueError(f"`{name}` must be >= 0, received: {name}={value!r}")


def _default_max_length(mask, max_length):
    """`default_max_length` of the padded source length when not given."""
    return default_max_length(mask.shape[1]) if max_length is None else int(max_length)


def _cast_like(new_states, states):
    """The step's new states as NumPy arrays with the dtypes of the previous ones."""
    return [np.asarray(s, ref.dtype) for s, ref in zip(new_states, states, strict=True)]


def greedy_search(
    step_fn,
    states,
    memory,
    projected_keys,
    mask,
    start_id,
    end_id,
    max_length=None,
    length_penalty=0.0,
    coverage_penalty=0.0,
):
    """Greedy decoding: the arg-max token at every step.

    Args:
        step_fn: the decoder step on NumPy arrays, see module docstring.
        states: list of initial decoder states `(batch_size, units)`.
        memory: `(batch_size, source_length, memory_units)`.
        projected_keys: once-per-sentence key projection, or None.
        mask: bool `(batch_size, source_length)`.
        start_id, end_id: ints.
        max_length: int >= 0; default 2 * source_length + 10.
        length_penalty, coverage_penalty: floats >= 0, only for the returned score.

    Returns:
        dict with `tokens` int32 `(batch_size, length)`, `scores` float32
        `(batch_size,)`, `attention` float32 `(batch_size, length, source_length)`.
    """
    _check_args(max_length, length_penalty, coverage_penalty)
    mask = np.asarray(mask, bool)
    (batch, source_len), max_length = mask.shape, _default_max_length(mask, max_length)
    states = [np.asarray(s) for s in states]
    prev = np.full([batch], start_id, np.int32)
    finished = np.zeros([batch], bool)
    log_probs = np.zeros([batch], _F32)
    lengths = np.zeros([batch], np.int32)
    coverage = np.zeros([batch, source_len], _F32)
    tokens, attention = [], []
    while len(tokens) < max_length and not finished.all():
        logits, new_states, weights = step_fn(prev, states, memory, projected_keys, mask)
        step_lp = log_softmax(logits)  # (batch, vocab)
        token = step_lp.argmax(axis=-1).astype(np.int32)
        alive = ~finished
        log_probs += np.where(alive, step_lp[np.arange(batch), token], _F32(0))
        lengths += alive
        weights = np.where(alive[:, None], np.asarray(weights, _F32), _F32(0))
        coverage += weights
        prev = np.where(alive, token, 0).astype(np.int32)
        finished |= prev == end_id
        states = _cast_like(new_states, states)
        tokens.append(prev)
        attention.append(weights)
    scores = final_score(
        log_probs, lengths, coverage, finished, mask, length_penalty, coverage_penalty
    )
    return {
        "tokens": np.stack(tokens, 1) if tokens else np.zeros([batch, 0], np.int32),
        "scores": scores,
        "attention": (
            np.stack(attention, 1) if attention else np.zeros([batch, 0, source_len], _F32)
        ),  # (batch, length, source_len)
    }


def _gather_beams(x, parents):
    """Pick rows of `x` (batch, beam, ...) by parent beam index (batch, beam)."""
    return x[np.arange(x.shape[0])[:, None], parents]


def _flat_gather(x, parents, beam_width):
    """Same as `_gather_beams` for a flat (batch * beam, ...) array."""
    x = np.asarray(x)
    beams = x.reshape((-1, beam_width) + x.shape[1:])
    return _gather_beams(beams, parents).reshape(x.shape)


def _top_k(x, k):
    """`tf.math.top_k` on the last axis of (batch, n): sorted, lower index first among ties.

    The same result as a stable descending argsort cut to `k`, in O(n) instead of a sort of
    all n = beam x vocab candidates: partition finds each row's k-th largest value t, every
    value above t is kept, and of the values equal to t the ones of lowest index fill the
    rest; only those k are then sorted (stably, so ties keep index order).
    """
    x = np.asarray(x)
    n = x.shape[-1]
    if k >= n or np.isnan(x).any():  # NaN order is argsort's business; never in practice
        index = np.argsort(-x, axis=-1, kind="stable")[:, :k].astype(np.int32)
        return np.take_along_axis(x, index, axis=-1), index
    kth = np.partition(x, n - k, axis=-1)[:, n - k : n - k + 1]  # (batch, 1)
    above = x > kth  # (batch, n)
    at = x == kth
    room = k - above.sum(axis=-1, keepdims=True)  # values equal to t to take, >= 1
    keep = above | at
    if (at.sum(axis=-1, keepdims=True) > room).any():  # more ties at t than room: lowest first
        keep = above | (at & (np.cumsum(at, axis=-1) <= room))  # exactly k per row
    index = np.nonzero(keep)[1].reshape(x.shape[0], k)  # ascending index within a row
    order = np.argsort(-np.take_along_axis(x, index, axis=-1), axis=-1, kind="stable")
    index = np.take_along_axis(index, order, axis=-1).astype(np.int32)
    return np.take_along_axis(x, index, axis=-1), index


def _expand_candidates(step_lp, finished, log_probs, lengths, coverage, weights, end_id):
    """Scores every (beam, token) continuation; finished beams may only repeat [END] at 0 cost.

    Shapes: step_lp `(batch, beam, vocab)`; finished, log_probs, lengths `(batch, beam)`;
    coverage and weights `(batch, beam, source_len)`.
    """
    is_end = np.arange(step_lp.shape[-1]) == end_id  # (vocab,)
    eos_only = np.where(is_end, _F32(0), NEG_INF)  # (vocab,)
    step_lp = np.where(finished[..., None], eos_only, step_lp)
    alive = ~finished
    weights = np.where(alive[..., None], weights, _F32(0))
    total = log_probs[..., None] + step_lp  # (batch, beam, vocab)
    cand_lengths = lengths + alive.astype(np.int32)  # (batch, beam)
    cand_coverage = coverage + weights  # (batch, beam, source_len)
    cand_finished = finished[..., None] | is_end  # (batch, beam, vocab)
    return total, cand_lengths, cand_coverage, cand_finished, weights


def _check_vocab(beam_width, vocab):
    if beam_width > vocab:
        raise ValueError(
            f"`beam_width` must not exceed the vocabulary size ({vocab}), "
            f"received: beam_width={beam_width!r}"
        )


def beam_search(
    step_fn,
    states,
    memory,
    projected_keys,
    mask,
    start_id,
    end_id,
    beam_width,
    max_length=None,
    length_penalty=0.0,
    coverage_penalty=0.0,
):
    """Batched beam search with the GNMT length and coverage penalties.

    `memory`, `projected_keys`, `mask` and `states` are repeated per beam (rows
    `b * beam_width + i`), so `step_fn` sees `batch_size * beam_width` rows.

    Args: as `greedy_search`, plus `beam_width`, a positive int at most the
        vocabulary size (checked once the first step gives the logits).

    Returns:
        dict with the best hypothesis per sentence, `tokens` int32
        `(batch_size, length)`, `scores` float32 `(batch_size,)`, `attention`
        float32 `(batch_size, length, source_length)`, and all hypotheses sorted
        best first: `beam_tokens` `(batch_size, beam_width, length)`,
        `beam_scores` `(batch_size, beam_width)`.
    """
    _check_args(max_length, length_penalty, coverage_penalty, beam_width)
    k, mask = int(beam_width), np.asarray(mask, bool)
    (batch, source_len), max_length = mask.shape, _default_max_length(mask, max_length)
    memory_t, keys_t, mask_t = (
        None if x is None else np.repeat(x, k, axis=0) for x in (memory, projected_keys, mask)
    )
    mask_b = mask_t.reshape(batch, k, source_len)
    states = [np.repeat(np.asarray(s), k, axis=0) for s in states]
    prev = np.full([batch * k], start_id, np.int32)
    log_probs = np.tile(np.array([[0.0] + [NEG_INF] * (k - 1)], _F32), [batch, 1])
    finished, lengths = np.zeros([batch, k], bool), np.zeros([batch, k], np.int32)
    coverage = np.zeros([batch, k, source_len], _F32)
    scores = np.zeros([batch, k], _F32)
    seqs = np.zeros([batch, k, 0], np.int32)
    attn = np.zeros([batch, k, 0, source_len], _F32)
    while seqs.shape[-1] < max_length and not finished.all():
        logits, new_states, weights = step_fn(prev, states, memory_t, keys_t, mask_t)
        vocab = np.shape(logits)[-1]
        _check_vocab(k, vocab)
        step_lp = log_softmax(logits).reshape(batch, k, vocab)
        weights = np.asarray(weights, _F32).reshape(batch, k, source_len)
        total, cand_len, cand_cov, cand_fin, weights = _expand_candidates(
            step_lp, finished, log_probs, lengths, coverage, weights, end_id
        )
        cand_score = final_score(
            total,
            cand_len[..., None],
            cand_cov[:, :, None, :],
            cand_fin,
            mask_b[:, :, None, :],
            length_penalty,
            coverage_penalty,
        )  # (batch, beam, vocab)
        scores, index = _top_k(cand_score.reshape(batch, k * vocab), k)
        parents, token = index // vocab, index % vocab  # (batch, beam)
        log_probs = np.take_along_axis(total.reshape(batch, k * vocab), index, axis=-1)
        parent_finished = _gather_beams(finished, parents)
        token = np.where(parent_finished, 0, token).astype(np.int32)
        finished = parent_finished | (token == end_id)
        seqs = np.concatenate([_gather_beams(seqs, parents), token[..., None]], axis=-1)
        step_attn = _gather_beams(weights, parents)[:, :, None, :]
        attn = np.concatenate([_gather_beams(attn, parents), step_attn], axis=2)
        states = _cast_like([_flat_gather(s, parents, k) for s in new_states], states)
        lengths, coverage = _gather_beams(cand_len, parents), _gather_beams(cand_cov, parents)
        prev = token.reshape(-1)
    return {
        "tokens": seqs[:, 0],
        "scores": scores[:, 0],
        "attention": attn[:, 0],
        "beam_tokens": seqs,
        "beam_scores": scores,
    }
