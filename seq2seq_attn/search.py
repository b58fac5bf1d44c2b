"""Greedy and beam search inside the TensorFlow graph.

Both run a `tf.while_loop` over a decoder step function

    step_fn(prev_tokens, states, memory, projected_keys, mask)
        -> (logits (n, vocab), new_states, weights (n, source_len))

and work under `tf.function` with dynamic batch size and source length.

Scoring follows GNMT (Wu et al. 2016, eq. 14) as TensorFlow Addons'
`BeamSearchDecoder` did: score = log P(Y|X) / lp(Y) + cp(X; Y), with
lp(Y) = ((5 + |Y|) / 6) ** length_penalty and
cp = coverage_penalty * sum_j log(min(sum_i a_ij, 1)) over unmasked source
positions j, applied to finished hypotheses only. |Y| counts the [END] token.
Tokens after [END] are 0 (padding) and their attention rows are zeros.

Options (`seq2seq_attn.interface.DecodeOptions`; the host search
`seq2seq_attn.inference.search` follows the same rules and picks the same
tokens for all but sampling):

- `n_best`: results also carry `nbest_tokens` `(batch, n_best, length)`,
  `nbest_scores` and `nbest_attention`, best first.
- `max_length_ratio`, `max_length_offset`: without `max_length`, at most
  floor(ratio * padded source length + offset) steps (int32 arithmetic for a
  whole-number ratio, float64 otherwise, exactly as the host computes it).
- `no_repeat_ngram` N: tokens that would complete an n-gram of size N already
  in the hypothesis get log-prob NEG_INF before the choice, with fixed-size
  ops (every window of the token buffer against its last N - 1 tokens, then a
  `scatter_nd`), so the greedy loop keeps its fixed-size buffers.
- Sampling (`top_k` or `top_p`, greedy only): log-probs / temperature, cut to
  top-k or the top-p nucleus, then the arg-max after adding Gumbel noise drawn
  by `tf.random.stateless_uniform` with seed (seed, step): one noise vector
  `(vocab,)` per step shared by every row, so a row's tokens depend on the
  seed and that row only, never on its batch mates.

`target_prefix` (a keyword of both searches and of `Seq2SeqAttention.generate`): int32
`(batch, P)`, each sentence's forced target ids padded with 0 (no [START] or [END]). Its
tokens are forced (NEG_INF elsewhere), scored, and part of `tokens`; `max_length` counts
from the end of each sentence's prefix. Same rules as the host search's `target_prefix`
(lists there); without it the graph has no prefix ops at all, as the exports need.
"""

from typing import NamedTuple

import numpy as np
import tensorflow as tf

from seq2seq_attn.interface import NEG_INF, DecodeOptions, check_max_length, max_length_for


class _GreedyState(NamedTuple):
    """The loop variables of `greedy_search`'s `tf.while_loop`."""

    t: tf.Tensor  # int32 scalar, the step about to run
    prev_tokens: tf.Tensor  # int32 (batch,), fed to the next step
    states: list  # decoder states, each (batch, units)
    finished: tf.Tensor  # bool (batch,)
    log_probs: tf.Tensor  # float32 (batch,)
    lengths: tf.Tensor  # int32 (batch,), counting [END]
    coverage: tf.Tensor  # float32 (batch, source_len), attention summed over steps
    tokens: tf.Tensor  # int32 (batch, max_length), step t written at column t
    attention: tf.Tensor  # float32 (batch, max_length, source_len)
    token_lps: tf.Tensor  # float32 (batch, max_length), each chosen token's own log-prob


class _BeamState(NamedTuple):
    """The loop variables of `beam_search`'s `tf.while_loop`; k is the beam width."""

    t: tf.Tensor  # int32 scalar, the step about to run
    prev_tokens: tf.Tensor  # int32 (batch * k,), fed to the next step
    states: list  # decoder states, each (batch * k, units)
    log_probs: tf.Tensor  # float32 (batch, k)
    finished: tf.Tensor  # bool (batch, k)
    lengths: tf.Tensor  # int32 (batch, k), counting [END]
    coverage: tf.Tensor  # float32 (batch, k, source_len)
    scores: tf.Tensor  # float32 (batch, k), the ranking score, best first
    tokens: tf.Tensor  # int32 (batch, k, t), the hypotheses so far
    attention: tf.Tensor  # float32 (batch, k, t, source_len)
    token_lps: tf.Tensor  # float32 (batch, k, t), each token's own log-prob


