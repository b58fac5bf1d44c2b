"""Host-side NumPy search: hand-built tables, and token-for-token equality with the TF search."""

import subprocess
import sys

import numpy as np
import pytest
from search_tables import END, PAD, START, VOCAB, A, B, C, trap_table

from seq2seq_attn.inference.search import beam_search, greedy_search, log_softmax

SCORE_ATOL = 1e-5  # scores and attention against hand values and against TF


def table_step_fn(table):
    """A decoder whose next-token distribution depends only on the previous token.

    After [START] row b uses `memory[b, 0]` when that is non-zero (a per-sentence first
    step), else `table[START]`. Attention is uniform over the unmasked source positions.
    """
    log_table = np.log(np.asarray(table, np.float32) + 1e-12)  # (vocab, vocab)

    def step_fn(prev, states, memory, keys, mask):
        assert prev.dtype == np.int32 and prev.shape == (memory.shape[0],)
        logits = log_table[prev]  # (n, vocab)
        first = memory[:, 0, :].sum(-1) > 0
        start_rows = (prev == START) & first
        logits[start_rows] = np.log(memory[start_rows, 0, :] + 1e-12)
        weights = mask / mask.sum(-1, keepdims=True)
        return logits, [s + 1 for s in states], weights

    return step_fn


def tie_table():
    """START: A .5, B .5; A and B: END .5, C .5; C: END 1. Every step has exact ties."""
    t = np.zeros((VOCAB, VOCAB))
    t[START, [A, B]] = t[A, [END, C]] = t[B, [END, C]] = 0.5
    t[C, END] = t[END, END] = t[PAD, END] = 1.0
    return t


def run(search, table, batch=1, mask=None, first=None, to_tf=False, **kwargs):
    """Decodes `batch` sentences of 3 source positions with the table decoder.

    `first` is the per-sentence START distribution; with `to_tf` the inputs and the step
    are wrapped for the TF search (the loop runs eagerly, the table step stays NumPy).
    """
    memory = np.zeros([batch, 3, VOCAB], np.float32)
    if first is not None:
        memory[:, 0, :] = first
    mask = np.ones([batch, 3], bool) if mask is None else np.asarray(mask, bool)
    states = [np.zeros([batch, 1], np.float32)]
    step_fn = table_step_fn(table)
    if to_tf:
        import tensorflow as tf

        numpy_fn = step_fn

        def step_fn(prev, states, memory, keys, mask):
            states = [s.numpy() for s in states]
            out = numpy_fn(prev.numpy(), states, memory.numpy(), None, mask.numpy())
            return tf.constant(out[0]), [tf.constant(s) for s in out[1]], tf.constant(out[2])

        memory, mask, states = tf.constant(memory), tf.constant(mask), [tf.constant(states[0])]
    return search(step_fn, states, memory, None, mask, START, END, **kwargs)


def lp(length, alpha):
    """GNMT length penalty, computed by hand for the goldens."""
    return ((5.0 + length) / 6.0) ** alpha


def test_greedy_trap_table():
    out = run(greedy_search, trap_table(), max_length=6)
    assert out["tokens"].dtype == np.int32 and out["scores"].dtype == np.float32
    assert out["tokens"].tolist() == [[A, C, END]]
    np.testing.assert_allclose(out["scores"], [np.log(0.6 * 0.4 * 1.0)], atol=SCORE_ATOL)
    assert out["attention"].dtype == np.float32
    np.testing.assert_allclose(out["attention"], np.full((1, 3, 3), 1 / 3), atol=1e-7)


def test_beam_two_escapes_the_trap():
    out = run(beam_search, trap_table(), beam_width=2, max_length=6)
    # step 1 keeps B END (.36) and A C (.24); step 2 ends A C; all finished after 3 steps
    assert out["beam_tokens"].tolist() == [[[B, END, PAD], [A, C, END]]]
    np.testing.assert_allclose(out["beam_scores"], [np.log([0.36, 0.24])], atol=SCORE_ATOL)
    assert out["tokens"].tolist() == [[B, END, PAD]]
    np.testing.assert_allclose(out["scores"], [np.log(0.36)], atol=SCORE_ATOL)
    # the [END]-padding step has a zero attention row
    np.testing.assert_allclose(out["attention"][0], [[1 / 3] * 3, [1 / 3] * 3, [0, 0, 0]])


