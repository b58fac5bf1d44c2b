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

Row i of `attention` (and entry i of `token_log_probs`) belongs to `tokens[i]`: the
step that chose y_i computed its attention from the state before y_i (s_{i-1}) and
predicted y_i from that context. `token_log_probs` are the model's own log-probs of
the chosen tokens (before any temperature; 0 after [END]), so with no length or
coverage penalty they sum to the score; `seq2seq_attn.alignment` turns them and the
attention into word scores and word alignments.

Options (`seq2seq_attn.interface.DecodeOptions`, same rules as in the graph):

- `n_best`: the results also carry `nbest_tokens` `(batch, n_best, length)`,
  `nbest_scores` and `nbest_attention`, best first (greedy: the one hypothesis).
- `max_length_ratio`, `max_length_offset`: without `max_length`, at most
  floor(ratio * padded source length + offset) steps.
- `no_repeat_ngram` N: before choosing, every token that would complete an
  n-gram of size N already in the hypothesis gets log-prob NEG_INF (fairseq's
  `_no_repeat_ngram`); scores keep the model's own log-probs.
- Sampling (`top_k` or `top_p`, greedy only): the log-probs, banned n-grams at
  NEG_INF, are divided by `temperature`, cut to the top-k tokens or the
  smallest top-p nucleus, and the token is the arg-max after adding Gumbel
  noise (the Gumbel-max trick, a draw from the renormalised distribution).
  The noise of step t is one vector `(vocab,)` shared by all rows, the t-th
  draw of `numpy.random.default_rng(seed)`: a row's tokens depend on the seed
  and on that row only, never on its batch mates. The graph search draws its
  noise from TensorFlow's stateless RNG instead, so the two runtimes sample
  differently, each reproducibly.

`target_prefix` (a keyword of both searches, not a `DecodeOptions` field): one list of
target ids per sentence (no [START], no [END]; empty = no prefix). The decode starts
from [START] + prefix: at prefix step t only the prefix token is allowed (every other
token gets NEG_INF, so a beam stays one live hypothesis through the prefix), then it
continues freely. The prefix tokens' own log-probs count in `scores` and
`token_log_probs`, and the prefix is part of `tokens`. `max_length` counts from the end
of each sentence's prefix: a sentence with a prefix of P tokens gets at most
P + max_length tokens.

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

from seq2seq_attn.interface import (
    NEG_INF,
    PAD_ID,
    BadOption,
    DecodeOptions,
    Translation,
    check_max_length,
)

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


def _check_args(max_length, beam_width=1, **options):
    """`DecodeOptions.check` of the options; BadOption (a ValueError) names a bad value."""
    check_max_length(max_length)
    if isinstance(beam_width, np.integer):
        beam_width = int(beam_width)
    return DecodeOptions(beam_width=beam_width, **options).check()


def _max_length(mask, max_length, options):
    """`max_length`, or the options' ratio and offset applied to the padded source length."""
    return options.max_length(mask.shape[1]) if max_length is None else int(max_length)


def prefix_array(target_prefix, batch, start_id, end_id):
    """The prefixes as int32 `(batch, P)` padded with 0, and their lengths `(batch,)`.

    None gives `(batch, 0)`; else one id list per sentence, ids > 0 (0 is padding),
    neither [START] nor [END] (else BadOption).
    """
    if target_prefix is None:
        return np.zeros([batch, 0], np.int32), np.zeros([batch], np.int32)
    rows = [[int(t) for t in row] for row in target_prefix]
    if len(rows) != batch:
        raise BadOption(
            "target_prefix", f"{len(rows)} prefixes", f"one prefix per sentence ({batch})"
        )
    lengths = np.array([len(row) for row in rows], np.int32).reshape(batch)
    prefix = np.zeros([batch, int(lengths.max(initial=0))], np.int32)
    for b, row in enumerate(rows):
        if any(t <= 0 or t in (start_id, end_id) for t in row):
            raise BadOption("target_prefix", row, "ids > 0, neither [START] nor [END]")
        prefix[b, : len(row)] = row
    return prefix, lengths


