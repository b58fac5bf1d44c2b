"""The parity rules of `seq2seq_attn.export.validate` on hand-made decodes: when a token
difference is a near tie a runtime within tolerance may take, and when it is a failure."""

import numpy as np
from seq2seq_attn.export.validate import (
    LOGITS_ATOL,
    Reference,
    _first_difference,
    combine,
    float_failures,
)

END = 3


def reference(greedy, beam, logits):
    """A `Reference` holding given Keras decodes (cut after [END]) and step logits, no model."""
    ref = object.__new__(Reference)
    ref.end_id, ref._spill = END, None
    ref.greedy, ref.beam, ref._logits = greedy, beam, np.asarray(logits, np.float32)
    return ref


def step_logits(gaps, vocab=8):
    """Logits `(1, steps, vocab)` whose best two differ by `gaps[t]` at step t."""
    logits = np.zeros([1, len(gaps), vocab], np.float32)
    logits[0, :, 5] = 1.0
    logits[0, :, 6] = 1.0 - np.asarray(gaps, np.float32)
    return logits


def test_first_difference():
    assert _first_difference([5, 6, 3], [5, 7, 3]) == 1
    assert _first_difference([5, 6], [5, 6, 3]) is None  # a prefix: no step to blame
    assert _first_difference([], [5]) is None


def test_greedy_difference_at_a_near_tie_is_a_tie():
    ref = reference([[5, 5, 3]], [[5, 5, 3]], step_logits([0.5, 1.5 * LOGITS_ATOL, 0.5]))
    assert ref.agreement([[5, 6, 3]]) == 0.0
    assert ref.greedy_ties([[5, 6, 3]]) == 1.0  # parted where the Keras gap was 1.5e-4
    assert ref.greedy_ties([[5, 5, 3]]) == 0.0  # the same tokens are agreement, not a tie


def test_greedy_difference_at_a_clear_choice_is_not_a_tie():
    ref = reference([[5, 5, 3]], [[5, 5, 3]], step_logits([1.9 * LOGITS_ATOL, 0.5, 0.5]))
    assert ref.greedy_ties([[5, 6, 3]]) == 0.0  # step 1 had a clear winner
    assert ref.greedy_ties([[6, 5, 3]]) == 1.0  # 1.9e-4: logits 1e-4 off may swap
    assert ref.greedy_ties([[5, 5]]) == 0.0  # stopped early without a different token


def test_beam_tie_needs_a_margin_within_the_accumulated_tolerance():
    ref = reference([[5, 3]], [[5, 5, 3], [6, 3]], step_logits([0.5, 0.5, 0.5]))
    differ = [[5, 5, 3], [6, 4, 3]]  # the second sentence's beam differs
    # step 2 (1-based) may be off by 4 * 2 * LOGITS_ATOL = 8e-4
    near = np.array([[1.0, 1.0, 1.0], [1.0, 7e-4, 1.0]], np.float32)
    far = np.array([[1.0, 1.0, 1.0], [1.0, 9e-4, 1.0]], np.float32)
    assert ref.agreement(differ, "beam") == 0.5
    assert ref.beam_ties(differ, near) == 0.5
    assert ref.beam_ties(differ, far) == 0.0
    # a near tie in a sentence that agrees anyway is not counted
    assert ref.beam_ties([[5, 5, 3], [6, 3, 0]], near) == 0.0


def test_float_failures_accept_ties_and_report_the_rest():
    ok = {"max_abs_logit_diff": 2e-5, "beam4_agreement": 0.9, "beam4_ties": 0.1}
    assert float_failures("model.tflite", ok) == []
    short = {"max_abs_logit_diff": 2e-5, "beam4_agreement": 0.9, "beam4_ties": 0.05}
    assert float_failures("model.tflite", short) == [
        "model.tflite: beam4_agreement 0.900 (+ 0.050 near ties) < 1"
    ]
    bare = {"max_abs_logit_diff": 2e-5, "greedy_agreement": 0.5}
    assert float_failures("x", bare) == ["x: greedy_agreement 0.500 < 1"]


def test_combine_counts_ties_as_sentences():
    out = combine([{"beam4_ties": 0.5}, {"beam4_ties": 0.0}], [2, 6])
    assert out["beam4_ties"] == 1 / 8