def test_token_log_probs_are_each_chosen_tokens_own():
    # greedy A C END: .6, .4, 1; beam 2 best B END then padding: .4, .9, 0; the n-best
    # second A C END; with no penalty they sum to the score
    t = trap_table()
    greedy = run(greedy_search, t, max_length=6)
    beam = run(beam_search, t, beam_width=2, n_best=2, max_length=6)
    expected = {
        "greedy": np.log([[t[START, A], t[A, C], t[C, END]]]),
        "beam": np.log([[t[START, B], t[B, END], 1.0]]),
        "beam 2nd": np.log([[t[START, A], t[A, C], t[C, END]]]),
    }
    got = {
        "greedy": greedy["token_log_probs"],
        "beam": beam["token_log_probs"],
        "beam 2nd": beam["nbest_token_log_probs"][:, 1],
    }
    for name, lps in got.items():
        assert lps.dtype == np.float32, name
        np.testing.assert_allclose(lps, expected[name], atol=SCORE_ATOL, err_msg=name)
    np.testing.assert_array_equal(greedy["nbest_token_log_probs"][:, 0], greedy["token_log_probs"])
    np.testing.assert_allclose(beam["nbest_token_log_probs"].sum(-1), beam["nbest_scores"], 1e-6)


def test_beam_three_sorted_with_ties_to_the_lower_index():
    out = run(beam_search, trap_table(), beam_width=3, max_length=6)
    # A END and A B tie at .18 after step 1; top_k keeps the lower token id (END=3 < B=5)
    assert out["beam_tokens"][0].tolist() == [[B, END, PAD], [A, C, END], [A, END, PAD]]
    scores = out["beam_scores"][0]
    np.testing.assert_allclose(scores, np.log([0.36, 0.24, 0.18]), atol=SCORE_ATOL)
    assert np.all(np.diff(scores) <= 0)


def test_exact_ties_across_beams_go_to_the_lower_flat_index():
    t = tie_table()
    greedy = run(greedy_search, t, max_length=6)
    assert greedy["tokens"].tolist() == [[A, END]]  # first maximum at both steps
    beam = run(beam_search, t, beam_width=2, max_length=6)
    # four candidates at .25 after step 1; beam 0 (A) wins, then END before C
    assert beam["beam_tokens"][0].tolist() == [[A, END, PAD], [A, C, END]]
    np.testing.assert_allclose(beam["beam_scores"][0], np.log([0.25, 0.25]), atol=SCORE_ATOL)


def test_length_penalty_changes_ranking():
    beam = run(beam_search, trap_table(), beam_width=3, max_length=6, length_penalty=5.0)
    # normalised: A C END -0.339, B END -0.473, A END -0.793 (A B END was dropped at step 1)
    expected = [np.log(0.24) / lp(3, 5.0), np.log(0.36) / lp(2, 5.0), np.log(0.18) / lp(2, 5.0)]
    assert beam["beam_tokens"][0].tolist() == [[A, C, END], [B, END, PAD], [A, END, PAD]]
    np.testing.assert_allclose(beam["beam_scores"][0], expected, atol=SCORE_ATOL)
    greedy = run(greedy_search, trap_table(), max_length=6, length_penalty=0.5)
    np.testing.assert_allclose(greedy["scores"], [np.log(0.24) / lp(3, 0.5)], atol=SCORE_ATOL)


def test_coverage_penalty_favours_covering_the_source():
    # Uniform attention over 3 positions: a 2-token hypothesis covers each 2/3 and pays
    # 3 * log(2/3); a 3-token one covers fully and pays 0.
    out = run(beam_search, trap_table(), beam_width=3, max_length=6, coverage_penalty=1.0)
    assert out["beam_tokens"][0].tolist() == [[A, C, END], [A, B, END], [B, END, PAD]]
    expected = [np.log(0.24), np.log(0.6 * 0.3 * 0.9), np.log(0.36) + 3 * np.log(2 / 3)]
    np.testing.assert_allclose(out["beam_scores"][0], expected, atol=SCORE_ATOL)


def test_coverage_penalty_skips_masked_positions_and_unfinished_hypotheses():
    first = np.eye(VOCAB)[END]  # the sentence ends at once: one step of weight 1/2 on 2 positions
    out = run(greedy_search, trap_table(), mask=[[1, 1, 0]], first=first, coverage_penalty=0.5)
    assert out["tokens"].tolist() == [[END]]
    np.testing.assert_allclose(out["scores"], [0.5 * 2 * np.log(0.5)], atol=SCORE_ATOL)
    never_ends = np.zeros((VOCAB, VOCAB))
    never_ends[:, A] = 1.0
    for search, kwargs in [(greedy_search, {}), (beam_search, {"beam_width": 2})]:
        out = run(search, never_ends, max_length=2, coverage_penalty=1.0, **kwargs)
        assert out["tokens"].tolist() == [[A, A]]
        np.testing.assert_allclose(out["scores"], [0.0], atol=SCORE_ATOL)  # no 3 * log(2/3)


