"""Decoding with a candidate set (vocabulary selection, issue 34): the cell's gathered output
layer, and `generate` with `candidates` in every search mode, on small random models."""

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from seq2seq_attn import shortlist as sl
from seq2seq_attn.cli import main
from seq2seq_attn.interface import NEG_INF
from seq2seq_attn.search import candidates_of, shortlist_mask
from seq2seq_attn.translator import Translator
from tests import random_models
from tests.random_models import MODELS, SOURCE, VOCAB

# Random weights of this scale give peaked, varied distributions (not near-uniform ones).
SCALE = 3.0


def random_model(seed, **kwargs):
    return random_models.random_model(seed, SCALE, **kwargs)


MODES = {
    "greedy": {},
    "greedy_no_repeat": {"no_repeat_ngram": 2},
    "sampling": {"top_k": 5, "temperature": 1.5, "seed": 7},
    "nucleus": {"top_p": 0.8, "seed": 3},
    "beam": {"beam_width": 3, "length_penalty": 0.6, "coverage_penalty": 0.2},
    "beam_nbest": {"beam_width": 4, "num_return_sequences": 3, "no_repeat_ngram": 3},
}


def numpy_results(out):
    return {key: value.numpy() for key, value in out.items()}


# Each mode once, each model at least twice (every model x mode took 40 s on 2 cores).
CASES = [
    ("untied", "greedy"),
    ("untied", "nucleus"),
    ("untied", "beam_nbest"),
    ("tied_projected", "greedy_no_repeat"),
    ("tied_projected", "beam"),
    ("lstm_luong_feeding", "sampling"),
    ("lstm_luong_feeding", "beam"),
]
_MODELS = {}


def cached_model(name):
    if name not in _MODELS:
        _MODELS[name] = random_model(11, **MODELS[name])
    return _MODELS[name]


@pytest.fixture(scope="module", params=sorted(MODELS))
def model(request):
    return cached_model(request.param)


def shortlist_ids(seed, count=12, end_id=3):
    rng = np.random.default_rng(seed)
    chosen = rng.choice(np.arange(4, VOCAB), count, replace=False)
    return np.sort(np.concatenate([[0, 1, 2, end_id], chosen])).astype(np.int32)


@pytest.mark.parametrize("name, mode", CASES)
def test_all_ids_decode_bit_identically_and_a_shortlist_keeps_inside(name, mode):
    model, options = cached_model(name), MODES[mode]
    full = numpy_results(model.generate(SOURCE, max_length=9, **options))
    every = numpy_results(
        model.generate(SOURCE, max_length=9, candidates=np.arange(VOCAB), **options)
    )
    assert full.keys() == every.keys()
    for key in full:
        np.testing.assert_array_equal(every[key], full[key], err_msg=key)
    assert (full["tokens"] != 0).sum() > 2 * len(SOURCE)  # not a decode that ends at once
    candidates = shortlist_ids(5)
    out = numpy_results(model.generate(SOURCE, max_length=9, candidates=candidates, **options))
    for key in ("tokens", "nbest_tokens") + (("beam_tokens",) if "beam_tokens" in out else ()):
        assert np.isin(out[key], candidates).all(), key
    # The shortlist changes the decode here: the full decode leaves the candidates.
    assert not np.isin(full["tokens"], candidates).all()
    assert np.isfinite(out["scores"]).all() and (out["scores"] <= 0).all()


def test_the_step_gives_the_full_logits_at_the_candidates_and_neg_inf_elsewhere(model):
    candidates = np.array([17, 3, 0, 25, 2, 9], np.int32)  # unsorted on purpose
    memory, keys, mask, states = model.encode(SOURCE)
    prev = tf.constant([2, 17, 9], tf.int32)
    full, full_states, full_weights = model.decode_step(prev, states, memory, keys, mask)
    shortlist = model.decoder_cell.shortlist_output(candidates)
    short, short_states, short_weights = model.decode_step(
        prev, states, memory, keys, mask, shortlist=shortlist
    )
    short, full = short.numpy(), full.numpy()
    np.testing.assert_allclose(short[:, candidates], full[:, candidates], atol=1e-5)
    outside = np.setdiff1d(np.arange(VOCAB), candidates)
    assert (short[:, outside] == np.float32(NEG_INF)).all()
    np.testing.assert_array_equal(short_weights, full_weights)
    for a, b in zip(short_states, full_states, strict=True):
        np.testing.assert_array_equal(a, b)
    kernel, bias, positions = (x.numpy() for x in shortlist)
    assert kernel.shape[1] == bias.shape[0] == len(candidates)
    np.testing.assert_array_equal(positions[candidates], np.arange(len(candidates)))
    assert (positions[outside] == len(candidates)).all()


