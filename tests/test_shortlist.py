"""Lexical shortlists: IBM model 1 against an independent NumPy reference, candidate sets, the
stored file, the config keys and the `shortlist` subcommand."""

import json
import shutil

import numpy as np
import pytest

from seq2seq_attn import shortlist as sl
from seq2seq_attn.config import resolve_config
from seq2seq_attn.errors import UserError

ATOL = 1e-12  # float64 EM, same updates summed in another order
LA, CASA, FLOR = 4, 5, 6  # source ids
THE, HOUSE, FLOWER = 4, 5, 6  # target ids
TOY = [([2, LA, CASA, 3], [2, THE, HOUSE, 3]), ([2, LA, FLOR, 3], [2, THE, FLOWER, 3])]


def reference_ibm1(pairs, source_vocab, target_vocab, iterations):
    """IBM model 1 written out sentence by sentence (Brown et al. 1993, section 4): a dense
    t[s, t] table with the NULL source word in row `source_vocab`, uniform start."""
    table = np.full((source_vocab + 1, target_vocab), 1.0 / target_vocab)
    specials = (0, 2, 3)
    for _ in range(iterations):
        counts = np.zeros_like(table)
        for source, target in pairs:
            source = [s for s in source if s not in specials] + [source_vocab]
            for t in (t for t in target if t not in specials):
                column = np.array([table[s, t] for s in source])
                for s, share in zip(source, column / column.sum(), strict=True):
                    counts[s, t] += share
        totals = counts.sum(axis=1, keepdims=True)
        table = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    return table


def dense(source, target, prob, source_vocab, target_vocab):
    table = np.zeros((source_vocab + 1, target_vocab))
    table[source, target] = prob
    return table


def test_ibm1_learns_the_house_and_the_flower():
    source, target, prob = sl.ibm1(*zip(*TOY, strict=True), 7, 7, iterations=10)
    table = dense(source, target, prob, 7, 7)
    assert table[CASA].argmax() == HOUSE
    assert table[FLOR].argmax() == FLOWER
    assert table[LA].argmax() == THE
    assert table[CASA, HOUSE] > 0.5 > table[CASA, THE]
    np.testing.assert_allclose(table, reference_ibm1(TOY, 7, 7, 10), atol=ATOL)


def test_ibm1_equals_the_reference_on_random_pairs_cut_in_chunks(monkeypatch):
    rng = np.random.default_rng(0)
    pairs = [
        (rng.integers(1, 30, rng.integers(1, 9)), rng.integers(1, 25, rng.integers(1, 9)))
        for _ in range(60)
    ]
    monkeypatch.setattr(sl, "CHUNK_LINKS", 40)  # many chunks, one EM pass over all of them
    source, target, prob = sl.ibm1(*zip(*pairs, strict=True), 30, 25, iterations=4)
    np.testing.assert_allclose(
        dense(source, target, prob, 30, 25), reference_ibm1(pairs, 30, 25, 4), atol=ATOL
    )
    # p(.|s) is a distribution for every source piece that occurs.
    sums = np.bincount(source, weights=prob)
    np.testing.assert_allclose(sums[np.unique(source)], 1.0, atol=ATOL)


def test_ibm1_rejects_ids_outside_the_vocabulary():
    for source, target in (([4, 9], [4]), ([4, 7], [4]), ([4], [4, 7]), ([-1], [4])):
        with pytest.raises(ValueError, match="outside the vocabularies"):
            sl.ibm1([source], [target], 7, 7)


def test_top_targets_orders_by_probability_then_id_and_pads():
    source = np.array([4, 4, 4, 5])
    target = np.array([9, 7, 8, 6])
    prob = np.array([0.2, 0.4, 0.4, 1.0])
    top = sl.top_targets(source, target, prob, 6, 2)
    assert top.dtype == np.int32 and top.shape == (6, 2)
    assert top[4].tolist() == [7, 8]  # tie at 0.4: lower id first; 9 is cut
    assert top[5].tolist() == [6, 0]  # one target only: padded with [PAD]
    assert not top[:4].any()


def test_most_frequent_counts_only_real_pieces():
    targets = [[2, 7, 7, 3], [2, 7, 5, 3], [2, 9, 5, 3, 0]]
    assert sl.most_frequent(targets, 10, 2).tolist() == [5, 7]
    assert sl.most_frequent(targets, 10, 50).tolist() == [5, 7, 9]


@pytest.fixture
def toy_shortlist():
    return sl.build(*zip(*TOY, strict=True), 7, 7, top_k=1, frequent=1)