def test_tokens_after_end_are_padding_in_a_mixed_batch():
    first = np.stack([trap_table()[START], np.eye(VOCAB)[END]])  # row 1 ends at once
    cases = [
        (greedy_search, {}, [[A, C, END], [END, PAD, PAD]]),
        (beam_search, {"beam_width": 2}, [[B, END, PAD], [END, PAD, PAD]]),
    ]
    for search, kwargs, expected in cases:
        out = run(search, trap_table(), batch=2, first=first, max_length=6, **kwargs)
        assert out["tokens"].tolist() == expected
        np.testing.assert_allclose(out["attention"][1, 1:], 0.0)
        np.testing.assert_allclose(out["scores"][1], 0.0, atol=SCORE_ATOL)


def test_max_length_stops_unfinished():
    t = np.zeros((VOCAB, VOCAB))
    t[:, A] = 1.0  # never ends
    out = run(greedy_search, t, batch=2, max_length=4)
    assert out["tokens"].tolist() == [[A] * 4] * 2
    beam = run(beam_search, t, batch=2, beam_width=2, max_length=4)
    assert beam["tokens"].tolist() == [[A] * 4] * 2
    assert beam["beam_tokens"].shape == (2, 2, 4) and beam["attention"].shape == (2, 4, 3)
    default = run(greedy_search, t)  # 2 * source_length + 10
    assert default["tokens"].shape == (1, 16)
    empty = run(beam_search, t, beam_width=2, max_length=0)
    assert empty["tokens"].shape == (1, 0) and empty["attention"].shape == (1, 0, 3)


def test_beam_step_sees_inputs_repeated_per_beam():
    memory = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    keys, mask = memory + 100, np.array([[1, 1, 1], [1, 1, 0]], bool)
    states = [np.array([[1.0], [2.0]], np.float32), np.array([[3.0], [4.0]], np.float32)]
    seen = []

    def step_fn(prev, step_states, step_memory, step_keys, step_mask):
        seen.append((prev, step_states, step_memory, step_keys, step_mask))
        logits = np.zeros([6, VOCAB], np.float32)
        logits[:, END] = 1.0
        return logits, step_states, step_mask / step_mask.sum(-1, keepdims=True)

    beam_search(step_fn, states, memory, keys, mask, START, END, beam_width=3, max_length=2)
    assert len(seen) == 2
    prev, step_states, step_memory, step_keys, step_mask = seen[0]
    assert prev.tolist() == [START] * 6 and prev.dtype == np.int32
    np.testing.assert_array_equal(step_memory, memory[[0, 0, 0, 1, 1, 1]])
    np.testing.assert_array_equal(step_keys, keys[[0, 0, 0, 1, 1, 1]])
    np.testing.assert_array_equal(step_mask, mask[[0, 0, 0, 1, 1, 1]])
    np.testing.assert_array_equal(step_states[1], [[3.0]] * 3 + [[4.0]] * 3)
    # step 2: beam 0 ended (fed 0), beams 1 and 2 continue tokens 0 and 1 (ties: lowest first)
    assert seen[1][0].tolist() == [END, 0, 1] * 2


def test_beam_width_one_equals_greedy_on_the_table():
    greedy = run(greedy_search, trap_table(), max_length=6, length_penalty=0.7)
    beam = run(beam_search, trap_table(), beam_width=1, max_length=6, length_penalty=0.7)
    np.testing.assert_array_equal(greedy["tokens"], beam["tokens"])
    np.testing.assert_allclose(greedy["scores"], beam["scores"], atol=SCORE_ATOL)
    np.testing.assert_allclose(greedy["attention"], beam["attention"], atol=SCORE_ATOL)


@pytest.mark.parametrize(
    "search, kwargs, match",
    [
        (beam_search, dict(beam_width=0), "beam_width=0"),
        (
            beam_search,
            dict(beam_width=8),
            r"at most \d+ \(the widest beam here\), received: beam_width=8",
        ),
        (beam_search, dict(beam_width=2.0), "beam_width=2.0"),
        (beam_search, dict(beam_width=2, length_penalty=-1.0), "length_penalty=-1.0"),
        (greedy_search, dict(length_penalty=-1.0), "length_penalty=-1.0"),
        (greedy_search, dict(coverage_penalty=-0.5), "coverage_penalty=-0.5"),
        (beam_search, dict(beam_width=2, coverage_penalty=-0.5), "coverage_penalty=-0.5"),
        (greedy_search, dict(max_length=-1), "max_length=-1"),
    ],
)
def test_bad_arguments(search, kwargs, match):
    from seq2seq_attn.interface import BadOption

    with pytest.raises(BadOption, match=match):
        run(search, trap_table(), **kwargs)