def length_penalty_factor(lengths, alpha):
    """GNMT lp(Y) = ((5 + |Y|) / 6) ** alpha, float32, same shape as `lengths`."""
    return tf.pow((5.0 + tf.cast(lengths, tf.float32)) / 6.0, alpha)


def coverage_score(coverage, mask, beta):
    """beta * sum_j log(min(coverage_j, 1)) over unmasked j; coverage `(..., source_len)`."""
    clipped = tf.minimum(coverage, 1.0)
    if mask is not None:
        clipped = tf.where(mask, clipped, tf.ones_like(clipped))
    # A position never attended would give log(0); floor it so scores stay finite.
    return beta * tf.reduce_sum(tf.math.log(tf.maximum(clipped, 1e-10)), axis=-1)


def final_score(log_probs, lengths, coverage, finished, mask, length_penalty, coverage_penalty):
    """The ranking score of hypotheses: normalised log-prob plus coverage (finished only)."""
    score = log_probs / length_penalty_factor(lengths, length_penalty)
    if coverage_penalty:
        cp = coverage_score(coverage, mask, coverage_penalty)
        score += tf.where(finished, cp, tf.zeros_like(cp))
    return score


def _max_length(memory, max_length, options):
    """`max_length` as an int32 scalar, or `max_length_for` the padded source length."""
    if max_length is not None:
        if not isinstance(max_length, tf.Tensor):
            check_max_length(max_length)
        return tf.convert_to_tensor(max_length, tf.int32)
    ratio, offset = options.max_length_ratio, options.max_length_offset
    source_len = tf.shape(memory)[1]
    if float(ratio).is_integer():  # the exported graphs: int32 ops only
        return max_length_for(source_len, options)
    scaled = float(ratio) * tf.cast(source_len, tf.float64) + float(offset)
    return tf.cast(tf.floor(scaled), tf.int32)


def checked_options(beam_width=1, max_beam_width=None, **options):
    """`DecodeOptions.check` (BadOption for a bad value) of the Python values among
    `options`, and the seed, which may be an int64 scalar tensor (a tensor seed or penalty
    is the graph caller's to check).

    Returns:
        (DecodeOptions, seed): tensor values left at their defaults in the options.
    """
    seed = options.pop("seed", None)
    options.pop("target_prefix", None)  # a search input, not a `DecodeOptions` field
    static = {k: v for k, v in options.items() if not isinstance(v, tf.Tensor)}
    if not isinstance(seed, tf.Tensor):
        static["seed"] = seed
    return DecodeOptions(beam_width=beam_width, **static).check(max_beam_width), seed


def banned_ngram_mask(tokens, length, n, vocab):
    """Tokens that would repeat an n-gram of size `n` in each row of `tokens`.

    Args:
        tokens: int32 `(rows, buffer_length)`; the first `length` columns are the
            hypotheses so far, the rest is ignored.
        length: int32 scalar, filled columns.
        n: Python int >= 1.
        vocab: int32 scalar, the vocabulary size.

    Returns:
        bool `(rows, vocab)`: True for every token w such that the row's last n - 1
        tokens followed by w already occur in the row.
    """
    rows, width = tf.shape(tokens)[0], tf.shape(tokens)[1]
    padded = tf.pad(tokens, [[0, 0], [0, n]])  # (rows, width + n)
    match = tf.ones([rows, width], tf.bool)  # window starting at column i matches
    for j in range(n - 1):
        last_j = tf.gather(padded, tf.maximum(length - n + 1 + j, 0), axis=1)  # (rows,)
        match = tf.logical_and(match, tf.equal(padded[:, j : j + width], last_j[:, None]))
    follower = padded[:, n - 1 : n - 1 + width]  # (rows, width), the window's last token
    hit = tf.logical_and(match, tf.range(width)[None, :] <= length - n)  # whole windows only
    row = tf.broadcast_to(tf.range(rows)[:, None], [rows, width])
    index = tf.stack([row, follower], axis=-1)  # (rows, width, 2)
    return tf.scatter_nd(index, tf.cast(hit, tf.int32), [rows, vocab]) > 0