def _force_prefix(choice_lp, prefix, prefix_lengths, step):
    """`choice_lp` `(batch, ..., vocab)` with every token but the prefix's at NEG_INF in
    the sentences still inside their prefix at `step`."""
    if step >= prefix.shape[1]:
        return choice_lp
    forced = prefix_lengths > step  # (batch,)
    allowed = np.arange(choice_lp.shape[-1]) == prefix[:, step, None]  # (batch, vocab)
    shape = (len(forced),) + (1,) * (choice_lp.ndim - 2) + (choice_lp.shape[-1],)
    keep = ~forced[:, None] | allowed
    return np.where(keep.reshape(shape), choice_lp, NEG_INF).astype(_F32)


def banned_ngram_mask(tokens, n, vocab):
    """Tokens that would repeat an n-gram of size `n` of each row of `tokens`.

    Args:
        tokens: int `(rows, length)`, the hypotheses so far.
        n: int >= 1.
        vocab: int, the vocabulary size.

    Returns:
        bool `(rows, vocab)`: True for every token w such that the row's last n - 1
        tokens followed by w already occur in the row.
    """
    tokens = np.asarray(tokens)
    rows, length = tokens.shape
    banned = np.zeros([rows, vocab], bool)
    if length < n:
        return banned
    windows = np.lib.stride_tricks.sliding_window_view(tokens, n, axis=1)  # (rows, w, n)
    last = tokens[:, length - n + 1 :]  # (rows, n - 1)
    match = (windows[:, :, : n - 1] == last[:, None, :]).all(axis=-1)  # (rows, w)
    row, start = np.nonzero(match)
    banned[row, windows[row, start, n - 1]] = True
    return banned


def filter_logits(logits, top_k=None, top_p=None, temperature=1.0):
    """float32 `(rows, vocab)`: `logits / temperature`, NEG_INF outside the top-k tokens or
    outside the top-p nucleus (the smallest set, most likely first, with mass >= top_p; the
    most likely token always stays). Ties at the threshold stay in."""
    scaled = (np.asarray(logits, _F32) / _F32(temperature)).astype(_F32)
    if top_k is not None and top_k < scaled.shape[-1]:
        kth = -np.partition(-scaled, top_k - 1, axis=-1)[:, top_k - 1 : top_k]  # (rows, 1)
        scaled = np.where(scaled >= kth, scaled, NEG_INF)
    if top_p is not None:
        probs = np.exp(log_softmax(scaled))  # (rows, vocab)
        ranked = -np.sort(-probs, axis=-1)  # descending
        before = np.cumsum(ranked, axis=-1) - ranked  # mass of the more likely tokens
        kept = (before < top_p).sum(axis=-1, keepdims=True)  # >= 1
        threshold = np.take_along_axis(ranked, kept - 1, axis=-1)  # (rows, 1)
        scaled = np.where(probs >= threshold, scaled, NEG_INF)
    return scaled


def gumbel_noise(rng, vocab):
    """float32 `(vocab,)` standard Gumbel noise: -log(-log(u)), u uniform on (0, 1)."""
    u = np.maximum(rng.random(vocab), np.finfo(np.float64).tiny)
    return (-np.log(-np.log(u))).astype(_F32)


def sample_tokens(logits, noise, top_k=None, top_p=None, temperature=1.0):
    """int32 `(rows,)`: a draw per row from softmax of `filter_logits(logits, ...)`, given
    Gumbel `noise` broadcastable to `(rows, vocab)` (Gumbel-max trick)."""
    filtered = filter_logits(logits, top_k, top_p, temperature)
    return (filtered + noise).argmax(axis=-1).astype(np.int32)