def test_module_does_not_import_tensorflow():
    code = "import seq2seq_attn.inference.search, sys; assert 'tensorflow' not in sys.modules, 'tf'"
    code += "; assert 'keras' not in sys.modules, 'keras'"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- equivalence with the in-graph TensorFlow search -------------------------------------

SOURCE = np.array([[4, 5, 6, 7, 8], [9, 10, 4, 0, 0], [11, 0, 0, 0, 0], [7, 7, 5, 11, 0]], "int32")


def make_model(end_bias=4.0, **kwargs):
    """A small random model; `end_bias` on the [END] logit makes hypotheses end at 1 to 8 tokens."""
    from seq2seq_attn.model import Seq2SeqAttention

    m = Seq2SeqAttention(12, 15, embedding_dim=8, units=16, **kwargs)
    m((np.ones((1, 3), "int32"), np.ones((1, 2), "int32")))
    rng = np.random.default_rng(0)
    m.set_weights([rng.normal(scale=0.8, size=w.shape) for w in m.get_weights()])
    (output_bias,) = [w for w in m.weights if w.path.endswith("decoder_cell/output/bias")]
    output_bias.assign(output_bias.numpy() + end_bias * np.eye(15)[m.end_id])
    return m


@pytest.fixture(
    scope="module",
    params=[
        dict(attention="bahdanau"),
        dict(attention="luong", rnn="lstm", input_feeding=True),
    ],
    ids=["bahdanau-gru", "luong-lstm-feeding"],
)
def model(request):
    return make_model(**request.param)


def numpy_step(model):
    """`model.decode_step` behind NumPy inputs and outputs, as an exported graph would be."""
    import tensorflow as tf

    def step_fn(prev, states, memory, keys, mask):
        assert all(isinstance(x, np.ndarray) for x in [prev, memory, mask, *states])
        keys = None if keys is None else tf.constant(keys)
        logits, new_states, weights = model.decode_step(
            tf.constant(prev),
            [tf.constant(s) for s in states],
            tf.constant(memory),
            keys,
            tf.constant(mask),
        )
        return logits.numpy(), [s.numpy() for s in new_states], weights.numpy()

    return step_fn


def host_decode(model, source, beam_width, **kwargs):
    memory, keys, mask, states = model.encode(source)
    args = (
        numpy_step(model),
        [s.numpy() for s in states],
        memory.numpy(),
        None if keys is None else keys.numpy(),
        mask.numpy(),
        model.start_id,
        model.end_id,
    )
    if beam_width == 1:
        return greedy_search(*args, **kwargs)
    return beam_search(*args, beam_width=beam_width, **kwargs)


def assert_same(tf_out, np_out):
    assert set(np_out) == set(tf_out)  # token_log_probs included: both searches return them
    for key, value in tf_out.items():
        value = value.numpy()
        assert np_out[key].dtype == value.dtype, key
        if "tokens" in key:
            np.testing.assert_array_equal(np_out[key], value, err_msg=key)
        else:
            np.testing.assert_allclose(np_out[key], value, atol=SCORE_ATOL, err_msg=key)


@pytest.mark.parametrize("beam_width", [1, 2, 4])
@pytest.mark.parametrize(
    "penalties",
    [dict(), dict(length_penalty=0.8, coverage_penalty=0.4)],
    ids=["plain", "penalties"],
)
def test_same_as_tensorflow(model, beam_width, penalties):
    kwargs = dict(max_length=12, **penalties)
    tf_out = model.generate(SOURCE, beam_width=beam_width, **kwargs)
    np_out = host_decode(model, SOURCE, beam_width, **kwargs)
    assert_same(tf_out, np_out)
    if not penalties:  # each token's own log-prob, summed, is the model's score
        total = np_out["token_log_probs"].sum(-1)
        np.testing.assert_allclose(total, tf_out["scores"].numpy(), atol=SCORE_ATOL)
    if beam_width == 4:  # a non-trivial case: hypotheses end after various numbers of tokens
        is_end = np_out["beam_tokens"] == model.end_id
        lengths = np.where(is_end.any(-1), is_end.argmax(-1) + 1, -1)
        assert len(np.unique(lengths)) >= 3, lengths


def test_beam_one_same_as_tensorflow_beam_one(model):
    from seq2seq_attn.search import beam_search as tf_beam_search

    memory, keys, mask, states = model.encode(SOURCE)
    kwargs = dict(max_length=None, length_penalty=1.0, coverage_penalty=0.2)
    tf_out = tf_beam_search(model.decode_step, states, memory, keys, mask, 2, 3, 1, **kwargs)
    np_beam = beam_search(
        numpy_step(model),
        [s.numpy() for s in states],
        memory.numpy(),
        None if keys is None else keys.numpy(),
        mask.numpy(),
        2,
        3,
        1,
        **kwargs,
    )
    assert_same(tf_out, np_beam)


