"""Tests for seq2seq_attn.evaluation: golden BLEU values computed independently of score()."""

import json
import math

import pytest
import sacrebleu

from seq2seq_attn.errors import UserError
from seq2seq_attn.evaluation import DEFAULT_BUCKETS, format_table, score, write_json

ATOL = 1e-6


def _words(n, word="w"):
    """A source sentence of exactly n whitespace-separated words."""
    return " ".join(f"{word}{i}" for i in range(n))


def test_identical_translations_score_100():
    sentences = ["the cat sat on the mat", "a dog ran in the park today"]
    result = score(sentences, sentences, sentences)
    assert result["n"] == 2
    assert result["bleu"] == pytest.approx(100.0, abs=ATOL)
    assert result["chrf"] == pytest.approx(100.0, abs=ATOL)
    assert result["exact_match"] == 1.0


def test_disjoint_translations_score_0():
    result = score(["a b c d e"], ["v w x y z"], ["s t u"])
    assert result["bleu"] == pytest.approx(0.0, abs=ATOL)
    assert result["chrf"] == pytest.approx(0.0, abs=ATOL)
    assert result["exact_match"] == 0.0


def test_bleu_matches_hand_computation():
    # Clipped n-gram precisions 5/6, 3/5, 2/4, 1/3; equal lengths so brevity penalty 1.
    expected = 100 * math.exp(sum(math.log(p) for p in (5 / 6, 3 / 5, 2 / 4, 1 / 3)) / 4)
    result = score(["the cat sat on a mat"], ["the cat sat on the mat"], ["x"])
    assert expected == pytest.approx(53.7284966, abs=1e-6)
    assert result["bleu"] == pytest.approx(expected, abs=ATOL)


def test_exact_match_strips_surrounding_whitespace_only():
    hyps = ["  hello world \n", "hello  world", "Hello world", "good bye"]
    refs = ["hello world", "hello world", "hello world", "good bye"]
    result = score(hyps, refs, ["a"] * 4)
    # Matches: #0 (surrounding whitespace) and #3; inner spaces and case still count.
    assert result["exact_match"] == pytest.approx(2 / 4)


def test_bucket_membership_counts_and_boundaries():
    lengths = [1, 10, 11, 20, 35, 51, 80, 10]
    sources = [_words(n) for n in lengths]
    hyps = [f"hyp {i}" for i in range(len(lengths))]
    result = score(hyps, hyps, sources)
    ranges = {b["range"]: b["n"] for b in result["buckets"]}
    # 21-30 and 41-50 are empty and omitted; 51+ is open-ended.
    assert ranges == {"1-10": 3, "11-20": 2, "31-40": 1, "51+": 2}
    assert [b["range"] for b in result["buckets"]] == ["1-10", "11-20", "31-40", "51+"]
    assert sum(ranges.values()) == result["n"] == len(lengths)


def test_bucket_bleu_equals_sacrebleu_on_the_right_subset():
    hyps = [
        "the cat sat on a mat",
        "there is a dog in the garden",
        "my house is very small and old",
        "she reads a book every night",
    ]
    refs = [
        "the cat sat on the mat",
        "a dog is in the garden",
        "my house is small and very old",
        "she reads one book each night",
    ]
    sources = [_words(3), _words(15), _words(4), _words(12)]
    result = score(hyps, refs, sources)
    by_range = {b["range"]: b for b in result["buckets"]}
    short = sacrebleu.corpus_bleu([hyps[0], hyps[2]], [[refs[0], refs[2]]]).score
    long = sacrebleu.corpus_bleu([hyps[1], hyps[3]], [[refs[1], refs[3]]]).score
    overall = sacrebleu.corpus_bleu(hyps, [refs]).score
    assert by_range["1-10"]["bleu"] == pytest.approx(short, abs=ATOL)
    assert by_range["11-20"]["bleu"] == pytest.approx(long, abs=ATOL)
    assert result["bleu"] == pytest.approx(overall, abs=ATOL)
    chrf_short = sacrebleu.corpus_chrf([hyps[0], hyps[2]], [[refs[0], refs[2]]]).score
    assert by_range["1-10"]["chrf"] == pytest.approx(chrf_short, abs=ATOL)
    assert short != pytest.approx(long)  # the subsets really differ


def test_signature_names_13a_tokenizer():
    result = score(["a b c d"], ["a b c d"], ["x"])
    assert "tok:13a" in result["signature"]["bleu"]
    assert "nc:6" in result["signature"]["chrf"]


def test_custom_buckets_and_uncovered_lengths():
    sources = [_words(2), _words(5), _words(9)]
    result = score(["a"] * 3, ["a"] * 3, sources, buckets=((1, 4), (5, 6)))
    assert [(b["range"], b["n"]) for b in result["buckets"]] == [("1-4", 1), ("5-6", 1)]
    assert result["n"] == 3  # the 9-word sentence counts only overall


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"hypotheses": ["a", "b"], "references": ["a"], "sources": ["a", "b"]},
            "`references`.*1.*2",
        ),
        ({"hypotheses": ["a"], "references": ["a"], "sources": ["a", "b", "c"]}, "`sources`.*3.*1"),
        ({"hypotheses": [], "references": [], "sources": []}, "`hypotheses` is empty"),
        ({"hypotheses": "abc", "references": ["a"], "sources": ["a"]}, "`hypotheses`.*one string"),
        ({"hypotheses": [1], "references": ["a"], "sources": ["a"]}, r"`hypotheses\[0\]`.*int"),
    ],
)
def test_bad_inputs_raise_value_error_naming_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        score(**kwargs)


@pytest.mark.parametrize(
    "buckets", [(), ((1, 10), (10, 20)), ((5, 1),), ((1, None), (5, 9)), ((1, 2, 3),)]
)
def test_bad_buckets_raise_value_error(buckets):
    with pytest.raises(ValueError, match="`buckets"):
        score(["a"], ["a"], ["a"], buckets=buckets)


def test_default_buckets_cover_every_positive_length():
    covered = [
        n
        for n in range(1, 200)
        if any(lo <= n and (hi is None or n <= hi) for lo, hi in DEFAULT_BUCKETS)
    ]
    assert covered == list(range(1, 200))


def test_format_table_has_overall_and_every_bucket_row():
    sources = [_words(3), _words(15), _words(60)]
    result = score(["a b", "c d", "e f"], ["a b", "c d", "x y"], sources)
    lines = format_table(result).splitlines()
    assert len(lines) == 1 + 1 + 3
    assert lines[0].split() == ["length", "n", "BLEU", "chrF", "exact"]
    assert lines[1].split()[:2] == ["all", "3"]
    assert lines[1].split()[-1] == "66.7%"
    assert [line.split()[0] for line in lines[2:]] == ["1-10", "11-20", "51+"]
    assert lines[4].split()[-1] == "0.0%"
    assert len({len(line) for line in lines}) == 1  # aligned columns


def test_write_json_round_trips(tmp_path):
    result = score(["a b c d"], ["a b c d"], ["é ü"])
    path = tmp_path / "scores.json"
    write_json(result, path)
    assert json.loads(path.read_text(encoding="utf-8")) == result


def test_write_json_unwritable_path_is_user_error(tmp_path):
    result = score(["a"], ["a"], ["a"])
    with pytest.raises(UserError, match="missing"):
        write_json(result, tmp_path / "missing" / "scores.json")