def test_candidates_hold_special_and_frequent_ids_sorted_and_unique(toy_shortlist):
    always = set(sl.SPECIAL_IDS) | set(toy_shortlist.frequent.tolist())
    assert toy_shortlist.frequent.tolist() == [THE]  # tied with nothing: 2 occurrences
    for batch in ([[2, CASA, 3]], [[2, FLOR, 3], [2, LA, CASA, 3]], [], np.zeros((2, 3), int)):
        ids = toy_shortlist.candidates(batch)
        assert ids.dtype == np.int32
        assert ids.tolist() == sorted(set(ids.tolist()))
        assert always <= set(ids.tolist())
    assert toy_shortlist.candidates([[2, CASA, 3]]).tolist() == [0, 1, 2, 3, THE, HOUSE]
    both = toy_shortlist.candidates(np.array([[2, CASA, 3], [2, FLOR, 3]]))
    assert both.tolist() == [0, 1, 2, 3, THE, HOUSE, FLOWER]  # the union over the batch
    with pytest.raises(ValueError, match="source ids"):
        toy_shortlist.candidates([[7]])


def test_the_stored_file_round_trips(toy_shortlist, tmp_path):
    path = tmp_path / sl.FILE
    toy_shortlist.save(path)
    loaded = sl.load_run(tmp_path)
    np.testing.assert_array_equal(loaded.top, toy_shortlist.top)
    np.testing.assert_array_equal(loaded.frequent, toy_shortlist.frequent)
    assert loaded.target_vocab_size == 7 and loaded.info == toy_shortlist.info
    assert loaded.info["top_k"] == 1 and loaded.info["iterations"] == sl.ITERATIONS
    assert sl.load_run(tmp_path / "elsewhere") is None


def test_a_damaged_or_foreign_file_is_a_user_error(toy_shortlist, tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="cannot load the shortlist"):
        sl.Shortlist.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", format=np.array("something/2"), top=toy_shortlist.top)
    with pytest.raises(UserError, match="unknown format"):
        sl.Shortlist.load(tmp_path / "other.npz")


def test_coverage_counts_reference_pieces_inside_their_sentence_candidates(toy_shortlist):
    # "la casa" -> candidates [PAD] [UNK] [START] [END] the house: "the flower" has 1 of 2.
    measured = sl.coverage(toy_shortlist, [[2, CASA, 3]], [[2, THE, FLOWER, 3]])
    assert measured["coverage"] == 0.5
    assert measured["mean_candidates"] == 6 and measured["share_of_vocabulary"] == 6 / 7


def test_config_defaults_null_and_errors():
    assert resolve_config({})["shortlist"] == sl.DEFAULTS
    assert resolve_config({"shortlist": None})["shortlist"] is None
    assert resolve_config({"shortlist": {"top_k": 7}})["shortlist"]["top_k"] == 7
    for bad, message in (
        ({"top_k": 0}, "shortlist.top_k must be a positive integer, got 0"),
        ({"frequent": True}, "shortlist.frequent must be a positive integer, got True"),
        ({"frequent": "250"}, "shortlist.frequent must be a positive integer, got '250'"),
        ({"topk": 5}, "unknown config key shortlist.topk (did you mean 'top_k'?)"),
    ):
        with pytest.raises(UserError) as err:
            resolve_config({"shortlist": bad})
        assert message in str(err.value)


def test_train_builds_the_shortlist(tiny_run):
    info = json.loads((tiny_run / "run.json").read_text())["shortlist"]
    stored = sl.load_run(tiny_run)
    assert (info["top_k"], info["frequent"]) == (sl.DEFAULTS["top_k"], sl.DEFAULTS["frequent"])
    assert stored.top.shape == (info["source_vocab_size"], sl.DEFAULTS["top_k"])
    assert stored.info["pairs"] == info["pairs"] > 0


def test_cli_builds_a_runs_shortlist_and_prints_one_summary(tiny_run, tmp_path, capsys):
    from seq2seq_attn.cli import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / sl.FILE).unlink()
    assert main(["shortlist", str(run), "--top-k", "3", "--frequent", "5"]) == 0
    out, err = capsys.readouterr()
    assert out.count("\n") == 1 and out.startswith("shortlist: top 3 per source piece + 5 ")
    assert "EM iteration 5/5" in err
    stored = sl.load_run(run)
    assert stored.top_k == 3 and len(stored.frequent) == 5


def test_cli_bad_run_dir_is_one_line_and_exit_2(tmp_path, capsys):
    from seq2seq_attn.cli import main

    assert main(["shortlist", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("seq2seq-attn shortlist: error: ") and "not a finished" in err
