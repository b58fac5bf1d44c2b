"""A forced target prefix: the host search on hand-built tables."""

import numpy as np
import pytest
from search_tables import END, START, A, B, C, trap_table

from seq2seq_attn.inference.search import beam_search, greedy_search
from seq2seq_attn.interface import BadOption

ATOL = 1e-5


def table_search(search, prefix=(), batch=1, **kwargs):
    """Decodes `batch` sentences with the trap table (next token depends on the last only);
    `prefix` given is passed as `target_prefix`."""
    log_table = np.log(trap_table().astype(np.float32) + 1e-12)

    def step_fn(prev, states, memory, keys, mask):
        return log_table[prev], states, mask / mask.sum(-1, keepdims=True)

    memory, mask = np.zeros([batch, 3, 1], np.float32), np.ones([batch, 3], bool)
    states = [np.zeros([batch, 1], np.float32)]
    if prefix != ():
        kwargs["target_prefix"] = prefix
    return search(step_fn, states, memory, None, mask, START, END, **kwargs)


def beam(width):
    return lambda *args, **kwargs: beam_search(*args, beam_width=width, **kwargs)


SEARCHES = {"greedy": greedy_search, "beam2": beam(2), "beam3": beam(3)}


@pytest.mark.parametrize("name", SEARCHES)
@pytest.mark.parametrize("empty", [None, [[], []]])
def test_empty_prefix_decodes_as_before(name, empty):
    n_best = {"n_best": 2} if name == "beam3" else {}
    before = table_search(SEARCHES[name], batch=2, length_penalty=0.6, **n_best)
    after = table_search(SEARCHES[name], empty, batch=2, length_penalty=0.6, **n_best)
    assert before.keys() == after.keys()
    for key in before:
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)


def test_greedy_follows_the_prefix_then_continues():
    out = table_search(greedy_search, [[B]])  # free greedy would take A C END
    assert out["tokens"].tolist() == [[B, END]]
    np.testing.assert_allclose(out["scores"], [np.log(0.4 * 0.9)], atol=ATOL)
    np.testing.assert_allclose(out["token_log_probs"], [np.log([0.4, 0.9])], atol=ATOL)


def test_beam_keeps_one_hypothesis_through_the_prefix():
    out = table_search(beam_search, [[A]], beam_width=3, n_best=3)
    # free beam 3 would rank B END (.36) first; after A: C END .24, END .18, B END .162
    assert out["nbest_tokens"].tolist() == [[[A, C, END], [A, END, 0], [A, B, END]]]
    expected = np.log([0.6 * 0.4, 0.6 * 0.3, 0.6 * 0.3 * 0.9])
    np.testing.assert_allclose(out["nbest_scores"], [expected], atol=ATOL)
    np.testing.assert_allclose(out["nbest_token_log_probs"].sum(-1), [expected], atol=ATOL)


@pytest.mark.parametrize("name", SEARCHES)
def test_prefix_longer_than_a_free_decode(name):
    out = table_search(SEARCHES[name], [[A, B, C, C]])  # C after C is p=0: forced anyway
    assert out["tokens"][0, :5].tolist() == [A, B, C, C, END]
    lps = np.log(np.float32(1e-12))  # the table's floor for C after C
    expected = np.log(0.6 * 0.3 * 0.1) + lps  # END after C is 1
    np.testing.assert_allclose(out["scores"], [expected], rtol=1e-5)


@pytest.mark.parametrize("name", SEARCHES)
@pytest.mark.parametrize("max_length, tokens", [(0, [A, C]), (1, [A, C, END])])
def test_max_length_counts_from_the_end_of_the_prefix(name, max_length, tokens):
    out = table_search(SEARCHES[name], [[A, C]], max_length=max_length)
    assert out["tokens"].tolist() == [tokens]


@pytest.mark.parametrize("name", SEARCHES)
def test_each_sentence_decodes_as_alone_in_a_mixed_batch(name):
    prefixes = [[], [A, B], [B]]
    together = table_search(SEARCHES[name], prefixes, batch=3, max_length=1)
    for row, prefix in enumerate(prefixes):
        alone = table_search(SEARCHES[name], [prefix], max_length=1)
        length = alone["tokens"].shape[1]
        assert together["tokens"][row, :length].tolist() == alone["tokens"][0].tolist()
        assert not together["tokens"][row, length:].any()
        np.testing.assert_allclose(together["scores"][row], alone["scores"][0], atol=ATOL)


@pytest.mark.parametrize("name", SEARCHES)
@pytest.mark.parametrize(
    "prefix, match", [([[A, END]], r"\[END\]"), ([[START]], r"\[START\]"), ([[A], [B]], r"\(1\)")]
)
def test_bad_prefix(name, prefix, match):
    with pytest.raises(BadOption, match=match):
        table_search(SEARCHES[name], prefix)


# --- the graph search (`generate`) against the host search, on a small random model -------

PREFIXES = [[5, 6], [], [7], [9, 8, 7, 7]]


def padded(prefixes):
    out = np.zeros([len(prefixes), max(map(len, prefixes))], np.int32)
    for row, prefix in enumerate(prefixes):
        out[row, : len(prefix)] = prefix
    return out


@pytest.fixture(scope="module")
def random_model():
    from test_inference_search import make_model

    return make_model(attention="bahdanau")


