"""/translate with the search options: n-best, length rule, no-repeat-ngram, sampling, 422s."""

import numpy as np
import pytest
from fastapi.testclient import TestClient

from seq2seq_attn.inference.runtime import OnnxModel
from seq2seq_attn.inference.search import decode_batch, pad
from seq2seq_attn.interface import DecodeOptions, trim_after_end
from seq2seq_attn.serving.app import create_app
from seq2seq_attn.serving.service import Limits
from seq2seq_attn.tokenizer import END_ID, START_ID, TokenizerPair

SCORE_ATOL = 1e-5  # batched vs single: float32 summation order, see test_serving_batching.py
TEXTS = ["March 3, 1999", "tuesday 4 june 2001", "12/05/1970", "1 de agosto de 1964"]
OLD_KEYS = {"model", "beam_width", "translations", "scores"}


@pytest.fixture(scope="module")
def export_dir(tiny_export):
    return tiny_export[0]


@pytest.fixture(scope="module")
def tokenizers(export_dir):
    return TokenizerPair.load(export_dir / "tokenizer")


@pytest.fixture(scope="module")
def client(export_dir):
    limits = Limits(max_texts=4, max_source_tokens=40)
    with TestClient(create_app(export_dir, limits=limits, batch_timeout_ms=2)) as c:
        yield c


class LongOutputs(OnnxModel):
    """The tiny model ends at once; lowering [END] and its runner-up gives long outputs."""

    def step(self, *args, **kwargs):
        logits, states, weights = super().step(*args, **kwargs)
        logits = logits.copy()
        logits[:, END_ID] -= 2.0
        logits[:, END_ID + 1] -= 2.0
        return logits, states, weights


def alone(model, tokenizers, text, **kwargs):
    """One text decoded alone by the runtime: the reference for every batched answer."""
    ids = tokenizers.source.encode(text)
    kwargs.setdefault("max_length", 2 * len(ids) + 10)
    return model.decode(pad([ids]), START_ID, END_ID, **kwargs)


def test_old_fields_unchanged_without_options(client):
    out = client.post("/translate", json={"texts": TEXTS[:2]}).json()
    assert set(out) == OLD_KEYS


def test_n_best_list_per_text(client, export_dir, tokenizers):
    model = OnnxModel(export_dir)
    out = client.post("/translate", json={"texts": TEXTS, "beam_width": 3, "n_best": 3}).json()
    assert set(out) == OLD_KEYS | {"nbest"} and len(out["nbest"]) == len(TEXTS)
    for i, text in enumerate(TEXTS):
        hypotheses = out["nbest"][i]
        assert len(hypotheses) == 3
        scores = [h["score"] for h in hypotheses]
        assert scores == sorted(scores, reverse=True)
        assert hypotheses[0]["translation"] == out["translations"][i]
        assert hypotheses[0]["score"] == out["scores"][i]
        reference = alone(model, tokenizers, text, beam_width=3, n_best=3)
        for h, tokens, score in zip(
            hypotheses, reference["nbest_tokens"][0], reference["nbest_scores"][0], strict=True
        ):
            assert h["translation"] == tokenizers.target.decode(trim_after_end(tokens, END_ID))
            np.testing.assert_allclose(h["score"], score, atol=SCORE_ATOL)


def test_length_rule_and_no_repeat_ngram_match_the_runtime(client, export_dir, tokenizers):
    model = LongOutputs(export_dir)
    service = client.app.state.service
    service.model, original = model, service.model
    try:
        body = {"texts": TEXTS, "beam_width": 2, "no_repeat_ngram": 2}
        body.update(max_length_ratio=0.5, max_length_offset=3)
        out = client.post("/translate", json=body).json()
    finally:
        service.model = original
    for i, text in enumerate(TEXTS):
        n = len(tokenizers.source.encode(text))
        reference = alone(
            model,
            tokenizers,
            text,
            beam_width=2,
            no_repeat_ngram=2,
            max_length=int(0.5 * n + 3),
        )
        tokens = trim_after_end(reference["tokens"][0], END_ID)
        assert len(tokens) <= int(0.5 * n + 3)
        assert out["translations"][i] == tokenizers.target.decode(tokens)
        np.testing.assert_allclose(out["scores"][i], reference["scores"][0], atol=SCORE_ATOL)