def test_log_softmax_ranks_like_tensorflow():
    import tensorflow as tf

    rng = np.random.default_rng(1)
    logits = (rng.normal(size=(300, 500)) * 6.0).astype(np.float32)
    ours, theirs = log_softmax(logits), tf.nn.log_softmax(logits).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    np.testing.assert_array_equal(ours.argmax(-1), theirs.argmax(-1))
    top = np.argsort(-ours, -1, kind="stable")[:, :8]
    np.testing.assert_array_equal(top, tf.math.top_k(theirs, 8).indices.numpy())


def test_beam_width_one_is_not_greedy_under_coverage_penalty():
    # As in seq2seq_attn.search: greedy takes the arg-max token, beam search ranks by the final
    # score, where an [END] candidate pays the coverage penalty. START: END .6, A .4; A: END 1.
    t = np.zeros((VOCAB, VOCAB))
    t[START, [END, A]] = [0.6, 0.4]
    t[A, END] = t[END, END] = t[PAD, END] = 1.0
    greedy = run(greedy_search, t, max_length=4, coverage_penalty=1.0)
    beam = run(beam_search, t, beam_width=1, max_length=4, coverage_penalty=1.0)
    assert greedy["tokens"].tolist() == [[END]]
    np.testing.assert_allclose(greedy["scores"], [np.log(0.6) + 3 * np.log(1 / 3)], atol=1e-5)
    # log .6 + 3 log(1/3) = -3.81 < log .4 = -0.92, so beam 1 continues with A
    assert beam["tokens"].tolist() == [[A, END]]
    np.testing.assert_allclose(beam["scores"], [np.log(0.4) + 3 * np.log(2 / 3)], atol=1e-5)


@pytest.mark.parametrize(
    "table, kwargs",
    [
        (trap_table, dict(beam_width=2)),
        (trap_table, dict(beam_width=3)),
        (trap_table, dict(beam_width=3, length_penalty=5.0)),
        (trap_table, dict(beam_width=3, coverage_penalty=1.0)),
        (trap_table, dict(beam_width=1, coverage_penalty=1.0)),
        (trap_table, dict(coverage_penalty=0.5, length_penalty=0.5)),
        (tie_table, dict(beam_width=4)),
        (tie_table, dict()),
    ],
)
def test_tables_same_as_tensorflow(table, kwargs):
    """The hand-checked table cases, ties and a padded mixed batch, against the in-graph search."""
    from seq2seq_attn import search as tf_search

    name = "beam_search" if "beam_width" in kwargs else "greedy_search"
    first = np.stack([table()[START], np.eye(VOCAB)[END]])  # row 1 ends at once
    kwargs.setdefault("max_length", None if "max_length_ratio" in kwargs else 6)
    common = dict(batch=2, mask=[[1, 1, 1], [1, 1, 0]], first=first, **kwargs)
    expected = run(getattr(tf_search, name), table(), to_tf=True, **common)
    assert_same(expected, run(globals()[name], table(), **common))


# --- options: n-best, length rule, no-repeat-ngram, sampling --------------------------------

from seq2seq_attn.inference.search import (  # noqa: E402
    banned_ngram_mask,
    filter_logits,
    gumbel_noise,
    sample_tokens,
)

DRAWS = 20_000  # sampled-token frequencies over this many draws ...
FREQ_ATOL = 0.015  # ... are within this of the probabilities (about 4 standard deviations)


def loop_table():
    """START: A .9, END .1; A: B .6, C .3, END .1; B: A .6, END .4; C: END 1.

    Greedy loops A B A B ...; banning repeated bigrams turns A B A into A B A C END.
    """
    t = np.zeros((VOCAB, VOCAB))
    t[START, [A, END]] = [0.9, 0.1]
    t[A, [B, C, END]] = [0.6, 0.3, 0.1]
    t[B, [A, END]] = [0.6, 0.4]
    t[C, END] = t[END, END] = t[PAD, END] = 1.0
    return t


@pytest.mark.parametrize(
    "tokens, n, banned",
    [
        ([[A, B, A]], 2, [B]),  # "A B" seen, the hypothesis ends in A
        ([[A, B, A]], 1, [A, B]),  # no token twice
        ([[A, B, A]], 3, []),  # "B A" never began a trigram
        ([[A, B, C, A, B]], 3, [C]),
        ([[A, A, A]], 2, [A]),
        ([[A, B]], 3, []),  # shorter than n
        ([[A, B, A], [C, C, B]], 2, None),  # two rows at once, see below
    ],
)
def test_banned_ngram_mask_by_hand(tokens, n, banned):
    mask = banned_ngram_mask(np.array(tokens, np.int32), n, VOCAB)
    if banned is None:
        assert [np.flatnonzero(row).tolist() for row in mask] == [[B], []]
        return
    assert mask.shape == (1, VOCAB) and np.flatnonzero(mask[0]).tolist() == sorted(banned)
    assert not banned_ngram_mask(np.zeros((2, 0), np.int32), n, VOCAB).any()