@pytest.mark.parametrize(
    "beam_width, kwargs",
    [
        (1, dict(max_length=6)),
        (1, dict(no_repeat_ngram=2, length_penalty=0.6, coverage_penalty=0.3)),
        (2, dict(max_length=6)),
        (2, dict(n_best=2, max_length=2, length_penalty=0.6)),
        (3, dict(n_best=2, no_repeat_ngram=2, max_length_ratio=1.0, max_length_offset=1)),
    ],
    ids=str,
)
def test_generate_same_as_host_search(random_model, beam_width, kwargs):
    from test_inference_search import SOURCE, assert_same, host_decode

    graph = random_model.generate(
        SOURCE, beam_width=beam_width, target_prefix=padded(PREFIXES), **kwargs
    )
    host = host_decode(random_model, SOURCE, beam_width, target_prefix=PREFIXES, **kwargs)
    assert_same(graph, host)
    for row, prefix in enumerate(PREFIXES):
        assert (host["nbest_tokens"][row, :, : len(prefix)] == prefix).all()
    if "penalty" not in str(kwargs):  # the prefix's log-probs count in the score
        total = host["nbest_token_log_probs"].sum(-1)
        np.testing.assert_allclose(total, graph["nbest_scores"].numpy(), atol=ATOL)


# --- the library on the tiny trained model -------------------------------------------------

TEXTS = ["3 March 2021", "december 25, 1999", "1 jan 2000"]
# a whole-looking prefix, one ending mid-number, one ending with a space, one empty
TEXT_PREFIXES = ["1999-", "20", "2021 ", ""]


@pytest.fixture(scope="module")
def translator(tiny_run):
    from seq2seq_attn.translator import Translator

    return Translator.load(tiny_run)


def step_graph_log_prob(model, source_ids, tokens):
    """log P(tokens | source) summed, teacher-forced one `decode_step` at a time."""
    import tensorflow as tf

    memory, keys, mask, states = model.encode(np.asarray([source_ids], np.int32))
    prev, total = model.start_id, 0.0
    for token in tokens:
        logits, states, _ = model.decode_step(tf.constant([prev]), states, memory, keys, mask)
        total += float(tf.nn.log_softmax(logits)[0, int(token)])
        prev = int(token)
    return total


@pytest.mark.parametrize("options", [dict(), dict(beam_width=2), dict(beam_width=3, n_best=2)])
def test_library_output_starts_with_the_prefix(translator, options):
    for prefix in TEXT_PREFIXES:
        results = translator.translate(TEXTS, target_prefix=[prefix] * len(TEXTS), **options)
        for result in results:
            for one in [result, *(result.nbest or [])]:
                assert one.text.startswith(prefix), (prefix, one.text)
                model = translator.model
                expected = step_graph_log_prob(model, one.source_ids, one.tokens)
                np.testing.assert_allclose(one.score, expected, atol=1e-4)


def test_library_empty_prefix_is_no_prefix(translator):
    for options in [dict(), dict(beam_width=3, n_best=2)]:
        plain = translator.translate(TEXTS, **options)
        empty = translator.translate(TEXTS, target_prefix=[""] * len(TEXTS), **options)
        assert [r.text for r in plain] == [r.text for r in empty]
        assert [r.score for r in plain] == [r.score for r in empty]


def test_library_prefix_changes_the_output_and_is_scored(translator):
    free = translator.translate(TEXTS[:1])[0]
    forced = translator.translate(TEXTS[:1], target_prefix=["1999-"], scores=True)[0]
    assert not free.text.startswith("1999-") and forced.text.startswith("1999-")
    assert forced.score < free.score  # greedy's own choice was likelier than the forced one
    np.testing.assert_allclose(forced.token_log_probs.sum(), forced.score, atol=1e-4)


def test_library_bad_prefix_count(translator):
    with pytest.raises(BadOption, match=r"one string per text \(2 texts\)"):
        translator.translate(TEXTS[:2], target_prefix=["x"])


# --- the command line ----------------------------------------------------------------------


def cli(argv, stdin_text, monkeypatch, capsys):
    import io
    import sys

    from seq2seq_attn.cli import main

    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin_text))
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_prefix_equals_the_library(tiny_run, translator, monkeypatch, capsys):
    argv = ["translate", str(tiny_run), TEXTS[0], "--prefix", "20", "--beam", "2", "--scores"]
    code, out, err = cli(argv, "", monkeypatch, capsys)
    assert code == 0, err
    (expected,) = translator.translate(TEXTS[:1], target_prefix=["20"], beam_width=2)
    assert out.split("\t")[0] == expected.text and expected.text.startswith("20")


def test_cli_prefix_column_equals_the_library(tiny_run, translator, monkeypatch, capsys):
    lines = [f"{text}\tnote\t{prefix}" for text, prefix in zip(TEXTS, TEXT_PREFIXES, strict=False)]
    argv = ["translate", "--run-dir", str(tiny_run), "--prefix-column", "3"]
    code, out, err = cli(argv, "\n".join(lines) + "\n", monkeypatch, capsys)
    assert code == 0, err
    expected = translator.translate(TEXTS, target_prefix=TEXT_PREFIXES[: len(TEXTS)])
    assert out.splitlines() == [r.text for r in expected]
    assert all(r.text.startswith(p) for r, p in zip(expected, TEXT_PREFIXES, strict=False))


@pytest.mark.parametrize(
    "argv, stdin, match",
    [
        (["--prefix", "20"], "3 March 2021\n", "exactly one TEXT"),
        (["--prefix-column", "1"], "3 March 2021\n", "2 or more"),
        (["--prefix-column", "3"], "3 March 2021\t20\n", "has no column 3"),
    ],
)
def test_cli_bad_prefix_arguments(tiny_run, argv, stdin, match, monkeypatch, capsys):
    code, _, err = cli(["translate", "--run-dir", str(tiny_run), *argv], stdin, monkeypatch, capsys)
    assert code == 2 and match in err, err
