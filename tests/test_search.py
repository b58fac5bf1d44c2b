"""Greedy and beam search on hand-built step functions and on a small random model."""

import numpy as np
import pytest
import tensorflow as tf
from search_tables import END, PAD, START, VOCAB, A, B, C, trap_table

from seq2seq_attn.interface import BadOption
from seq2seq_attn.model import Seq2SeqAttention
from seq2seq_attn.search import beam_search, greedy_search, length_penalty_factor


def table_step_fn(table):
    """A decoder whose next-token distribution depends only on the previous token."""
    log_table = tf.math.log(tf.constant(table, tf.float32) + 1e-12)  # (vocab, vocab)

    def step_fn(prev, states, memory, keys, mask):
        weights = tf.cast(mask, tf.float32) / tf.reduce_sum(tf.cast(mask, tf.float32), -1, True)
        return tf.gather(log_table, prev), states, weights

    return step_fn


def run(search, table, batch=1, **kwargs):
    memory = tf.zeros([batch, 3, 2])
    mask = tf.ones([batch, 3], tf.bool)
    states = [tf.zeros([batch, 1])]
    return search(table_step_fn(table), states, memory, None, mask, START, END, **kwargs)


def test_greedy_is_suboptimal_and_beam_finds_better():
    greedy = run(greedy_search, trap_table(), max_length=6)
    beam = run(beam_search, trap_table(), beam_width=2, max_length=6)
    assert greedy["tokens"].numpy().tolist() == [[A, C, END]]
    assert beam["tokens"].numpy().tolist()[0][:2] == [B, END]
    np.testing.assert_allclose(beam["scores"][0], np.log(0.36), atol=1e-5)
    np.testing.assert_allclose(greedy["scores"][0], np.log(0.6 * 0.4 * 1.0), atol=1e-5)
    assert beam["scores"][0] > greedy["scores"][0]


def test_beam_hypotheses_sorted_and_padded_after_end():
    beam = run(beam_search, trap_table(), beam_width=3, max_length=6)
    scores = beam["beam_scores"].numpy()[0]
    assert np.all(np.diff(scores) <= 0)
    # Three best full sequences: B END (.36), A C END (.24), A END (.18); A B END is .162.
    np.testing.assert_allclose(scores, np.log([0.36, 0.24, 0.18]), atol=1e-5)
    tokens = beam["beam_tokens"].numpy()[0]
    assert tokens[0].tolist() == [B, END, PAD]
    assert tokens[1].tolist() == [A, C, END]
    assert tokens[2].tolist() == [A, END, PAD]


def test_length_penalty_changes_ranking():
    # With a strong length penalty, longer hypotheses are favoured: A C END beats B END.
    beam = run(beam_search, trap_table(), beam_width=3, max_length=6, length_penalty=5.0)
    lp = length_penalty_factor(np.array([2, 3]), 5.0).numpy()
    expected_b = np.log(0.36) / lp[0]
    expected_ac = np.log(0.24) / lp[1]
    assert expected_ac > expected_b
    assert beam["tokens"].numpy()[0].tolist() == [A, C, END]
    np.testing.assert_allclose(beam["scores"][0], expected_ac, atol=1e-5)


def test_max_length_stops_unfinished():
    t = np.zeros((VOCAB, VOCAB))
    t[:, A] = 1.0  # never ends
    out = run(greedy_search, t, batch=2, max_length=4)
    assert out["tokens"].numpy().tolist() == [[A] * 4] * 2
    beam = run(beam_search, t, batch=2, beam_width=2, max_length=4)
    assert beam["tokens"].shape == (2, 4)


@pytest.fixture(scope="module")
def model():
    m = Seq2SeqAttention(12, 15, embedding_dim=8, units=16, attention="bahdanau")
    m((np.ones((1, 3), "int32"), np.ones((1, 2), "int32")))
    rng = np.random.default_rng(0)
    m.set_weights([rng.normal(scale=0.8, size=w.shape) for w in m.get_weights()])
    return m


SOURCE = np.array([[4, 5, 6, 7, 8], [9, 10, 4, 0, 0], [11, 0, 0, 0, 0]], "int32")


