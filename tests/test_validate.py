"""The parity rules of `seq2seq_attn.export.validate`: when a token difference is a near tie
a runtime within tolerance may take, and when it is a failure; on hand-made decodes and on a
flat model run through a runtime with noisy logits."""

import keras
import numpy as np
import pytest

from seq2seq_attn import Seq2SeqAttention
from seq2seq_attn.export.signatures import ExportModule
from seq2seq_attn.export.validate import (
    LOGITS_ATOL,
    Reference,
    _first_difference,
    _top2_gap,
    check_step_runtime,
    combine,
    float_failures,
    host_greedy_and_logits,
)
from seq2seq_attn.inference.runtime import _StepModel

END = 3


def reference(greedy, beam, logits):
    """A `Reference` holding given Keras decodes (cut after [END]) and step logits, no model."""
    ref = object.__new__(Reference)
    ref.end_id, ref._spill = END, None
    ref.greedy, ref.beam, ref._logits = greedy, beam, np.asarray(logits, np.float32)
    ref.greedy_margins = _top2_gap(ref._logits)  # what __init__ keeps
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


class NoisyRuntime(_StepModel):
    """A runtime of `module` whose step logits carry uniform noise of `amplitude`."""

    def __init__(self, module, amplitude, seed=0):
        self.module, self.amplitude = module, amplitude
        self.state_names = module.state_names
        self.rng = np.random.default_rng(seed)
        self.steps = 0

    def _run(self, graph, inputs):
        if graph == "decode_step":
            self.steps += 1
            args = [inputs["prev_tokens"], *(inputs[n] for n in self.state_names)]
            args += [inputs["memory"], inputs["projected_keys"], inputs["mask"]]
            out = {k: v.numpy() for k, v in self.module.decode_step(*args).items()}
            noise = self.rng.uniform(-self.amplitude, self.amplitude, out["logits"].shape)
            out["logits"] = out["logits"] + noise.astype(np.float32)
            return out
        return {k: v.numpy() for k, v in getattr(self.module, graph)(**inputs).items()}


@pytest.fixture(scope="module")
def flat_model():
    """An untrained model whose output layer is scaled down: logits within ~1e-4 of each
    other, so a runtime within `LOGITS_ATOL` can pick other tokens at almost every step."""
    keras.utils.set_random_seed(5)
    model = Seq2SeqAttention(40, 24, embedding_dim=8, units=16, attention_units=8)
    model.build()
    layer = model.decoder_cell.output_layer
    layer.kernel.assign(layer.kernel * 1e-3)
    return model


def test_runtime_within_tolerance_on_a_flat_model_fails_only_on_no_tie(flat_model):
    """The hard case behind near ties: noise below `LOGITS_ATOL` changes many decodes of a
    flat model; every change must be a tie, and noise above it must fail."""
    module = ExportModule(flat_model, beam_width=4)
    ids = np.random.default_rng(1).integers(4, 40, size=(12, 6)).astype(np.int32)
    reference = Reference(flat_model, ids)
    result, _ = check_step_runtime(reference, NoisyRuntime(module, 0.5 * LOGITS_ATOL))
    assert result["max_abs_logit_diff"] <= LOGITS_ATOL
    assert result["greedy_agreement"] < 1 and result["beam4_agreement"] < 1  # not vacuous
    assert result["greedy_ties"] > 0 and result["beam4_ties"] > 0
    assert float_failures("noisy", result) == []
    result, _ = check_step_runtime(reference, NoisyRuntime(module, 20 * LOGITS_ATOL))
    failures = float_failures("noisy", result)
    assert failures and "logit diff" in failures[0]


def test_host_greedy_logits_are_reused_only_on_the_keras_trajectory():
    """A runtime that decodes the Keras trajectory gives the replay's logits from its own
    steps (no second pass); one that leaves it is replayed along the Keras tokens."""
    keras.utils.set_random_seed(6)
    model = Seq2SeqAttention(40, 24, embedding_dim=8, units=16, attention_units=8)
    model.build()
    module = ExportModule(model, beam_width=4)
    ids = np.random.default_rng(2).integers(4, 40, size=(6, 5)).astype(np.int32)
    reference = Reference(model, ids)
    steps = reference.trajectory.shape[1]
    same = NoisyRuntime(module, 0.0)
    tokens, logits = host_greedy_and_logits(reference, same)
    np.testing.assert_array_equal(tokens, reference.trajectory)
    assert same.steps == steps  # the decode only
    np.testing.assert_allclose(logits, reference.logits, atol=1e-5)
    noisy = NoisyRuntime(module, 10.0)
    tokens, logits = host_greedy_and_logits(reference, noisy)
    assert not np.array_equal(tokens, reference.trajectory)
    assert noisy.steps == tokens.shape[1] + steps  # the decode, then the replay
    assert logits.shape == reference.logits.shape
    assert np.abs(logits - reference.logits).max() > 1.0