def test_no_repeat_ngram_greedy_by_hand():
    plain = run(greedy_search, loop_table(), max_length=7)
    assert plain["tokens"].tolist() == [[A, B, A, B, A, B, A]]
    out = run(greedy_search, loop_table(), max_length=7, no_repeat_ngram=2)
    assert out["tokens"].tolist() == [[A, B, A, C, END]]
    # the score is the model's log-prob of the tokens, not renormalised after the ban
    np.testing.assert_allclose(out["scores"], [np.log(0.9 * 0.6 * 0.6 * 0.3)], atol=SCORE_ATOL)
    out = run(greedy_search, loop_table(), max_length=7, no_repeat_ngram=1)
    assert out["tokens"].tolist() == [[A, B, END]]
    np.testing.assert_allclose(out["scores"], [np.log(0.9 * 0.6 * 0.4)], atol=SCORE_ATOL)


def test_no_repeat_ngram_beam_never_repeats():
    out = run(beam_search, loop_table(), beam_width=3, n_best=3, max_length=9, no_repeat_ngram=2)
    for hypothesis in out["nbest_tokens"][0]:
        kept = hypothesis[: int(np.argmax(hypothesis == END)) + 1]
        bigrams = list(zip(kept[:-1], kept[1:], strict=True))
        assert len(bigrams) == len(set(bigrams)), kept
    # A C END (.9 .3 = .27), A B END (.9 .6 .4 = .216), A B A C END (.9 .6 .6 .3 = .0972);
    # A B A B is banned, and [END] alone (.1) fell out of the beam at step 3
    expected = [[A, C, END, 0, 0], [A, B, END, 0, 0], [A, B, A, C, END]]
    assert out["nbest_tokens"][0, :, :5].tolist() == expected
    np.testing.assert_allclose(out["nbest_scores"][0], np.log([0.27, 0.216, 0.0972]), atol=1e-5)


def test_n_best_is_the_sorted_head_of_the_beam():
    out = run(beam_search, trap_table(), beam_width=3, n_best=2, max_length=6)
    np.testing.assert_array_equal(out["nbest_tokens"], out["beam_tokens"][:, :2])
    np.testing.assert_array_equal(out["nbest_scores"], out["beam_scores"][:, :2])
    np.testing.assert_array_equal(out["nbest_attention"][:, 0], out["attention"])
    # B END (.36) then A C END (.24), as the trap table's docstring computes
    assert out["nbest_tokens"][0, :, :3].tolist() == [[B, END, 0], [A, C, END]]
    np.testing.assert_allclose(out["nbest_scores"][0], np.log([0.36, 0.24]), atol=SCORE_ATOL)
    greedy = run(greedy_search, trap_table(), max_length=6)
    assert greedy["nbest_tokens"].shape == (1, 1, 3)


@pytest.mark.parametrize(
    "ratio, offset, length", [(1.5, 1, 5), (0, 0, 0), (0.7, 2, 4), (2, 10, 16)]
)
@pytest.mark.parametrize("search", [greedy_search, beam_search])
def test_max_length_ratio_and_offset(search, ratio, offset, length):
    never_ends = np.zeros((VOCAB, VOCAB))
    never_ends[:, A] = 0.9
    never_ends[:, B] = 0.1
    extra = dict(beam_width=2) if search is beam_search else {}
    out = run(search, never_ends, max_length_ratio=ratio, max_length_offset=offset, **extra)
    assert out["tokens"].shape == (1, length)  # 3 source positions: floor(3 ratio + offset)


def independent_filtered_probs(logits, top_k=None, top_p=None, temperature=1.0):
    """The distribution sampling must follow, written without the code under test: float64,
    a full sort, tokens kept one by one."""
    z = np.asarray(logits, np.float64) / temperature
    order = np.argsort(-z, kind="stable")
    p = np.exp(z - z.max())
    p /= p.sum()
    keep = np.zeros(len(z), bool)
    mass = 0.0
    for rank, token in enumerate(order):
        if top_k is not None and rank >= top_k:
            break
        if top_p is not None and mass >= top_p:
            break
        keep[token] = True
        mass += p[token]
    q = np.where(keep, p, 0.0)
    return q / q.sum()


