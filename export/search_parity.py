"""Search-option parity: `model.generate` in the graph against the host search over a runtime.

The deterministic options (n-best lists, the max-length ratio and offset, no-repeat-ngram)
must give the same tokens, token for token, in `Seq2SeqAttention.generate` and in
`seq2seq_attn.inference.search` over an exported runtime's `encode`/`step` (what the
server runs); scores agree within `SCORE_ATOL`. Sampling uses another RNG on each side, so
the two sample differently; each must be reproducible (same seed, same tokens) and follow
the model: over `DRAWS` draws of the first step, every token's frequency is within
`FREQ_ATOL` of its probability under the filtered, renormalised distribution, and filtered
tokens never come out.

Example:
    >>> from seq2seq_attn.inference.runtime import OnnxModel  # doctest: +SKIP
    >>> result = validate_search(model, OnnxModel("export"), [source_ids])  # doctest: +SKIP
    >>> result["nbest4_agreement"]  # doctest: +SKIP
    1.0
"""

import numpy as np
import tensorflow as tf

from seq2seq_attn import search as graph_search
from seq2seq_attn.errors import ParityError
from seq2seq_attn.inference import search as host_search
from seq2seq_attn.interface import NEG_INF, DecodeOptions, trim_after_end

SCORE_ATOL = 1e-3  # step logits agree within 1e-4 (LOGITS_ATOL); scores sum over the steps
DRAWS = 10_000  # first-step draws per runtime ...
FREQ_ATOL = 0.02  # ... frequencies within this of the probabilities (4 standard deviations)
SAMPLE = dict(top_p=0.9, temperature=1.2)

# name -> (beam_width, options); every option of DecodeOptions but sampling
DETERMINISTIC_CASES = {
    "nbest4": (4, dict(n_best=4)),
    "ratio_offset": (1, dict(max_length_ratio=0.5, max_length_offset=2)),
    "no_repeat2": (1, dict(no_repeat_ngram=2)),
    "beam3_no_repeat1_nbest2": (3, dict(no_repeat_ngram=1, n_best=2, max_length_ratio=1.5)),
}


def _nbest_rows(out, end_id):
    """Per sentence: its n-best token lists, cut after [END]."""
    tokens = np.asarray(out["nbest_tokens"])  # (batch, n, length)
    return [[trim_after_end(h, end_id).tolist() for h in row] for row in tokens]


def check_options(model, runtime, source_ids, cases=None):
    """Agreement per case on one batch of source ids `(batch, source_length)`.

    Returns:
        dict: `<case>_agreement` (share of sentences whose whole n-best list agrees),
        `max_abs_score_diff` over the agreeing sentences, and up to 3 `mismatches`.
    """
    ids = np.asarray(source_ids, np.int32)
    result, diffs, mismatches = {}, [0.0], []
    for name, (beam_width, options) in (cases or DETERMINISTIC_CASES).items():
        options = dict(options)
        n_best = options.pop("n_best", None)
        graph = model.generate(ids, beam_width=beam_width, num_return_sequences=n_best, **options)
        host = runtime.decode(
            ids, model.start_id, model.end_id, beam_width=beam_width, n_best=n_best or 1, **options
        )
        got, expected = _nbest_rows(host, model.end_id), _nbest_rows(graph, model.end_id)
        same = [a == b for a, b in zip(got, expected, strict=True)]
        result[f"{name}_agreement"] = float(np.mean(same))
        graph_scores, host_scores = np.asarray(graph["nbest_scores"]), host["nbest_scores"]
        for i, ok in enumerate(same):
            if ok:
                diffs.append(float(np.abs(host_scores[i] - graph_scores[i]).max()))
            else:
                mismatches.append([name, i, got[i], expected[i]])
    result["max_abs_score_diff"] = max(diffs)
    result["mismatches"] = mismatches[:3]
    return result


def _expected_probs(logits, options):
    """The filtered, renormalised distribution of one logits row, float64."""
    kept = host_search.filter_logits(logits[None], **options)[0] > NEG_INF / 2
    z = np.asarray(logits, np.float64) / options.get("temperature", 1.0)
    p = np.where(kept, np.exp(z - z.max()), 0.0)
    return p / p.sum()


def _host_draws(logits, draws, options, seed):
    rng = np.random.default_rng(seed)
    tokens = []
    for _ in range(0, draws, 1000):  # (chunk, vocab) of noise at a time
        noise = np.stack([host_search.gumbel_noise(rng, len(logits)) for _row in range(1000)])
        tokens.append(host_search.sample_tokens(np.tile(logits, (1000, 1)), noise, **options))
    return np.concatenate(tokens)[:draws]