def filter_logits(logits, top_k=None, top_p=None, temperature=1.0):
    """float32 `(rows, vocab)`: `logits / temperature`, NEG_INF outside the top-k tokens or
    outside the top-p nucleus (the smallest set, most likely first, with mass >= top_p; the
    most likely token always stays). Ties at the threshold stay in."""
    scaled = tf.cast(logits, tf.float32) / temperature
    if top_k is not None:
        k = tf.minimum(top_k, tf.shape(scaled)[-1])
        kth = tf.math.top_k(scaled, k).values[:, -1:]  # (rows, 1)
        scaled = tf.where(scaled >= kth, scaled, NEG_INF)
    if top_p is not None:
        probs = tf.nn.softmax(scaled)  # (rows, vocab)
        ranked = tf.sort(probs, axis=-1, direction="DESCENDING")
        before = tf.cumsum(ranked, axis=-1, exclusive=True)  # mass of the more likely tokens
        kept = tf.reduce_sum(tf.cast(before < top_p, tf.int32), axis=-1)  # (rows,), >= 1
        threshold = tf.gather(ranked, kept - 1, batch_dims=1)[:, None]  # (rows, 1)
        scaled = tf.where(probs >= threshold, scaled, NEG_INF)
    return scaled


def gumbel_noise(seed, step, vocab):
    """float32 `(vocab,)` standard Gumbel noise from the stateless RNG at seed (seed, step)."""
    pair = tf.stack([tf.cast(seed, tf.int64), tf.cast(step, tf.int64)])
    u = tf.random.stateless_uniform([vocab], pair, minval=np.finfo(np.float32).tiny, maxval=1.0)
    return -tf.math.log(-tf.math.log(u))


def sample_tokens(logits, noise, top_k=None, top_p=None, temperature=1.0):
    """int32 `(rows,)`: a draw per row from softmax of `filter_logits(logits, ...)`, given
    Gumbel `noise` broadcastable to `(rows, vocab)` (Gumbel-max trick)."""
    filtered = filter_logits(logits, top_k, top_p, temperature)
    return tf.argmax(filtered + noise, axis=-1, output_type=tf.int32)


def _choice_lp(step_lp, tokens, length, options):
    """The log-probs the next token is chosen from: banned n-grams at NEG_INF."""
    if options.no_repeat_ngram is None:
        return step_lp
    vocab = tf.shape(step_lp)[-1]
    banned = banned_ngram_mask(tokens, length, options.no_repeat_ngram, vocab)
    return tf.where(banned, NEG_INF, step_lp)


def _pick(step_lp, s, options, seed):
    """Greedy's next token `(batch,)`: the arg-max, or a draw when sampling."""
    choice_lp = _choice_lp(step_lp, s.tokens, s.t, options)
    if not options.sampling:
        return tf.argmax(choice_lp, axis=-1, output_type=tf.int32)
    noise = gumbel_noise(seed, s.t, tf.shape(step_lp)[-1])
    return sample_tokens(choice_lp, noise, options.top_k, options.top_p, options.temperature)


def _prefix(target_prefix, batch, max_length):
    """The padded prefix with a column of 0s after it `(batch, P + 1)`, the prefix lengths
    `(batch,)` (its non-zero ids), each sentence's most tokens and the longest of them; no
    prefix: Nones and `max_length` (the graph then has no prefix ops, as before)."""
    if target_prefix is None:
        return None, None, None, max_length
    prefix = tf.convert_to_tensor(target_prefix, tf.int32)
    lengths = tf.reduce_sum(tf.cast(prefix != 0, tf.int32), axis=-1)  # (batch,)
    limits = lengths + max_length
    padded = tf.pad(prefix, [[0, 0], [0, 1]])
    return padded, lengths, limits, max_length + tf.shape(prefix)[1]


def _prefix_token(prefix, t):
    """`(batch,)` the prefix id at step `t` (0 past a sentence's prefix)."""
    return tf.gather(prefix, tf.minimum(t, tf.shape(prefix)[1] - 1), axis=1)