def test_beam_width_one_equals_greedy(model):
    greedy = model.generate(SOURCE, max_length=12)
    beam = model.generate(SOURCE, max_length=12, beam_width=1)
    np.testing.assert_array_equal(greedy["tokens"], beam["tokens"])
    # beam_width=1 of the beam implementation itself (not the greedy shortcut)
    memory, keys, mask, states = model.encode(SOURCE)
    direct = beam_search(model.decode_step, states, memory, keys, mask, 2, 3, 1, max_length=12)
    np.testing.assert_array_equal(greedy["tokens"], direct["tokens"])
    np.testing.assert_allclose(greedy["scores"], direct["scores"], atol=1e-5)
    np.testing.assert_allclose(greedy["attention"], direct["attention"], atol=1e-6)


def test_greedy_tokens_are_argmax_of_teacher_forced_logits(model):
    out = model.generate(SOURCE, max_length=12)
    tokens = out["tokens"].numpy()
    target_in = np.concatenate([np.full((3, 1), 2), tokens[:, :-1]], axis=1)
    logits = model((SOURCE, target_in)).numpy()
    for row, toks in enumerate(tokens):
        n = list(toks).index(3) + 1 if 3 in toks else len(toks)
        np.testing.assert_array_equal(logits[row, :n].argmax(-1), toks[:n])
        assert np.all(toks[n:] == 0)
        assert np.all(out["attention"].numpy()[row, n:] == 0.0)
    assert np.all(out["attention"].numpy()[:, :, 3:][1:2] == 0.0)  # padded source positions


@pytest.mark.parametrize("beam_width", [1, 3])
def test_generate_traces_with_dynamic_shapes(model, beam_width):
    fn = tf.function(
        lambda s: model.generate(s, max_length=8, beam_width=beam_width),
        input_signature=[tf.TensorSpec([None, None], tf.int32)],
        autograph=False,  # as the package traces it (tests/test_tracing.py)
    )
    full = fn(tf.constant(SOURCE))
    eager = model.generate(SOURCE, max_length=8, beam_width=beam_width)
    np.testing.assert_array_equal(full["tokens"], eager["tokens"])
    short = fn(tf.constant(SOURCE[1:, :3]))  # other batch and length, same trace
    assert short["attention"].shape[0] == 2 and short["attention"].shape[2] == 3
    assert len(fn.get_concrete_function().graph.inputs) >= 1


def test_batch_rows_are_independent(model):
    together = model.generate(SOURCE, max_length=10, beam_width=3)
    for row in range(3):
        n = int((SOURCE[row] != 0).sum())
        alone = model.generate(SOURCE[row : row + 1, :n], max_length=10, beam_width=3)
        length = alone["tokens"].shape[1]
        np.testing.assert_array_equal(together["tokens"][row, :length], alone["tokens"][0])
        np.testing.assert_allclose(together["scores"][row], alone["scores"][0], atol=1e-4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(beam_width=0), "beam_width=0"),
        (dict(beam_width=16), "beam_width=16"),
        (dict(length_penalty=-1.0), "length_penalty=-1.0"),
        (dict(coverage_penalty=-0.5), "coverage_penalty=-0.5"),
    ],
)
def test_generate_bad_arguments(model, kwargs, match):
    with pytest.raises(BadOption, match=match):  # a ValueError
        model.generate(SOURCE, **kwargs)


def test_coverage_penalty_favours_covering_the_source():
    # The table step attends uniformly over 3 source positions, so a 2-token hypothesis
    # covers each position 2/3 and pays 3 * log(2/3); a 3-token one covers fully and pays 0.
    plain = run(beam_search, trap_table(), beam_width=3, max_length=6)
    covered = run(beam_search, trap_table(), beam_width=3, max_length=6, coverage_penalty=1.0)
    assert plain["tokens"].numpy()[0].tolist() == [B, END, PAD]
    assert covered["tokens"].numpy()[0].tolist() == [A, C, END]
    scores = covered["beam_scores"].numpy()[0]
    np.testing.assert_allclose(scores[0], np.log(0.24), atol=1e-5)
    # A B END (.162, full coverage) now beats B END (log .36 + 3 log(2/3) = -2.24).
    np.testing.assert_allclose(scores[1], np.log(0.6 * 0.3 * 0.9), atol=1e-5)
    np.testing.assert_allclose(scores[2], np.log(0.36) + 3 * np.log(2 / 3), atol=1e-5)
    greedy = run(greedy_search, trap_table(), max_length=6, coverage_penalty=1.0)
    np.testing.assert_allclose(greedy["scores"][0], np.log(0.24), atol=1e-5)