SAMPLE_CASES = [
    dict(top_k=3),
    dict(top_k=5, temperature=0.6),
    dict(top_p=0.7),
    dict(top_p=0.95, temperature=1.7),
    dict(top_p=1.0),
]


@pytest.mark.parametrize("kwargs", SAMPLE_CASES, ids=str)
def test_sampled_frequencies_follow_the_filtered_distribution(kwargs):
    rng = np.random.default_rng(11)
    logits = rng.normal(scale=1.5, size=9).astype(np.float32)
    expected = independent_filtered_probs(logits, **kwargs)
    noise = np.stack([gumbel_noise(rng, 9) for _ in range(DRAWS)])  # (draws, vocab)
    tokens = sample_tokens(np.tile(logits, (DRAWS, 1)), noise, **kwargs)
    freq = np.bincount(tokens, minlength=9) / DRAWS
    assert (freq[expected == 0] == 0).all()  # filtered tokens never come out
    assert np.abs(freq - expected).max() < FREQ_ATOL, (freq, expected)


def test_filter_logits_keeps_ties_and_the_top_token():
    logits = np.array([[2.0, 1.0, 1.0, 0.0], [5.0, -5.0, -5.0, -5.0]], np.float32)
    kept = filter_logits(logits, top_k=2) > -1e8
    assert kept.tolist() == [[True, True, True, False], [True, True, True, True]]
    assert (filter_logits(logits, top_p=1e-6) > -1e8).sum(-1).tolist() == [1, 1]


def sample_run(first, seed, **kwargs):
    first = np.atleast_2d(first)
    return run(greedy_search, loop_table(), batch=len(first), first=first, seed=seed, **kwargs)[
        "tokens"
    ]


def test_sampling_is_reproducible_and_independent_of_batch_mates():
    firsts = np.eye(VOCAB)[[A, B, C]] * 0.5 + np.eye(VOCAB)[END] * 0.5
    kwargs = dict(max_length=12, top_p=1.0, temperature=1.5)
    together = sample_run(firsts, 7, **kwargs)
    np.testing.assert_array_equal(together, sample_run(firsts, 7, **kwargs))
    for row, first in enumerate(firsts):  # alone, or with other batch mates
        alone = sample_run(first, 7, **kwargs)
        np.testing.assert_array_equal(alone[0], together[row, : alone.shape[1]])
        mates = sample_run(np.stack([firsts[(row + 1) % 3], first]), 7, **kwargs)
        np.testing.assert_array_equal(mates[1, : alone.shape[1]], alone[0])
    seeds = [sample_run(firsts, seed, **kwargs).tolist() for seed in range(6)]
    assert len({str(s) for s in seeds}) > 1  # another seed, other draws


def test_sampled_first_tokens_follow_the_model():
    # the whole loop, not only the kernel: 3000 seeds, one step each, START row A .9 END .1
    firsts = [
        int(sample_run(loop_table()[START], seed, max_length=1, top_k=7)[0, 0])
        for seed in range(3000)
    ]
    freq_a = np.mean(np.array(firsts) == A)
    assert set(firsts) <= {A, END} and abs(freq_a - 0.9) < 0.02  # sd 0.0055


def test_sampling_scores_are_the_model_log_probs():
    out = run(greedy_search, loop_table(), max_length=9, top_k=2, temperature=3.0, seed=5)
    tokens = out["tokens"][0]
    table = loop_table()
    prev, expected = START, 0.0
    for token in tokens[: int(np.argmax(tokens == END)) + 1]:
        expected += np.log(table[prev, token])
        prev = token
    np.testing.assert_allclose(out["scores"], [expected], atol=SCORE_ATOL)


@pytest.mark.parametrize(
    "search, kwargs, match",
    [
        (beam_search, dict(beam_width=2, n_best=3), "n_best=3"),
        (greedy_search, dict(n_best=2), "n_best=2"),
        (greedy_search, dict(no_repeat_ngram=0), "no_repeat_ngram=0"),
        (beam_search, dict(beam_width=2, top_k=3), "beam_width=2"),
        (greedy_search, dict(top_p=1.5), "top_p=1.5"),
        (greedy_search, dict(top_p=0.0), "top_p=0.0"),
        (greedy_search, dict(max_length_ratio=-1.0), "max_length_ratio=-1.0"),
    ],
)
def test_bad_option_values(search, kwargs, match):
    from seq2seq_attn.interface import BadOption

    with pytest.raises(BadOption, match=match):
        run(search, trap_table(), **kwargs)


OPTION_CASES = [
    (1, dict(no_repeat_ngram=2)),
    (1, dict(no_repeat_ngram=1, max_length_ratio=1.5, max_length_offset=2)),
    (3, dict(no_repeat_ngram=2, n_best=3)),
    (4, dict(n_best=2, max_length_ratio=0.7, max_length_offset=3, length_penalty=0.6)),
    (2, dict(no_repeat_ngram=3, n_best=2, coverage_penalty=0.3)),
]