def test_sampling_is_reproducible_per_text(client):
    body = {"texts": TEXTS, "top_p": 0.9, "temperature": 1.5, "seed": 12}
    first = client.post("/translate", json=body).json()
    assert first["beam_width"] == 1 and first["seed"] == 12  # sampling defaults to beam 1
    assert client.post("/translate", json=body).json() == first
    for i, text in enumerate(TEXTS):  # alone, the same: batch mates change nothing
        single = client.post("/translate", json={**body, "texts": [text]}).json()
        assert single["translations"] == [first["translations"][i]]
    unseeded = client.post("/translate", json={"text": TEXTS[0], "top_k": 3}).json()
    again = client.post("/translate", json={"text": TEXTS[0], "top_k": 3, "seed": unseeded["seed"]})
    assert again.json()["translations"] == unseeded["translations"]


def test_sampled_batches_equal_single_decodes(export_dir, tokenizers):
    """`decode_batch` with sampling: each row equals that text alone, runaway rows included."""
    model = LongOutputs(export_dir)
    options = DecodeOptions(top_k=5, temperature=1.3, seed=3, no_repeat_ngram=3)
    sources = [tokenizers.source.encode(t) for t in TEXTS]
    max_lengths = [12, 3, 20, 7]

    def decode_fn(ids, opts, max_length):
        assert opts is options
        kwargs = opts.search_kwargs()
        return model.decode(ids, START_ID, END_ID, max_length=max_length, **kwargs)

    results = decode_batch(decode_fn, sources, options, max_lengths, END_ID)
    for ids, max_length, result in zip(sources, max_lengths, results, strict=True):
        one = decode_fn(pad([ids]), options, max_length)
        np.testing.assert_array_equal(result.tokens, trim_after_end(one["tokens"][0], END_ID))
        assert len(result.nbest) == 1 and result.nbest[0].score == result.score


@pytest.mark.parametrize(
    "extra, fragment",
    [
        ({"beam_width": 2, "n_best": 3}, "n_best=3"),
        ({"n_best": 0}, "n_best=0"),
        ({"n_best": 9}, "n_best=9"),  # over the export's default beam width
        ({"no_repeat_ngram": 0}, "no_repeat_ngram=0"),
        ({"no_repeat_ngram": -3}, "no_repeat_ngram=-3"),
        ({"top_p": 0.0}, "top_p=0.0"),
        ({"top_p": 1.5}, "top_p=1.5"),
        ({"top_p": -0.2}, "top_p=-0.2"),
        ({"top_k": 0}, "top_k=0"),
        ({"top_k": 2, "top_p": 0.5}, "top_p=0.5"),
        ({"top_k": 2, "beam_width": 3}, "beam_width=3"),
        ({"temperature": 0.5}, "temperature=0.5"),
        ({"top_k": 2, "temperature": 0.0}, "temperature"),
        ({"top_k": 2, "seed": -1}, "seed=-1"),
        ({"max_length_ratio": -1.0}, "max_length_ratio"),
        ({"max_length_ratio": 1e300}, "max_length_ratio"),
        ({"max_length_offset": -1}, "max_length_offset=-1"),
    ],
)
def test_bad_option_values_are_422(client, extra, fragment):
    response = client.post("/translate", json={"text": TEXTS[0], **extra})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "bad_option" and fragment in body["error"], body


@pytest.mark.parametrize(
    "extra",
    [
        {"top_p": "0.5"},
        {"seed": 1.5},
        {"n_best": True},
        {"no_repeat_ngram": None},
        {"alignment": "grow-diag"},
        {"alignment": None},
        {"scores": 1},
    ],
)
def test_wrong_types_are_422(client, extra):
    response = client.post("/translate", json={"text": TEXTS[0], **extra})
    assert response.status_code == 422 and response.json()["code"] == "invalid_request"


def test_scores_decode_on_the_host_search_apart_from_plain_requests(client, tokenizers):
    # The whole-greedy graph returns no token log-probs: a request with scores must not run
    # it, nor share a batch with plain requests that do.
    from seq2seq_attn.interface import max_length_for
    from seq2seq_attn.serving.service import TokenScoredOptions

    service = client.app.state.service
    ids = pad([tokenizers.source.encode(TEXTS[0])])
    length = max_length_for(ids.shape[1])
    assert service._single_graph_decodes(ids, DecodeOptions(), length)
    assert not service._single_graph_decodes(ids, TokenScoredOptions(), length)
    assert TokenScoredOptions() != DecodeOptions() and DecodeOptions() != TokenScoredOptions()
    out = client.post("/translate", json={"texts": TEXTS, "beam_width": 1, "scores": True})
    for tokens, score in zip(out.json()["token_scores"], out.json()["scores"], strict=True):
        assert sum(tokens) == pytest.approx(score, abs=SCORE_ATOL)