def test_step_by_step_shortlist_decode_equals_generate(model):
    candidates = shortlist_ids(9)
    out = numpy_results(model.generate(SOURCE, max_length=7, candidates=candidates))
    memory, keys, mask, states = model.encode(SOURCE)
    shortlist = model.decoder_cell.shortlist_output(candidates)
    prev = tf.fill([len(SOURCE)], model.start_id)
    log_prob, done, tokens = np.zeros(len(SOURCE)), np.zeros(len(SOURCE), bool), []
    for _ in range(7):
        logits, states, _ = model.decode_step(prev, states, memory, keys, mask, shortlist)
        lp = tf.nn.log_softmax(logits).numpy()
        # The NumPy reference: a softmax over the candidates alone.
        own = logits.numpy()[:, candidates]
        top = own.max(-1, keepdims=True)
        own_lp = own - top - np.log(np.exp(own - top).sum(-1, keepdims=True))
        np.testing.assert_allclose(lp[:, candidates], own_lp, atol=1e-4)
        token = np.where(done, 0, candidates[own_lp.argmax(-1)])
        log_prob += np.where(done, 0.0, lp[np.arange(len(token)), token])
        tokens.append(token)
        done |= token == model.end_id
        prev = tf.constant(token, tf.int32)
        if done.all():
            break
    np.testing.assert_array_equal(out["tokens"], np.stack(tokens, 1))
    np.testing.assert_allclose(out["scores"], log_prob, atol=1e-4)


def test_candidate_order_does_not_change_the_decode():
    model = cached_model("tied_projected")
    candidates = shortlist_ids(4)
    ordered = model.generate(SOURCE, max_length=8, beam_width=2, candidates=candidates)
    shuffled = np.random.default_rng(0).permutation(candidates)
    other = model.generate(SOURCE, max_length=8, beam_width=2, candidates=shuffled)
    np.testing.assert_array_equal(other["tokens"], ordered["tokens"])
    np.testing.assert_allclose(other["scores"], ordered["scores"], atol=1e-5)


def test_traced_generate_takes_candidates_of_any_size():
    model = cached_model("untied")
    traced = tf.function(
        lambda ids, cands: model.generate(ids, max_length=6, candidates=cands),
        input_signature=[
            tf.TensorSpec([None, None], tf.int32),
            tf.TensorSpec([None], tf.int32),
        ],
        autograph=False,
    )
    for candidates in (shortlist_ids(1, 5), shortlist_ids(2, 20), np.arange(VOCAB)):
        eager = model.generate(SOURCE, max_length=6, candidates=candidates)
        graph = traced(tf.constant(SOURCE), tf.constant(candidates, tf.int32))
        np.testing.assert_array_equal(graph["tokens"], eager["tokens"])
        assert np.isin(graph["tokens"].numpy(), candidates).all()


@pytest.mark.parametrize(
    "bad",
    [[3, 3, 5], [0, VOCAB], [-1, 4], [[2, 3]], np.array([2.0, 3.0]), np.ones([3, VOCAB - 1], bool)],
    ids=["repeated", "too_large", "negative", "two_dims", "floats", "mask_of_another_width"],
)
def test_bad_candidates_are_a_value_error_naming_them(bad):
    model = cached_model("untied")
    with pytest.raises(ValueError, match="`candidates` must be unique int target ids"):
        model.generate(SOURCE, max_length=4, candidates=bad)


def narrow_shortlist(translator, avoid, top_k=2):
    """A shortlist far smaller than the tiny run's target vocabulary (30 pieces), without
    the ids `avoid` (but the special ones)."""
    source_vocab = translator.tokenizers.source.vocab_size
    target_vocab = translator.model.target_vocab_size
    allowed = np.setdiff1d(np.arange(4, target_vocab), avoid)
    top = np.random.default_rng(0).choice(allowed, size=(source_vocab, top_k))
    return sl.Shortlist(top, allowed[:2], target_vocab)


TEXTS = ["3 March 2021", "Saturday, 14 November 1987", "01/02/03"]


