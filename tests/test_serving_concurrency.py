"""The server under real traffic: the shipped pretrained model's export on a loopback port, 32
concurrent clients, a realistic mix (beam widths 1-4, 1-8 texts of 1-60 words per request).

The mix comes from `benchmarks/load_test.py` (`request_mix` over the Bible test verses); every
third request asks for the full vocabulary, the others take the default, the model's lexical
shortlist. Every answer must be a 200 whose translation, tokens and score equal decoding that
text alone with the same runtime, beam width, vocabulary and default max length: a text
decodes over its own candidates whatever it is batched with.
"""

import concurrent.futures
import json
import urllib.request

import numpy as np

from seq2seq_attn.inference.runtime import OnnxModel
from seq2seq_attn.tokenizer import TokenizerPair

CLIENTS = 32
REQUESTS = 64  # two rounds of the 32 clients
SCORE_ATOL = 1e-4  # batched vs alone: float32 summation order only (see test_serving_batching)


def _post(url, body):
    request = urllib.request.Request(
        url + "/translate", json.dumps(dict(body, return_attention=True)).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.status, json.loads(response.read())


def _alone(model, tokenizers, manifest, text, beam_width, shortlist):
    """Decoding one text by itself: target token ids through [END], and the score."""
    ids = np.asarray([tokenizers.source.encode(text)], np.int32)
    special = manifest["special_ids"]
    out = model.decode(
        ids,
        special["start"],
        special["end"],
        beam_width=beam_width,
        max_length=2 * ids.shape[1] + 10,
        shortlist=shortlist,
    )
    tokens = out["tokens"][0].tolist()
    if special["end"] in tokens:
        tokens = tokens[: tokens.index(special["end"]) + 1]
    return tokens, float(out["scores"][0])


def test_32_clients_mixed_requests_equal_decoding_alone(pretrained_export, load_test):
    bodies = load_test.request_mix(load_test.bible_sources("test"), REQUESTS, seed=10)
    assert {b["beam_width"] for b in bodies} == {1, 2, 3, 4}
    assert {len(b["texts"]) for b in bodies} >= {1, 8}
    bodies = [dict(b, full_vocabulary=True) if i % 3 == 0 else b for i, b in enumerate(bodies)]
    with load_test.LocalServer(pretrained_export, "onnx") as server:
        with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
            answers = list(pool.map(lambda body: _post(server.url, body), bodies))
        metrics = urllib.request.urlopen(server.url + "/metrics", timeout=10).read().decode()
    assert [status for status, _ in answers] == [200] * len(bodies)
    batched = [line for line in metrics.splitlines() if line.startswith("seq2seq_batch_size_")]
    assert batched  # the worker decoded batches

    model = OnnxModel(pretrained_export)
    assert model.has_shortlist
    tokenizers = TokenizerPair.load(pretrained_export / "tokenizer")
    manifest = json.loads((pretrained_export / "manifest.json").read_text())
    mismatches = []
    for body, (_, answer) in zip(bodies, answers, strict=True):
        assert len(answer["translations"]) == len(body["texts"])
        for i, text in enumerate(body["texts"]):
            shortlist = not body.get("full_vocabulary", False)
            tokens, score = _alone(model, tokenizers, manifest, text, body["beam_width"], shortlist)
            got, want = answer["target_tokens"][i], tokenizers.target.id_to_token(tokens)
            if got != want or abs(answer["scores"][i] - score) > SCORE_ATOL:
                mismatches.append((text, body["beam_width"], got, want))
            assert answer["translations"][i] == tokenizers.target.decode(tokens)
    assert not mismatches, mismatches[:3]