def _graph_draws(logits, draws, options, seed, chunk=1000):
    """Draws `0 .. draws-1` of the graph sampler, `chunk` at a time: draw t's noise
    depends only on (seed, t), so the chunks are the same draws as one call, and the
    `(draws, vocab)` noise, tiled logits and top-p sort are never all held at once
    (about 2 GB at 10,000 draws of 8,000 pieces)."""

    @tf.function(autograph=False)
    def run(first, last):
        noise = tf.map_fn(
            lambda t: graph_search.gumbel_noise(tf.constant(seed, tf.int64), t, len(logits)),
            tf.range(first, last),
            fn_output_signature=tf.float32,
        )  # (last - first, vocab)
        rows = tf.shape(noise)[0]
        return graph_search.sample_tokens(tf.tile(logits[None], [rows, 1]), noise, **options)

    return np.concatenate(
        [
            run(tf.constant(first), tf.constant(min(first + chunk, draws))).numpy()
            for first in range(0, draws, chunk)
        ]
    )


def _first_step_logits(encode, step, ids, start_id):
    memory, keys, mask, states = encode(ids[:1])
    logits, _, _ = step(np.full([1], start_id, np.int32), states, memory, keys, mask)
    return np.asarray(logits, np.float32)[0]


def check_sampling(model, runtime, source_ids, seed=0, draws=DRAWS, options=None):
    """Reproducibility per runtime and first-step frequencies against the model.

    Returns:
        dict: `graph_reproducible`, `host_reproducible` (1.0 or 0.0) and
        `max_abs_freq_diff_graph`, `max_abs_freq_diff_host`, `filtered_draws` (draws of
        tokens the filter removed; must be 0).
    """
    options = dict(options or SAMPLE)
    ids = np.asarray(source_ids, np.int32)
    graph = [model.generate(ids, seed=seed, max_length=12, **options)["tokens"] for _ in (0, 1)]
    host = [
        runtime.decode(ids, model.start_id, model.end_id, seed=seed, max_length=12, **options)
        for _ in (0, 1)
    ]
    result = {
        "graph_reproducible": float(np.array_equal(graph[0], graph[1])),
        "host_reproducible": float(np.array_equal(host[0]["tokens"], host[1]["tokens"])),
        "filtered_draws": 0,
    }
    start = model.start_id
    for side, logits, sampler in [
        ("graph", _first_step_logits(model.encode, model.decode_step, ids, start), _graph_draws),
        ("host", _first_step_logits(runtime.encode, runtime.step, ids, start), _host_draws),
    ]:
        expected = _expected_probs(logits, options)
        freq = np.bincount(sampler(logits, draws, options, seed), minlength=len(logits)) / draws
        result[f"max_abs_freq_diff_{side}"] = float(np.abs(freq - expected).max())
        result["filtered_draws"] += int(np.sum(freq[expected == 0] > 0))
    return result


def search_failures(result):
    """The parity rules as messages; empty when all hold."""
    failures = [
        f"search options: {key} {value:.3f} < 1"
        for key, value in result.items()
        if key.endswith(("agreement", "reproducible")) and value < 1.0
    ]
    if result.get("max_abs_score_diff", 0.0) > SCORE_ATOL:
        failures.append(f"search options: max |score diff| {result['max_abs_score_diff']:.2g}")
    for key in ("max_abs_freq_diff_graph", "max_abs_freq_diff_host"):
        if result.get(key, 0.0) > FREQ_ATOL:
            failures.append(f"sampling: {key} {result[key]:.3f} > {FREQ_ATOL}")
    if result.get("filtered_draws"):
        failures.append(f"sampling: {result['filtered_draws']} filtered tokens were drawn")
    if result.get("mismatches"):
        name, row, got, expected = result["mismatches"][0]
        failures.append(f"search options: {name} sentence {row}: host {got}, graph {expected}")
    return failures


def validate_search(model, runtime, source_batches, cases=None, seed=0):
    """`check_options` over every batch plus `check_sampling` on the first; ParityError on
    any failure, naming all of them.

    Args:
        model: the Keras `Seq2SeqAttention`.
        runtime: anything with `encode`, `step` and `decode` (`OnnxModel`, `LiteRTModel`).
        source_batches: list of int32 `(batch, source_length)` source id arrays.
        cases: name -> (beam_width, options); default `DETERMINISTIC_CASES`.

    Returns:
        dict: the agreements (share of all sentences), `max_abs_score_diff`, the sampling
        figures and up to 3 `mismatches`.

    Raises:
        BadOption: a case's options are not valid (before anything is decoded).
        ParityError: the two sides disagree.
    """
    vocab = model.target_vocab_size
    for beam_width, options in [*(cases or DETERMINISTIC_CASES).values(), (1, SAMPLE)]:
        DecodeOptions(beam_width=beam_width, **options).check(max_beam_width=vocab)
    per_batch = [check_options(model, runtime, ids, cases) for ids in source_batches]
    sizes = [len(ids) for ids in source_batches]
    result = {}
    for key in per_batch[0]:
        values = [r[key] for r in per_batch]
        if key.endswith("agreement"):
            result[key] = float(np.dot(values, sizes) / sum(sizes))
        elif key == "mismatches":
            result[key] = [m for batch in values for m in batch][:3]
        else:
            result[key] = max(values)
    result.update(check_sampling(model, runtime, source_batches[0], seed))
    failures = search_failures(result)
    if failures:
        raise ParityError("; ".join(failures))
    return result