def _choice_lp(step_lp, tokens, options):
    """The log-probs the next token is chosen from: banned n-grams at NEG_INF."""
    if options.no_repeat_ngram is None:
        return step_lp
    banned = banned_ngram_mask(tokens, options.no_repeat_ngram, step_lp.shape[-1])
    return np.where(banned, NEG_INF, step_lp)


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
    target_prefix=None,
    **options,
):
    """Greedy decoding: the arg-max token at every step, or a sampled one.

    Args:
        step_fn: the decoder step on NumPy arrays, see module docstring.
        states: list of initial decoder states `(batch_size, units)`.
        memory: `(batch_size, source_length, memory_units)`.
        projected_keys: once-per-sentence key projection, or None.
        mask: bool `(batch_size, source_length)`.
        start_id: int, the [START] id.
        end_id: int, the [END] id.
        max_length: int >= 0; default floor(max_length_ratio * source_length +
            max_length_offset), 2 * source_length + 10 unless set.
        length_penalty: float >= 0, only for the returned score.
        coverage_penalty: float >= 0, only for the returned score.
        target_prefix: None, or per sentence a list of target ids the output starts
            with (see the module docstring).
        **options: `DecodeOptions` fields (`n_best` (1), `max_length_ratio`,
            `max_length_offset`, `no_repeat_ngram`, `top_k`, `top_p`,
            `temperature`, `seed`); see the module docstring.

    Returns:
        dict with `tokens` int32 `(batch_size, length)`, `scores` float32
        `(batch_size,)` (log P of the tokens under the model, normalised as asked),
        `attention` float32 `(batch_size, length, source_length)` and the same as a
        one-best list: `nbest_tokens` `(batch_size, 1, length)`, `nbest_scores`
        `(batch_size, 1)`, `nbest_attention` `(batch_size, 1, length, source_length)`;
        `token_log_probs` float32 `(batch_size, length)`, each token's log-prob (0 after
        [END]), and `nbest_token_log_probs` `(batch_size, 1, length)`.
    """
    opts = _check_args(
        max_length, length_penalty=length_penalty, coverage_penalty=coverage_penalty, **options
    )
    mask = np.asarray(mask, bool)
    (batch, source_len), max_length = mask.shape, _max_length(mask, max_length, opts)
    rng = None
    if opts.sampling:
        rng = np.random.default_rng(opts.with_seed().seed)
    states = [np.asarray(s) for s in states]
    prev = np.full([batch], start_id, np.int32)
    finished = np.zeros([batch], bool)
    log_probs = np.zeros([batch], _F32)
    lengths = np.zeros([batch], np.int32)
    coverage = np.zeros([batch, source_len], _F32)
    prefix, prefix_lengths = prefix_array(target_prefix, batch, start_id, end_id)
    limits = prefix_lengths + max_length  # (batch,) each sentence's most tokens
    tokens, attention, token_lps = [], [], []
    while len(tokens) < limits.max(initial=0) and not finished.all():
        logits, new_states, weights = step_fn(prev, states, memory, projected_keys, mask)
        step_lp = log_softmax(logits)  # (batch, vocab)
        so_far = np.stack(tokens, 1) if tokens else np.zeros([batch, 0], np.int32)
        choice_lp = _force_prefix(
            _choice_lp(step_lp, so_far, opts), prefix, prefix_lengths, len(tokens)
        )
        if rng is None:
            token = choice_lp.argmax(axis=-1).astype(np.int32)
        else:
            noise = gumbel_noise(rng, step_lp.shape[-1])
            token = sample_tokens(choice_lp, noise, opts.top_k, opts.top_p, opts.temperature)
        alive = ~finished & (len(tokens) < limits)
        token_lps.append(np.where(alive, step_lp[np.arange(batch), token], _F32(0)))
        log_probs += token_lps[-1]
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
    out = {
        "tokens": np.stack(tokens, 1) if tokens else np.zeros([batch, 0], np.int32),
        "scores": scores,
        "attention": (
            np.stack(attention, 1) if attention else np.zeros([batch, 0, source_len], _F32)
        ),  # (batch, length, source_len)
        "token_log_probs": (
            np.stack(token_lps, 1) if token_lps else np.zeros([batch, 0], _F32)
        ),  # (batch, length)
    }
    return with_one_best_list(out)