def test_translator_decodes_each_sentence_inside_its_own_candidates(tiny_run):
    translator = Translator.load(tiny_run)
    # train built the run's own shortlist: 500 frequent pieces cover all 30, so its
    # shortlist decode is the full decode, token for token.
    assert len(translator.shortlist.candidates([[5]])) == translator.model.target_vocab_size
    full = translator.translate(TEXTS, full_vocabulary=True)
    own = translator.translate(TEXTS)
    assert [r.tokens.tolist() for r in own] == [r.tokens.tolist() for r in full]
    translator.shortlist = narrow_shortlist(translator, np.concatenate([r.tokens for r in full]))
    for beam_width in (1, 3):
        alone = [translator.translate([t], beam_width=beam_width)[0] for t in TEXTS]
        batched = translator.translate(TEXTS, beam_width=beam_width, batch_size=3)
        for text, one, many in zip(TEXTS, alone, batched, strict=True):
            ids = translator.tokenizers.source.encode_batch([text])
            assert np.isin(one.tokens, translator.shortlist.candidates(ids)).all()
            # its batch mates' candidates change nothing
            assert many.tokens.tolist() == one.tokens.tolist()
            np.testing.assert_allclose(many.score, one.score, atol=1e-5)
    narrow = translator.translate(TEXTS, batch_size=2)
    assert [r.tokens.tolist() for r in narrow] != [r.tokens.tolist() for r in full]
    # scores are the model's over the whole vocabulary, whatever the candidates
    batched = translator.translate(TEXTS, batch_size=3, scores=True)
    model = translator.model
    for one in batched:
        target_in = np.concatenate([[model.start_id], one.tokens[:-1]])[None].astype(np.int32)
        logits, _ = model.teacher_forced(one.source_ids[None].astype(np.int32), target_in)
        full_lp = tf.nn.log_softmax(logits)[0].numpy()  # (length, vocab)
        expected = full_lp[np.arange(len(one.tokens)), one.tokens]
        np.testing.assert_allclose(one.token_log_probs, expected, atol=1e-5)
    again = translator.translate(TEXTS, full_vocabulary=True)
    assert [r.text for r in again] == [r.text for r in full]


def test_translator_without_a_shortlist_decodes_as_before(tiny_run):
    translator = Translator.load(tiny_run)
    plain = Translator(translator.model, translator.tokenizers, translator.run_info)
    assert plain.shortlist is None
    for options in ({}, {"beam_width": 3, "n_best": 2}):
        before = plain.translate(TEXTS, **options)
        after = plain.translate(TEXTS, full_vocabulary=True, **options)
        listed = translator.translate(TEXTS, full_vocabulary=True, **options)
        for a, b, c in zip(before, after, listed, strict=True):
            assert a.tokens.tolist() == b.tokens.tolist() == c.tokens.tolist()
            assert a.score == b.score == c.score


@pytest.fixture(scope="module")
def narrow_run(tiny_run, tmp_path_factory):
    """A copy of the tiny run whose shortlist.npz leaves out its full decode's tokens."""
    run = tmp_path_factory.mktemp("narrow") / "dates"
    shutil.copytree(tiny_run, run)
    translator = Translator.load(run)
    full = translator.translate(TEXTS, full_vocabulary=True)
    narrow_shortlist(translator, np.concatenate([r.tokens for r in full])).save(run / sl.FILE)
    return run


def test_cli_translate_full_vocabulary_flag(narrow_run, tmp_path, capsys):
    translator = Translator.load(narrow_run)
    expected = {
        flag: [r.text for r in translator.translate(TEXTS, full_vocabulary=bool(flag))]
        for flag in ((), ("--full-vocabulary",))
    }
    assert expected[()] != expected[("--full-vocabulary",)]
    source = tmp_path / "in.txt"
    source.write_text("".join(t + "\n" for t in TEXTS))
    for flag, texts in expected.items():
        assert main(["translate", str(narrow_run), *TEXTS, *flag]) == 0
        assert capsys.readouterr().out.splitlines() == texts
        assert main(["translate", "--run-dir", str(narrow_run), "--input", str(source), *flag]) == 0
        assert capsys.readouterr().out.splitlines() == texts
        out = tmp_path / "out.txt"
        args = ["--input", str(source), "--output", str(out), "--batch-size", "3"]
        assert main(["translate", "--run-dir", str(narrow_run), *args, *flag]) == 0
        assert out.read_text().splitlines() == texts


