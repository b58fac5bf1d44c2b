"""Search-option parity on a real small export: graph `generate` against the host search."""

import pytest

from seq2seq_attn.errors import ParityError
from seq2seq_attn.export.search_parity import (
    FREQ_ATOL,
    SCORE_ATOL,
    check_options,
    check_sampling,
    search_failures,
    validate_search,
)
from seq2seq_attn.inference.runtime import OnnxModel
from seq2seq_attn.translator import Translator


class LongOutputs(OnnxModel):
    """The tiny model ends at once; lowering [END] and its runner-up gives long outputs."""

    def __init__(self, directory, end_id, shift=2.0):
        super().__init__(directory)
        self.end_id, self.shift = end_id, shift

    def step(self, *args, **kwargs):
        logits, states, weights = super().step(*args, **kwargs)
        logits = logits.copy()
        logits[:, [self.end_id, self.end_id + 1]] -= self.shift
        return logits, states, weights


@pytest.fixture(scope="module")
def setup(tiny_run, tiny_export):
    translator = Translator.load(tiny_run)
    texts = ["March 3, 1999", "tuesday 4 june 2001", "12/05/1970", "1 de agosto de 1964", "5"]
    encode = translator.tokenizers.source.encode_batch
    batches = [encode(texts[:3]), encode(texts[3:])]  # mixed lengths, padded
    return translator.model, OnnxModel(tiny_export[0]), batches


def test_graph_and_host_agree_on_every_deterministic_option(setup):
    model, runtime, batches = setup
    result = validate_search(model, runtime, batches)
    assert all(v == 1.0 for k, v in result.items() if k.endswith("agreement")), result
    assert result["max_abs_score_diff"] <= SCORE_ATOL
    assert result["graph_reproducible"] == result["host_reproducible"] == 1.0
    assert max(result["max_abs_freq_diff_graph"], result["max_abs_freq_diff_host"]) < FREQ_ATOL
    assert result["filtered_draws"] == 0


def test_a_changed_runtime_fails_parity(setup, tiny_export):
    """A runtime whose logits differ (as a broken export would) is caught, and named."""
    model, _, batches = setup
    shifted = LongOutputs(tiny_export[0], model.end_id)
    result = check_options(model, shifted, batches[0])
    failures = search_failures(result)
    assert failures and any("agreement" in f for f in failures), result
    with pytest.raises(ParityError, match="search options"):
        validate_search(model, shifted, batches)


def test_sampling_check_catches_a_biased_sampler(setup, monkeypatch):
    model, runtime, batches = setup
    from seq2seq_attn.inference import search as host_search

    real = host_search.sample_tokens
    monkeypatch.setattr(  # a sampler that ignores the noise: always the arg-max
        host_search,
        "sample_tokens",
        lambda logits, noise, *args, **kw: real(logits, 0.0 * noise, *args, **kw),
    )
    flat = dict(top_k=5, temperature=100.0)  # five tokens of nearly 1/5 each
    result = check_sampling(model, runtime, batches[0], draws=2000, options=flat)
    assert result["max_abs_freq_diff_host"] > 0.3, result  # the arg-max every time: 1 - ~1/5
    assert result["max_abs_freq_diff_graph"] < FREQ_ATOL
    assert any("max_abs_freq_diff_host" in f for f in search_failures(result))


def test_graph_draws_in_chunks_are_the_same_draws():
    import numpy as np

    from seq2seq_attn.export.search_parity import SAMPLE, _graph_draws

    logits = np.random.default_rng(3).normal(size=50).astype("float32")
    whole = _graph_draws(logits, 2500, SAMPLE, seed=7, chunk=2500)
    chunked = _graph_draws(logits, 2500, SAMPLE, seed=7, chunk=1000)  # 1000, 1000, 500
    assert chunked.shape == (2500,)
    np.testing.assert_array_equal(chunked, whole)
    assert len(np.unique(whole)) > 5  # real draws, not one token