# --- options: no-repeat-ngram, sampling, n-best, the length rule -----------------------------

from seq2seq_attn import search  # noqa: E402
from seq2seq_attn.inference import search as host_search  # noqa: E402

DRAWS = 20_000  # sampled-token frequencies over this many draws ...
FREQ_ATOL = 0.015  # ... are within this of the probabilities (about 4 standard deviations)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_banned_ngram_mask_matches_numpy_on_a_fixed_buffer(n):
    """The graph's fixed-size version (the greedy loop's buffer, filled up to `length`)
    against the host's sliding windows over exactly the filled columns."""
    rng = np.random.default_rng(n)
    tokens = rng.integers(0, 4, size=(6, 12)).astype(np.int32)  # few values: many repeats
    for length in range(0, 13):
        got = search.banned_ngram_mask(tf.constant(tokens), length, n, 5).numpy()
        expected = host_search.banned_ngram_mask(tokens[:, :length], n, 5)
        np.testing.assert_array_equal(got, expected, err_msg=f"length {length}")


def loop_table():
    """START: A .9, END .1; A: B .6, C .3, END .1; B: A .6, END .4; C: END 1."""
    t = np.zeros((VOCAB, VOCAB))
    t[START, [A, END]] = [0.9, 0.1]
    t[A, [B, C, END]] = [0.6, 0.3, 0.1]
    t[B, [A, END]] = [0.6, 0.4]
    t[C, END] = t[END, END] = t[PAD, END] = 1.0
    return t


def test_no_repeat_ngram_in_the_graph_by_hand():
    out = run(greedy_search, loop_table(), max_length=7, no_repeat_ngram=2)
    assert out["tokens"].numpy().tolist() == [[A, B, A, C, END]]
    np.testing.assert_allclose(out["scores"], [np.log(0.9 * 0.6 * 0.6 * 0.3)], atol=1e-5)
    beam = run(beam_search, loop_table(), beam_width=3, n_best=3, max_length=9, no_repeat_ngram=2)
    expected = [[A, C, END, 0, 0], [A, B, END, 0, 0], [A, B, A, C, END]]
    assert beam["nbest_tokens"].numpy()[0, :, :5].tolist() == expected


def independent_filtered_probs(logits, top_k=None, top_p=None, temperature=1.0):
    """The distribution sampling must follow, in float64 with a full sort, token by token."""
    z = np.asarray(logits, np.float64) / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    keep, mass = np.zeros(len(z), bool), 0.0
    for rank, token in enumerate(np.argsort(-z, kind="stable")):
        if (top_k is not None and rank >= top_k) or (top_p is not None and mass >= top_p):
            break
        keep[token], mass = True, mass + p[token]
    q = np.where(keep, p, 0.0)
    return q / q.sum()


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(top_k=3),
        dict(top_k=5, temperature=0.6),
        dict(top_p=0.7),
        dict(top_p=0.95, temperature=1.7),
    ],
    ids=str,
)
def test_sampled_frequencies_follow_the_filtered_distribution(kwargs):
    """The graph's noise (one stateless draw per step) through its sampling kernel."""
    logits = np.random.default_rng(11).normal(scale=1.5, size=9).astype(np.float32)
    expected = independent_filtered_probs(logits, **kwargs)

    @tf.function(autograph=False)
    def draws():
        steps = tf.range(DRAWS)
        noise = tf.map_fn(
            lambda t: search.gumbel_noise(tf.constant(5, tf.int64), t, 9),
            steps,
            fn_output_signature=tf.float32,
        )  # (draws, vocab)
        return search.sample_tokens(tf.tile(logits[None], [DRAWS, 1]), noise, **kwargs)

    freq = np.bincount(draws().numpy(), minlength=9) / DRAWS
    assert (freq[expected == 0] == 0).all()
    assert np.abs(freq - expected).max() < FREQ_ATOL, (freq, expected)