def _force_prefix(step_lp, prefix, prefix_lengths, t):
    """`step_lp` `(batch, beam, vocab)` with NEG_INF but at the prefix token, in the
    sentences still inside their prefix at step `t`."""
    vocab = tf.shape(step_lp)[-1]
    forced = tf.logical_and(
        (t < prefix_lengths)[:, None],
        tf.not_equal(tf.range(vocab)[None], _prefix_token(prefix, t)[:, None]),
    )  # (batch, vocab): tokens other than the prefix's
    return tf.where(forced[:, None], NEG_INF, step_lp)


def shortlist_mask(source_ids, top, always, vocab_size):
    """Each sentence's shortlist candidates in the graph: `Shortlist.mask` with fixed ops.

    Row i holds the top-k targets of sentence i's source ids and the `always` ids, written
    by `scatter_nd` into a count table: ops that TFLite (GATHER, SCATTER_ND) and ONNX
    (Gather, ScatterND) have built in. `candidates_of` gives the batch's union.

    Args:
        source_ids: int `(batch_size, source_length)`; the rows of [PAD], [START] and
            [END] in `top` hold only [PAD], so they add nothing of their own.
        top: int32 `(source_vocab_size, top_k)`, `Shortlist.top` (a constant in exports).
        always: int32 `(n,)`, `Shortlist.always` (the frequent and special ids).
        vocab_size: Python int, the target vocabulary size.

    Returns:
        bool `(batch_size, vocab_size)`.
    """
    source_ids = tf.cast(source_ids, tf.int32)
    batch = tf.shape(source_ids)[0]
    chosen = tf.reshape(tf.gather(top, source_ids), [batch, -1])  # (batch, length * top_k)
    rows = tf.broadcast_to(tf.range(batch)[:, None], tf.shape(chosen))  # (batch, length * k)
    indices = tf.stack([tf.reshape(rows, [-1]), tf.reshape(chosen, [-1])], axis=1)  # (n, 2)
    hits = tf.scatter_nd(indices, tf.ones_like(indices[:, 0]), [batch, vocab_size])
    common = tf.scatter_nd(always[:, None], tf.ones_like(always), [vocab_size])  # (vocab,)
    return (hits + common[None]) > 0  # (batch, vocab)


def candidates_of(mask):
    """int32 `(candidates,)`, ascending: the ids that some row of a bool `(batch, vocab)`
    candidate mask holds (an integer max, which every runtime reduces)."""
    any_row = tf.reduce_max(tf.cast(mask, tf.int32), axis=0)  # (vocab,)
    return tf.cast(tf.reshape(tf.where(any_row > 0), [-1]), tf.int32)