@pytest.mark.parametrize("beam_width, kwargs", OPTION_CASES, ids=str)
def test_options_same_as_tensorflow(model, beam_width, kwargs):
    loops = make_model(end_bias=0.0, attention="bahdanau")  # outputs that repeat themselves
    for m in (model, loops):
        tf_out = m.generate(SOURCE, beam_width=beam_width, **kwargs)
        assert_same(tf_out, host_decode(m, SOURCE, beam_width, **kwargs))


@pytest.mark.parametrize(
    "table, kwargs",
    [
        (loop_table, dict(no_repeat_ngram=2)),
        (loop_table, dict(no_repeat_ngram=1, beam_width=3, n_best=3)),
        (loop_table, dict(no_repeat_ngram=2, beam_width=2, n_best=2)),
        (tie_table, dict(beam_width=4, n_best=4, max_length_ratio=1.5, max_length_offset=0)),
    ],
)
def test_option_tables_same_as_tensorflow(table, kwargs):
    test_tables_same_as_tensorflow(table, dict(kwargs))


def _stable_top_k(x, k):
    index = np.argsort(-x, axis=-1, kind="stable")[:, :k]
    return np.take_along_axis(x, index, axis=-1), index


@pytest.mark.parametrize("k", [1, 3, 4, 8])
@pytest.mark.parametrize("n", [8, 41, 4000])
def test_top_k_equals_a_stable_sort(k, n):
    from seq2seq_attn.inference.search import NEG_INF, _top_k

    rng = np.random.default_rng(k * 1000 + n)
    peaked = log_softmax(rng.normal(scale=4.0, size=(6, n))).astype(np.float32)
    flat = np.round(rng.normal(size=(6, n)), 1).astype(np.float32)  # many exact ties
    first_step = peaked.copy()
    first_step[:, n // 2 :] = NEG_INF  # what the first beam step looks like
    for x in (peaked, flat, first_step, np.zeros((3, n), np.float32)):
        values, index = _top_k(x, min(k, n))
        want_values, want_index = _stable_top_k(x, min(k, n))
        np.testing.assert_array_equal(index, want_index)
        np.testing.assert_array_equal(values, want_values)
        assert index.dtype == np.int32


def test_top_k_takes_both_paths(monkeypatch):
    from seq2seq_attn.inference import search

    calls, real = [], search._top_k_of_candidates
    monkeypatch.setattr(search, "_top_k_of_candidates", lambda *a: calls.append(1) or real(*a))
    peaked = log_softmax(np.random.default_rng(0).normal(scale=4.0, size=(4, 8000)))
    search._top_k(peaked.astype(np.float32), 4)
    assert calls, "a peaked row should take the few-candidates path"
    calls.clear()
    search._top_k(np.zeros((4, 8000), np.float32), 4)  # every value ties: partition
    assert not calls


def test_beam_margins_are_the_gaps_of_each_choice():
    assert "margins" not in run(beam_search, trap_table(), beam_width=2, max_length=6)
    out = run(beam_search, trap_table(), beam_width=2, max_length=6, with_margins=True)
    margins = out["margins"]
    assert margins.shape == (1, 3) and margins.dtype == np.float32
    assert margins[0, 0] > 20  # A .6, B .4 kept; the rest have probability ~1e-12
    # step 2: A C (.24) kept over A END and A B (.18); step 3: B END (.36) over A C END (.24)
    np.testing.assert_allclose(margins[0, 1:], np.log([0.24 / 0.18, 0.36 / 0.24]), atol=1e-5)
    tied = run(beam_search, tie_table(), beam_width=2, max_length=6, with_margins=True)
    assert tied["margins"][0, 1] == 0.0  # four candidates at .25 for two places


def test_top_k_margin_is_the_kth_minus_the_next_value():
    from seq2seq_attn.inference.search import NEG_INF, _top_k_with_margin

    rng = np.random.default_rng(3)
    x = rng.integers(-40, 0, size=(64, 50)).astype(np.float32) / 4  # many exact ties
    x[0, :] = NEG_INF  # a row with nothing but banned candidates
    for k in (1, 4, 7):
        values, index, margin = _top_k_with_margin(x, k)
        ranked = -np.sort(-x, axis=-1)
        np.testing.assert_array_equal(values, ranked[:, :k])
        expected = ranked[:, k - 1] - ranked[:, k]
        assert margin[0] == np.inf
        np.testing.assert_array_equal(margin[1:], expected[1:])
        assert (margin[1:] == 0).any() and (margin[1:] > 0).any()