def test_sampling_in_generate_is_reproducible_and_independent_of_batch_mates(model):
    kwargs = dict(max_length=10, top_p=0.95, temperature=1.3)
    together = model.generate(SOURCE, seed=21, **kwargs)["tokens"].numpy()
    again = model.generate(SOURCE, seed=21, **kwargs)["tokens"].numpy()
    np.testing.assert_array_equal(together, again)
    for row in range(3):
        n = int((SOURCE[row] != 0).sum())
        alone = model.generate(SOURCE[row : row + 1, :n], seed=21, **kwargs)["tokens"].numpy()
        np.testing.assert_array_equal(together[row, : alone.shape[1]], alone[0])
    others = [model.generate(SOURCE, seed=s, **kwargs)["tokens"].numpy() for s in (1, 2, 3)]
    assert any(o.shape != together.shape or (o != together).any() for o in others)
    greedy = model.generate(SOURCE, max_length=10)["tokens"].numpy()
    low = model.generate(SOURCE, seed=4, max_length=10, top_k=1)["tokens"].numpy()
    np.testing.assert_array_equal(low, greedy)  # top-1 sampling is greedy


def test_options_trace_with_dynamic_shapes(model):
    fn = tf.function(
        lambda s, seed: model.generate(s, no_repeat_ngram=2, top_k=4, seed=seed),
        input_signature=[tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([], tf.int64)],
        autograph=False,
    )
    full = fn(tf.constant(SOURCE), tf.constant(3, tf.int64))
    eager = model.generate(SOURCE, no_repeat_ngram=2, top_k=4, seed=3)
    np.testing.assert_array_equal(full["tokens"], eager["tokens"])
    assert full["tokens"].shape[1] <= 2 * 5 + 10  # the default length rule
    short = fn(tf.constant(SOURCE[1:, :3]), tf.constant(4, tf.int64))
    assert short["tokens"].shape[0] == 2 and short["tokens"].shape[1] <= 2 * 3 + 10
    beam = tf.function(
        lambda s: model.generate(s, beam_width=3, num_return_sequences=2, no_repeat_ngram=1),
        input_signature=[tf.TensorSpec([None, None], tf.int32)],
        autograph=False,
    )(tf.constant(SOURCE))
    assert beam["nbest_tokens"].shape[:2] == (3, 2)
    assert beam["nbest_attention"].shape[:2] == (3, 2)


def test_max_length_rule_in_the_graph():
    never_ends = np.zeros((VOCAB, VOCAB))
    never_ends[:, A] = 1.0
    for ratio, offset, length in [(1.5, 1, 5), (0.7, 2, 4), (2, 0, 6), (0, 0, 0)]:
        for fn, extra in [(greedy_search, {}), (beam_search, dict(beam_width=2))]:
            out = run(fn, never_ends, max_length_ratio=ratio, max_length_offset=offset, **extra)
            assert out["tokens"].shape == (1, length), (ratio, offset, fn)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(beam_width=3, num_return_sequences=4), "n_best=4"),
        (dict(num_return_sequences=2), "n_best=2"),
        (dict(no_repeat_ngram=0), "no_repeat_ngram=0"),
        (dict(top_p=1.5), "top_p=1.5"),
        (dict(top_p=0.0), "top_p=0.0"),
        (dict(top_k=3, beam_width=2), "beam_width=2"),
        (dict(temperature=0.5), "temperature=0.5"),
        (dict(max_length_offset=-2), "max_length_offset=-2"),
    ],
)
def test_generate_bad_option_values(model, kwargs, match):
    with pytest.raises(BadOption, match=match):  # a ValueError
        model.generate(SOURCE, **kwargs)