def _fresh_seed(seed):
    if seed is not None:
        return seed
    return tf.random.uniform([], 0, np.iinfo(np.int64).max, tf.int64)


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
        step_fn: the decoder step, see module docstring.
        states: list of initial decoder states `(batch_size, units)`.
        memory: `(batch_size, source_length, memory_units)`.
        projected_keys: once-per-sentence key projection, or None.
        mask: bool `(batch_size, source_length)`.
        start_id: int, the [START] id that begins every hypothesis.
        end_id: int, the [END] id that finishes one.
        max_length: int or scalar tensor; default floor(max_length_ratio *
            source_length + max_length_offset), 2 * source_length + 10 unless set.
        length_penalty: float, only for the returned score.
        coverage_penalty: float, only for the returned score.
        **options: Python values of `DecodeOptions` fields (`n_best` (1),
            `max_length_ratio`, `max_length_offset`, `no_repeat_ngram`, `top_k`,
            `top_p`, `temperature`) and `seed`, an int or an int64 scalar tensor
            (None draws one); see the module docstring.

    Returns:
        dict with `tokens` int32 `(batch_size, length)`, `scores` float32
        `(batch_size,)` (log P of the tokens under the model, normalised as asked),
        `attention` float32 `(batch_size, length, source_length)` and the same as a
        one-best list: `nbest_tokens` `(batch_size, 1, length)`, `nbest_scores`
        `(batch_size, 1)`, `nbest_attention` `(batch_size, 1, length, source_length)`;
        `token_log_probs` float32 `(batch_size, length)`, each chosen token's own log-prob
        (0 after [END]), and `nbest_token_log_probs` `(batch_size, 1, length)`.
    """
    options, seed = checked_options(
        length_penalty=length_penalty, coverage_penalty=coverage_penalty, **options
    )
    seed = _fresh_seed(seed) if options.sampling else None
    batch, source_len = tf.shape(memory)[0], tf.shape(memory)[1]
    max_length = _max_length(memory, max_length, options)
    prefix, prefix_lengths, limits, max_length = _prefix(target_prefix, batch, max_length)
    # Fixed-size buffers written with one-hot masks (no TensorList): the loop converts to
    # TFLite builtins and ONNX with dynamic batch and source length.
    init = _GreedyState(
        t=tf.constant(0),
        prev_tokens=tf.fill([batch], tf.cast(start_id, tf.int32)),
        states=list(states),
        finished=tf.zeros([batch], tf.bool),
        log_probs=tf.zeros([batch], tf.float32),
        lengths=tf.zeros([batch], tf.int32),
        coverage=tf.zeros([batch, source_len], tf.float32),
        tokens=tf.zeros([batch, max_length], tf.int32),
        attention=tf.zeros([batch, max_length, source_len], tf.float32),
        token_lps=tf.zeros([batch, max_length], tf.float32),
    )

    def cond(s):
        more = s.t < (max_length if limits is None else tf.reduce_max(limits))
        return tf.logical_and(more, tf.logical_not(tf.reduce_all(s.finished)))

    def body(s):
        logits, new_states, weights = step_fn(s.prev_tokens, s.states, memory, projected_keys, mask)
        step_lp = tf.nn.log_softmax(tf.cast(logits, tf.float32))  # (batch, vocab)
        token = _pick(step_lp, s, options, seed)
        alive = tf.logical_not(s.finished)
        if prefix is not None:
            token = tf.where(s.t < prefix_lengths, _prefix_token(prefix, s.t), token)
            alive = tf.logical_and(alive, s.t < limits)
        token_lp = tf.reduce_sum(step_lp * tf.one_hot(token, tf.shape(step_lp)[-1]), axis=-1)
        weights = tf.where(tf.expand_dims(alive, -1), tf.cast(weights, tf.float32), 0.0)
        token = tf.where(alive, token, 0)
        at_t = tf.one_hot(s.t, max_length)  # (max_length,)
        at_t_tokens = tf.expand_dims(tf.cast(at_t, tf.int32), 0) * tf.expand_dims(token, -1)
        return (
            _GreedyState(
                t=s.t + 1,
                prev_tokens=token,
                states=[
                    tf.cast(new, ref.dtype) for new, ref in zip(new_states, s.states, strict=True)
                ],
                finished=tf.logical_or(s.finished, tf.equal(token, end_id)),
                log_probs=s.log_probs + tf.where(alive, token_lp, 0.0),
                lengths=s.lengths + tf.cast(alive, tf.int32),
                coverage=s.coverage + weights,
                tokens=s.tokens + at_t_tokens,  # (batch, max_length)
                attention=s.attention + tf.reshape(at_t, [1, -1, 1]) * tf.expand_dims(weights, 1),
                token_lps=s.token_lps + at_t[None] * tf.where(alive, token_lp, 0.0)[:, None],
            ),
        )

    # One loop variable, the state, so that `cond` and `body` take it whole, by name.
    (out,) = tf.while_loop(cond, body, (init,))
    scores = final_score(
        out.log_probs,
        out.lengths,
        out.coverage,
        out.finished,
        mask,
        length_penalty,
        coverage_penalty,
    )
    result = {
        "tokens": out.tokens[:, : out.t],
        "scores": scores,
        "attention": out.attention[:, : out.t],
        "token_log_probs": out.token_lps[:, : out.t],  # 0 after [END]
    }
    result.update({f"nbest_{key}": value[:, None] for key, value in result.items()})
    return result


def _tile_beams(x, beam_width):
    """(batch, ...) -> (batch * beam_width, ...), each row repeated beam_width times."""
    return None if x is None else tf.repeat(x, beam_width, axis=0)


def _gather_beams(x, parents):
    """Pick rows of `x` (batch, beam, ...) by parent beam index (batch, beam)."""
    return tf.gather(x, parents, batch_dims=1)


def _flat_gather(x, parents, beam_width):
    """Same as `_gather_beams` for a flat (batch * beam, ...) tensor."""
    shape = tf.shape(x)
    x = tf.reshape(x, tf.concat([[-1, beam_width], shape[1:]], 0))
    return tf.reshape(_gather_beams(x, parents), shape)


def _invariant(x, *dims):
    """A shape invariant with a dynamic batch (and any dims given as None)."""
    if dims:
        return tf.TensorShape(dims)
    if x.shape.rank == 0:
        return tf.TensorShape([])
    return tf.TensorShape([None]).concatenate(x.shape[1:])


def _expand_candidates(step_lp, finished, log_probs, lengths, coverage, weights, end_id):
    """Scores every (beam, token) continuation; finished beams may only repeat [END] at 0 cost.

    Shapes: step_lp `(batch, beam, vocab)`; finished, log_probs, lengths `(batch, beam)`;
    coverage and weights `(batch, beam, source_len)`.
    """
    vocab = tf.shape(step_lp)[-1]
    is_end = tf.equal(tf.range(vocab), end_id)  # (vocab,)
    eos_only = tf.where(is_end, 0.0, NEG_INF)  # (vocab,)
    step_lp = tf.where(finished[..., None], eos_only, step_lp)
    alive = tf.logical_not(finished)
    weights = tf.where(alive[..., None], weights, 0.0)
    total = log_probs[..., None] + step_lp  # (batch, beam, vocab)
    cand_lengths = lengths + tf.cast(alive, tf.int32)  # (batch, beam)
    cand_coverage = coverage + weights  # (batch, beam, source_len)
    cand_finished = tf.logical_or(finished[..., None], is_end)  # (batch, beam, vocab)
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
    target_prefix=None,
    **options,
):
    """Batched beam search with the GNMT length and coverage penalties.

    Takes the arguments of `greedy_search`, plus `beam_width`, a positive Python int. Its
    options are `n_best` (at most `beam_width`, default 1), `max_length_ratio`,
    `max_length_offset` and `no_repeat_ngram`; no sampling.

    Returns:
        dict with the best hypothesis per sentence, `tokens` int32
        `(batch_size, length)`, `scores` `(batch_size,)`, `attention`
        `(batch_size, length, source_length)`; all hypotheses sorted best
        first: `beam_tokens` `(batch_size, beam_width, length)`, `beam_scores`
        `(batch_size, beam_width)`; and the first `n_best` of them with their
        attention: `nbest_tokens` `(batch_size, n_best, length)`, `nbest_scores`,
        `nbest_attention` `(batch_size, n_best, length, source_length)`; each token's own
        log-prob (after `no_repeat_ngram`'s bans, 0 after [END]), as the host search gives
        it: `token_log_probs` `(batch_size, length)` and `nbest_token_log_probs`
        `(batch_size, n_best, length)`.
    """
    options, _ = checked_options(
        beam_width, length_penalty=length_penalty, coverage_penalty=coverage_penalty, **options
    )
    k = beam_width
    batch, source_len = tf.shape(memory)[0], tf.shape(memory)[1]
    max_length = _max_length(memory, max_length, options)
    prefix, prefix_lengths, limits, _ = _prefix(target_prefix, batch, max_length)
    memory_t, keys_t, mask_t = (_tile_beams(x, k) for x in (memory, projected_keys, mask))
    mask_b = tf.reshape(mask_t, [batch, k, source_len])
    init = _BeamState(
        t=tf.constant(0),
        prev_tokens=tf.fill([batch * k], tf.cast(start_id, tf.int32)),
        states=[_tile_beams(s, k) for s in states],
        # Only beam 0 is alive at first: k equal beams would make k copies of one hypothesis.
        log_probs=tf.tile(tf.constant([[0.0] + [NEG_INF] * (k - 1)]), [batch, 1]),
        finished=tf.zeros([batch, k], tf.bool),
        lengths=tf.zeros([batch, k], tf.int32),
        coverage=tf.zeros([batch, k, source_len], tf.float32),
        scores=tf.zeros([batch, k], tf.float32),
        tokens=tf.zeros([batch, k, 0], tf.int32),
        attention=tf.zeros([batch, k, 0, source_len], tf.float32),
        token_lps=tf.zeros([batch, k, 0], tf.float32),
    )

    def cond(s):
        more = s.t < (max_length if limits is None else tf.reduce_max(limits))
        return tf.logical_and(more, tf.logical_not(tf.reduce_all(s.finished)))

    def body(s):
        logits, new_states, weights = step_fn(s.prev_tokens, s.states, memory_t, keys_t, mask_t)
        vocab = tf.shape(logits)[-1]
        step_lp = tf.nn.log_softmax(tf.cast(logits, tf.float32))  # (batch * k, vocab)
        hypotheses = tf.reshape(s.tokens, [batch * k, s.t])
        step_lp = tf.reshape(_choice_lp(step_lp, hypotheses, s.t, options), [batch, k, vocab])
        if prefix is not None:
            step_lp = _force_prefix(step_lp, prefix, prefix_lengths, s.t)
        weights = tf.reshape(tf.cast(weights, tf.float32), [batch, k, source_len])
        total, cand_len, cand_cov, cand_fin, weights = _expand_candidates(
            step_lp, s.finished, s.log_probs, s.lengths, s.coverage, weights, end_id
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
        scores, index = tf.math.top_k(tf.reshape(cand_score, [batch, k * vocab]), k=k)
        parents, token = index // vocab, index % vocab  # (batch, beam)
        held = None if limits is None else (s.t >= limits)[:, None]  # (batch, 1)
        if held is not None:  # sentences past their own limit keep their beams
            parents = tf.where(held, tf.range(k)[None], parents)
        parent_finished = _gather_beams(s.finished, parents)
        if held is not None:
            parent_finished = tf.logical_or(parent_finished, held)
        token = tf.where(parent_finished, 0, token)
        chosen_lp = tf.gather(tf.reshape(step_lp, [batch, k * vocab]), index, batch_dims=1)
        chosen_lp = tf.where(parent_finished, 0.0, chosen_lp)  # (batch, beam)
        step_attn = _gather_beams(weights, parents)[:, :, None, :]  # (batch, k, 1, source_len)
        state = dict(
            log_probs=tf.gather(tf.reshape(total, [batch, k * vocab]), index, batch_dims=1),
            finished=tf.logical_or(parent_finished, tf.equal(token, end_id)),
            lengths=_gather_beams(cand_len, parents),
            coverage=_gather_beams(cand_cov, parents),
            scores=scores,
        )
        if held is not None:
            step_attn = tf.where(held[..., None, None], 0.0, step_attn)
            state = {
                key: tf.where(tf.reshape(held, [-1] + [1] * (new.shape.rank - 1)), old, new)
                for key, new in state.items()
                for old in [getattr(s, key)]
            }
        return (
            _BeamState(
                t=s.t + 1,
                prev_tokens=tf.reshape(token, [-1]),
                states=[
                    tf.cast(_flat_gather(new, parents, k), ref.dtype)
                    for new, ref in zip(new_states, s.states, strict=True)
                ],
                **state,
                tokens=tf.concat([_gather_beams(s.tokens, parents), token[..., None]], axis=-1),
                attention=tf.concat([_gather_beams(s.attention, parents), step_attn], axis=2),
                token_lps=tf.concat(
                    [_gather_beams(s.token_lps, parents), chosen_lp[..., None]], axis=-1
                ),
            ),
        )

    # The hypotheses grow by one step per iteration; everything else keeps its shape.
    invariants = tf.nest.map_structure(_invariant, init)._replace(
        tokens=_invariant(None, None, k, None),
        attention=_invariant(None, None, k, None, None),
        token_lps=_invariant(None, None, k, None),
    )
    # One loop variable, the state, so that `cond` and `body` take it whole, by name.
    (out,) = tf.while_loop(cond, body, (init,), shape_invariants=(invariants,))
    return {
        "tokens": out.tokens[:, 0],
        "scores": out.scores[:, 0],
        "attention": out.attention[:, 0],
        "beam_tokens": out.tokens,
        "beam_scores": out.scores,
        "nbest_tokens": out.tokens[:, : options.n_best],
        "nbest_scores": out.scores[:, : options.n_best],
        "nbest_attention": out.attention[:, : options.n_best],
        "token_log_probs": out.token_lps[:, 0],  # each token's own log-prob, 0 after [END]
        "nbest_token_log_probs": out.token_lps[:, : options.n_best],
    }