def test_cli_evaluate_full_vocabulary_writes_its_own_file(narrow_run, capsys):
    assert main(["evaluate", str(narrow_run), "--limit", "4"]) == 0
    assert main(["evaluate", str(narrow_run), "--limit", "4", "--full-vocabulary"]) == 0
    short = json.loads((narrow_run / "eval_test.json").read_text())
    full = json.loads((narrow_run / "eval_test_full.json").read_text())
    assert (short["vocabulary"], full["vocabulary"]) == ("shortlist", "full")
    assert short["n"] == full["n"] == 4
    hypotheses = [[e["hypothesis"] for e in r["examples"]] for r in (short, full)]
    assert hypotheses[0] != hypotheses[1]


def test_graph_masks_equal_the_shortlists_on_padded_batches():
    rng = np.random.default_rng(1)
    top = rng.integers(4, VOCAB, size=(30, 3))
    top[[0, 2, 3]] = 0  # as `top_targets` leaves [PAD], [START], [END]: never aligned
    shortlist = sl.Shortlist(top, [7, 9], VOCAB)
    traced = tf.function(
        lambda ids: shortlist_mask(ids, shortlist.top, shortlist.always, VOCAB),
        input_signature=[tf.TensorSpec([None, None], tf.int32)],
        autograph=False,
    )
    for ids in (SOURCE, SOURCE[2:, :2], np.zeros([2, 0], np.int32)):
        graph = traced(tf.constant(ids))
        np.testing.assert_array_equal(graph.numpy(), shortlist.mask(ids))
        for row, source in zip(graph.numpy(), ids, strict=True):
            np.testing.assert_array_equal(np.flatnonzero(row), shortlist.candidates(source))
        union = candidates_of(graph).numpy()
        assert union.dtype == np.int32
        np.testing.assert_array_equal(union, shortlist.candidates(ids))
    assert len(shortlist.candidates(SOURCE)) < VOCAB  # a real selection
    masks = shortlist.mask(SOURCE)
    assert (masks.sum(1) < len(shortlist.candidates(SOURCE))).all()  # rows differ from the union


def row_masks(seed):
    """Per-sentence candidate masks of SOURCE: different ids per row, [END] in every row."""
    return np.stack([np.isin(np.arange(VOCAB), shortlist_ids(seed + i)) for i in range(3)])


@pytest.mark.parametrize(
    "name, mode",
    [
        ("untied", "greedy_no_repeat"),
        ("tied_projected", "beam"),
        ("lstm_luong_feeding", "beam_nbest"),
    ],
)
def test_a_sentence_decodes_over_its_own_row_as_if_alone(name, mode):
    model, options = cached_model(name), MODES[mode]
    masks = row_masks(20)
    batched = numpy_results(model.generate(SOURCE, max_length=8, candidates=masks, **options))
    assert not np.array_equal(masks[0], masks[1])
    for i in range(len(SOURCE)):
        ids = np.flatnonzero(masks[i]).astype(np.int32)
        length = int((SOURCE[i] != 0).sum())
        alone = numpy_results(
            model.generate(SOURCE[i : i + 1, :length], max_length=8, candidates=ids, **options)
        )
        width = alone["tokens"].shape[1]
        np.testing.assert_array_equal(batched["tokens"][i, :width], alone["tokens"][0])
        assert not batched["tokens"][i, width:].any()
        np.testing.assert_allclose(batched["scores"][i], alone["scores"][0], atol=1e-4)
        assert np.isin(batched["tokens"][i], ids).all()


def test_the_step_masks_each_row_outside_its_own_candidates():
    model = cached_model("untied")
    masks = row_masks(30)
    memory, keys, mask, states = model.encode(SOURCE)
    prev = tf.constant([2, 17, 9], tf.int32)
    full, _, _ = model.decode_step(prev, states, memory, keys, mask)
    cell = model.decoder_cell
    rows = tf.constant(masks)
    shortlist = cell.shortlist_output(candidates_of(rows), rows)
    short, _, _ = model.decode_step(prev, states, memory, keys, mask, shortlist=shortlist)
    short, full = short.numpy(), full.numpy()
    np.testing.assert_allclose(short[masks], full[masks], atol=1e-5)
    assert (short[~masks] == np.float32(NEG_INF)).all()