def with_one_best_list(result):
    """`result` (`tokens`, `scores`, `attention`, maybe `token_log_probs`, of one hypothesis
    per row) plus the same as
    a one-best list, `nbest_*` with an n-best axis of 1: a greedy result in beam search's
    layout."""
    result.update({f"nbest_{key}": np.asarray(value)[:, None] for key, value in result.items()})
    return result


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

    The same result as a stable descending argsort cut to `k`, without sorting all
    n = beam x vocab candidates. Cut a row into k chunks: each chunk's maximum is at least
    the smallest of the k maxima t0, so the row has k values >= t0 and its k largest are
    all >= t0. Usually only a few values are, and `_top_k_of_candidates` sorts just those;
    where many are (the first beam step, where all but one beam is at NEG_INF),
    `_top_k_by_partition` takes over.
    """
    x = np.asarray(x)
    batch, n = x.shape
    if k >= n or np.isnan(x).any():  # NaN order is argsort's business; never in practice
        index = np.argsort(-x, axis=-1, kind="stable")[:, :k].astype(np.int32)
        return np.take_along_axis(x, index, axis=-1), index
    floor = x[:, : n - n % k].reshape(batch, k, -1).max(axis=-1).min(axis=-1)  # (batch,)
    candidates = x >= floor[:, None]  # (batch, n), at least k per row
    counts = candidates.sum(axis=-1)  # (batch,)
    if np.isfinite(floor).all() and counts.max() <= max(4 * k, n // 16):
        return _top_k_of_candidates(x, k, candidates, counts)
    return _top_k_by_partition(x, k)


def _top_k_of_candidates(x, k, candidates, counts):
    """`_top_k` given a mask that holds every row's k largest values (finite ones) and
    its per-row counts."""
    rows, cols = np.nonzero(candidates)  # row-major: ascending index within a row
    slot = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    values = np.full((x.shape[0], counts.max()), -np.inf, x.dtype)  # padding sorts last
    index = np.zeros(values.shape, np.int64)
    values[rows, slot], index[rows, slot] = x[rows, cols], cols
    order = np.argsort(-values, axis=-1, kind="stable")[:, :k]  # ties keep index order
    index = np.take_along_axis(index, order, axis=-1).astype(np.int32)
    return np.take_along_axis(x, index, axis=-1), index


def _top_k_by_partition(x, k):
    """`_top_k` in O(n): partition finds each row's k-th largest value t, every value
    above t is kept, and of the values equal to t the ones of lowest index fill the rest;
    only those k are then sorted (stably, so ties keep index order)."""
    n = x.shape[-1]
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
    alive = ~finished
    if finished.any():  # (a pass over every candidate, so only when some beam is finished)
        eos_only = np.where(is_end, _F32(0), NEG_INF)  # (vocab,)
        step_lp = np.where(finished[..., None], eos_only, step_lp)
        weights = np.where(alive[..., None], weights, _F32(0))
    total = log_probs[..., None] + step_lp  # (batch, beam, vocab)
    cand_lengths = lengths + alive.astype(np.int32)  # (batch, beam)
    cand_coverage = coverage + weights  # (batch, beam, source_len)
    cand_finished = finished[..., None] | is_end  # (batch, beam, vocab)
    return total, cand_lengths, cand_coverage, cand_finished, weights


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
    with_margins=False,
    target_prefix=None,
    **options,
):
    """Batched beam search with the GNMT length and coverage penalties.

    `memory`, `projected_keys`, `mask` and `states` are repeated per beam (rows
    `b * beam_width + i`), so `step_fn` sees `batch_size * beam_width` rows.

    Args:
        step_fn: as in `greedy_search`, and so are `states`, `memory`,
            `projected_keys`, `mask`, `start_id`, `end_id`, `max_length` and the
            two penalties.
        beam_width: a positive int at most the vocabulary size (checked once the
            first step gives the logits).
        with_margins: also return `margins` (below).
        target_prefix: as in `greedy_search`.
        **options: `n_best` (at most `beam_width`, default 1), `max_length_ratio`,
            `max_length_offset`, `no_repeat_ngram`; no sampling.

    Returns:
        dict with the best hypothesis per sentence, `tokens` int32
        `(batch_size, length)`, `scores` float32 `(batch_size,)`, `attention`
        float32 `(batch_size, length, source_length)`; all hypotheses sorted
        best first: `beam_tokens` `(batch_size, beam_width, length)`,
        `beam_scores` `(batch_size, beam_width)`; and the first `n_best` of them
        with their attention: `nbest_tokens` `(batch_size, n_best, length)`,
        `nbest_scores`, `nbest_attention` `(batch_size, n_best, length, source_length)`;
        each token's own log-prob (0 after [END]): `token_log_probs` `(batch_size, length)`
        and `nbest_token_log_probs` `(batch_size, n_best, length)`; with `with_margins`,
        also `margins` float32 `(batch_size, length)`: how near each step's choice came to
        another (see `_decision_margins`; the parity harness asks).
    """
    opts = _check_args(
        max_length,
        beam_width,
        length_penalty=length_penalty,
        coverage_penalty=coverage_penalty,
        **options,
    )
    k, mask = int(beam_width), np.asarray(mask, bool)
    (batch, source_len), max_length = mask.shape, _max_length(mask, max_length, opts)
    memory_t, keys_t, mask_t = (
        None if x is None else np.repeat(x, k, axis=0) for x in (memory, projected_keys, mask)
    )
    mask_b = mask_t.reshape(batch, k, source_len)
    states = [np.repeat(np.asarray(s), k, axis=0) for s in states]
    prev = np.full([batch * k], start_id, np.int32)
    log_probs = np.tile(np.array([[0.0] + [NEG_INF] * (k - 1)], _F32), [batch, 1])
    finished, lengths = np.zeros([batch, k], bool), np.zeros([batch, k], np.int32)
    coverage = np.zeros([batch, k, source_len], _F32)
    scores = old_scores = np.zeros([batch, k], _F32)
    seqs = np.zeros([batch, k, 0], np.int32)
    attn = np.zeros([batch, k, 0, source_len], _F32)
    seq_lps = np.zeros([batch, k, 0], _F32)  # each token's own log-prob
    margins = []  # per step (batch,): last kept candidate's score - best dropped one's
    prefix, prefix_lengths = prefix_array(target_prefix, batch, start_id, end_id)
    limits = prefix_lengths + max_length  # (batch,) each sentence's most tokens
    while seqs.shape[-1] < limits.max(initial=0) and not finished.all():
        logits, new_states, weights = step_fn(prev, states, memory_t, keys_t, mask_t)
        vocab = np.shape(logits)[-1]
        if not seqs.shape[-1]:  # the first step tells the vocabulary size
            opts.check(max_beam_width=vocab)
        step_lp = _choice_lp(log_softmax(logits), seqs.reshape(batch * k, -1), opts)
        step_lp = step_lp.reshape(batch, k, vocab)
        step_lp = _force_prefix(step_lp, prefix, prefix_lengths, seqs.shape[-1])
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
        flat = cand_score.reshape(batch, k * vocab)
        if with_margins:
            scores, index, margin = _top_k_with_margin(flat, k)
            margins.append(margin)
        else:
            scores, index = _top_k(flat, k)
        parents, token = index // vocab, index % vocab  # (batch, beam)
        held = (seqs.shape[-1] >= limits)[:, None]  # (batch, 1) sentences past their limit
        before = (log_probs, old_scores, finished, lengths, coverage)
        if held.any():  # they keep their beams, and take padding at no cost
            parents = np.where(held, np.arange(k), parents)
            finished = finished | held
        log_probs = np.take_along_axis(total.reshape(batch, k * vocab), index, axis=-1)
        parent_finished = _gather_beams(finished, parents)
        chosen_lp = np.take_along_axis(step_lp.reshape(batch, k * vocab), index, axis=-1)
        chosen_lp = np.where(parent_finished, _F32(0), chosen_lp)  # (batch, beam)
        token = np.where(parent_finished, 0, token).astype(np.int32)
        finished = parent_finished | (token == end_id)
        seqs = np.concatenate([_gather_beams(seqs, parents), token[..., None]], axis=-1)
        seq_lps = np.concatenate([_gather_beams(seq_lps, parents), chosen_lp[..., None]], -1)
        step_attn = np.where(held[..., None], _F32(0), _gather_beams(weights, parents))
        attn = np.concatenate([_gather_beams(attn, parents), step_attn[:, :, None, :]], axis=2)
        states = _cast_like([_flat_gather(s, parents, k) for s in new_states], states)
        lengths, coverage = _gather_beams(cand_len, parents), _gather_beams(cand_cov, parents)
        if held.any():
            log_probs, scores, finished, lengths, coverage = (
                np.where(held.reshape(held.shape + (1,) * (old.ndim - 2)), old, new)
                for old, new in zip(
                    before, (log_probs, scores, finished, lengths, coverage), strict=True
                )
            )
        old_scores = scores
        prev = token.reshape(-1)
    out = {
        "tokens": seqs[:, 0],
        "scores": scores[:, 0],
        "attention": attn[:, 0],
        "beam_tokens": seqs,
        "beam_scores": scores,
        "nbest_tokens": seqs[:, : opts.n_best],
        "nbest_scores": scores[:, : opts.n_best],
        "nbest_attention": attn[:, : opts.n_best],  # (batch, n_best, length, source_len)
        "token_log_probs": seq_lps[:, 0],
        "nbest_token_log_probs": seq_lps[:, : opts.n_best],  # (batch, n_best, length)
    }
    if with_margins:
        out["margins"] = _decision_margins(margins, scores, batch)
    return out


def _top_k_with_margin(x, k):
    """`_top_k(x, k)` and, per row, the k-th value minus the (k+1)-th (0 where they tie, inf
    where there is no (k+1)-th or the k-th is banned): how close the pruning came to
    another choice. Two passes over `x` on top of `_top_k`."""
    values, index = _top_k(x, k)
    if k >= x.shape[-1]:
        return values, index, np.full([x.shape[0]], np.inf, _F32)
    kth = values[:, k - 1 : k]  # (batch, 1)
    tied = (x >= kth).sum(axis=-1) > k  # an unchosen value equals the k-th
    below = np.where(x < kth, x, -np.inf).max(axis=-1)  # the best value under the k-th
    margin = np.where(tied, 0.0, kth[:, 0] - below)
    return values, index, np.where(kth[:, 0] <= NEG_INF / 2, np.inf, margin).astype(_F32)


def _decision_margins(margins, scores, batch):
    """float32 `(batch, steps)`: at each step the margin of the pruning (see
    `_top_k_with_margin`), at the last one also that of the final choice (best minus
    second best hypothesis). A runtime whose scores differ from another's by less than
    half a step's margin makes the same choices there; the parity harness uses this to
    tell a near-tie apart from a real difference."""
    if not margins:
        return np.zeros([batch, 0], _F32)
    out = np.stack(margins, axis=1)
    if scores.shape[1] > 1:
        final = np.where(scores[:, 1] <= NEG_INF / 2, np.inf, scores[:, 0] - scores[:, 1])
        out[:, -1] = np.minimum(out[:, -1], final)
    return out.astype(_F32)


def pad(sequences, pad_to=None):
    """int32 `(len(sequences), max(len) or pad_to)` padded with PAD_ID."""
    length = max(len(s) for s in sequences) if pad_to is None else pad_to
    batch = np.full((len(sequences), length), PAD_ID, np.int32)
    for row, ids in zip(batch, sequences, strict=True):
        row[: len(ids)] = ids
    return batch


def _ended_within(tokens, end_id, max_length):
    """Whether every sequence in `tokens` `(..., length)` has [END] among its first max_length."""
    return bool((np.asarray(tokens)[..., :max_length] == end_id).any(axis=-1).all())


def _beam_width(options):
    return options.beam_width if isinstance(options, DecodeOptions) else int(options)


def decode_batch(decode_fn, sequences, options, max_lengths, end_id, pad_to=None):
    """Decodes `sequences` together; each result equals decoding that sequence alone.

    Args:
        decode_fn: `decode_fn(ids, options, max_length)` -> search result dict with
            `tokens` `(batch, length)`, `scores` `(batch,)`, `attention`
            `(batch, length, source_length)`, for beam search `beam_tokens`
            `(batch, beam_width, length)`, and with `DecodeOptions` the `nbest_*` arrays;
            e.g. `OnnxModel.decode` with the special ids bound.
        sequences: list of 1-D int sequences (source ids with [START] and [END]).
        options: shared by all sequences: a beam width (int >= 1) or a `DecodeOptions`
            (then every result also has its `nbest` list).
        max_lengths: one int >= 0 per sequence.
        end_id: the [END] id.
        pad_to: optional fixed source length (an export with a static source length).

    Returns:
        list of `Translation`, one per sequence: `tokens` int32 `(n,)` (through [END]),
        `score`, `attention` float32 `(n, source_length)`.
    """
    if len(sequences) != len(max_lengths):
        raise ValueError(
            f"`max_lengths` must have one entry per sequence ({len(sequences)}), "
            f"received: {len(max_lengths)} entries"
        )
    longest = max(max_lengths)
    out = decode_fn(pad(sequences, pad_to), options, longest)
    ended_key = "tokens" if _beam_width(options) == 1 else "beam_tokens"
    n_best = options.n_best if isinstance(options, DecodeOptions) else None
    results = []
    for row, (ids, max_length) in enumerate(zip(sequences, max_lengths, strict=True)):
        if max_length == longest or _ended_within(out[ended_key][row], end_id, max_length):
            results.append(Translation.from_search(out, row, end_id, len(ids), n_best))
        else:  # it ran past its own limit in the batch: decode it alone
            alone = decode_fn(pad([ids], pad_to), options, max_length)
            results.append(Translation.from_search(alone, 0, end_id, len(ids), n_best))
    return results
