"""The HTTP server (serving/app.py) against the tiny export, in-process with TestClient."""

import concurrent.futures
import json
import subprocess
import sys

import numpy as np
import pytest
from fastapi.testclient import TestClient

from seq2seq_attn.errors import UserError
from seq2seq_attn.inference.runtime import OnnxModel
from seq2seq_attn.inference.search import pad
from seq2seq_attn.serving.app import DEFAULT_MODEL_NAME, create_app
from seq2seq_attn.serving.service import Limits
from seq2seq_attn.tokenizer import END_ID, START_ID, TokenizerPair

SCORE_ATOL = 1e-5  # batched vs single: float32 summation order, see test_serving_batching.py
ATTENTION_ATOL = 2e-6  # the server rounds attention to 6 decimals
PREDICT = f"/v1/models/{DEFAULT_MODEL_NAME}:predict"
TEXTS = ["March 3, 1999", "tuesday 4 june 2001", "12/05/1970", "1 de agosto de 1964"]
LIMITS = Limits(max_body_bytes=4096, max_texts=4, max_text_chars=200, max_source_tokens=40)


@pytest.fixture(scope="module")
def export_dir(tiny_export):
    return tiny_export[0]


@pytest.fixture(scope="module")
def tokenizers(export_dir):
    return TokenizerPair.load(export_dir / "tokenizer")


@pytest.fixture(scope="module")
def client(export_dir):
    with TestClient(create_app(export_dir, limits=LIMITS, batch_timeout_ms=2)) as c:
        yield c


def error_of(response, status):
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["code"], str)
    return body


def test_server_does_not_import_tensorflow():
    code = (
        "import sys\n"
        "import seq2seq_attn.serving.app, seq2seq_attn.serving.server\n"
        "import seq2seq_attn.inference.runtime, seq2seq_attn.inference.search\n"
        "heavy = ('seq2seq_attn.model', 'seq2seq_attn.training', 'seq2seq_attn.graph_tokenizer')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')"
        " or m in heavy]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_health_ready_status(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    status = client.get(f"/v1/models/{DEFAULT_MODEL_NAME}").json()
    assert status == {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    assert error_of(client.get("/v1/models/other"), 404)["code"] == "model_not_found"


def test_readyz_before_start(export_dir):
    app = create_app(export_dir)  # no lifespan: the worker never started
    client = TestClient(app)
    assert error_of(client.get("/readyz"), 503)["code"] == "not_ready"
    assert error_of(client.get("/healthz"), 503)["code"] == "unhealthy"  # no worker: not live
    assert error_of(client.post("/translate", json={"text": "a"}), 503)["code"] == "unavailable"


def test_translate_matches_runtime(client, export_dir, tokenizers):
    model = OnnxModel(export_dir)
    body = {"texts": TEXTS, "beam_width": 2, "return_attention": True}
    out = client.post("/translate", json=body).json()
    assert out["model"] == DEFAULT_MODEL_NAME and out["beam_width"] == 2
    for i, text in enumerate(TEXTS):
        ids = tokenizers.source.encode(text)
        alone = model.decode(
            pad([ids]), START_ID, END_ID, beam_width=2, max_length=2 * len(ids) + 10
        )
        tokens = alone["tokens"][0]
        n = (
            int(np.flatnonzero(tokens == END_ID)[0]) + 1
            if (tokens == END_ID).any()
            else len(tokens)
        )
        assert out["translations"][i] == tokenizers.target.decode(tokens)
        assert out["target_tokens"][i] == tokenizers.target.id_to_token(tokens[:n])
        assert out["source_tokens"][i] == tokenizers.source.id_to_token(ids)
        np.testing.assert_allclose(out["scores"][i], alone["scores"][0], atol=SCORE_ATOL)
        attention = np.array(out["attention"][i])
        assert attention.shape == (n, len(ids))
        np.testing.assert_allclose(attention, alone["attention"][0, :n], atol=ATTENTION_ATOL)
        np.testing.assert_allclose(attention.sum(-1), 1.0, atol=1e-4)


@pytest.mark.parametrize("beam_width", [1, 2])
def test_alignment_and_scores_as_the_library_gives_them(client, tiny_run, beam_width):
    from seq2seq_attn.alignment import parse_pharaoh
    from seq2seq_attn.translator import Translator

    body = {"texts": TEXTS, "beam_width": beam_width, "alignment": "hard", "scores": True}
    out = client.post("/translate", json=body | {"n_best": beam_width}).json()
    library = Translator.load(tiny_run).translate(
        TEXTS, beam_width, alignment="hard", scores=True, n_best=beam_width
    )
    for i, (text, expected) in enumerate(zip(TEXTS, library, strict=True)):
        assert out["translations"][i] == expected.text
        assert out["source_words"][i] == text.split() == expected.alignment.source_words
        assert out["target_words"][i] == expected.text.split()
        pairs = parse_pharaoh(out["alignment"][i])
        assert [t for _, t in pairs] == list(range(len(out["target_words"][i])))
        assert all(0 <= s < len(text.split()) for s, _ in pairs)
        assert out["alignment"][i] == expected.alignment.pharaoh()
        tokens = out["token_scores"][i]  # no length penalty: they sum to the score
        assert sum(tokens) == pytest.approx(out["scores"][i], abs=SCORE_ATOL)
        assert out["sentence_scores"][i] == pytest.approx(sum(tokens) / len(tokens))
        np.testing.assert_allclose(tokens, expected.scores.tokens, atol=1e-4)
        np.testing.assert_allclose(out["word_scores"][i], expected.scores.words, atol=1e-4)
        for hypothesis, same in zip(out["nbest"][i], expected.nbest, strict=True):
            assert hypothesis["alignment"] == same.alignment.pharaoh()
            assert hypothesis["sentence_score"] == pytest.approx(same.scores.sentence, abs=1e-4)
    body = {"text": TEXTS[1], "beam_width": 1, "alignment": "soft"}  # on greedy.onnx
    soft = client.post("/translate", json=body).json()
    expected = Translator.load(tiny_run).translate(TEXTS[1], alignment="soft")[0].alignment.soft
    np.testing.assert_allclose(soft["alignment"][0], expected, atol=1e-4)
    assert (
        "sentence_scores" not in soft
        and "alignment" not in client.post("/translate", json={"text": TEXTS[1]}).json()
    )


def test_translate_single_text_defaults(client, export_dir):
    manifest = json.loads((export_dir / "manifest.json").read_text())
    out = client.post("/translate", json={"text": TEXTS[0]}).json()
    assert out["beam_width"] == manifest["beam_width"]
    assert len(out["translations"]) == len(out["scores"]) == 1
    assert "attention" not in out and "source_tokens" not in out
    greedy = client.post("/translate", json={"text": TEXTS[0], "beam_width": 1, "max_length": 1})
    assert len(greedy.json()["translations"]) == 1


def test_predict_row_and_columnar(client):
    row = client.post(PREDICT, json={"instances": [TEXTS[0], {"text": TEXTS[1]}]})
    predictions = row.json()["predictions"]
    assert [sorted(p) for p in predictions] == [["scores", "tokens", "translation"]] * 2
    assert all(len(p["tokens"]) >= 1 for p in predictions)
    columnar = client.post(PREDICT, json={"inputs": {"text": TEXTS[:2]}}).json()["outputs"]
    assert columnar["translation"] == [p["translation"] for p in predictions]
    assert columnar["tokens"] == [p["tokens"] for p in predictions]
    listed = client.post(PREDICT, json={"inputs": TEXTS[:2], "signature_name": "serving_default"})
    assert listed.json()["outputs"] == columnar
    versioned = client.post(
        f"/v1/models/{DEFAULT_MODEL_NAME}/versions/1:predict", json={"inputs": TEXTS[:2]}
    )
    assert versioned.json()["outputs"] == columnar
    same = client.post("/translate", json={"texts": TEXTS[:2]}).json()
    assert same["translations"] == columnar["translation"]  # both use the export's beam width


BAD_REQUESTS = [
    ("/translate", {"text": ""}, 422, "empty_text"),
    ("/translate", {"text": "   \n"}, 422, "empty_text"),
    ("/translate", {"texts": []}, 422, "no_texts"),
    ("/translate", {"texts": ["a", ""]}, 422, "empty_text"),
    ("/translate", {"text": 5}, 422, "invalid_request"),
    ("/translate", {"text": ["a"]}, 422, "invalid_request"),
    ("/translate", {"texts": "a"}, 422, "invalid_request"),
    ("/translate", {"texts": ["a", 3]}, 422, "invalid_request"),
    ("/translate", {"text": "a", "texts": ["b"]}, 422, "invalid_request"),
    ("/translate", {}, 422, "invalid_request"),
    ("/translate", [], 422, "invalid_request"),
    ("/translate", "a", 422, "invalid_request"),
    ("/translate", None, 422, "invalid_request"),
    ("/translate", {"text": "a", "beam": 2}, 422, "invalid_request"),
    ("/translate", {"text": "a", "beam_width": 0}, 422, "bad_beam_width"),
    ("/translate", {"text": "a", "beam_width": 9}, 422, "bad_beam_width"),
    ("/translate", {"text": "a", "beam_width": -1}, 422, "bad_beam_width"),
    ("/translate", {"text": "a", "beam_width": 10**40}, 422, "bad_beam_width"),
    ("/translate", {"text": "a", "beam_width": "2"}, 422, "invalid_request"),
    ("/translate", {"text": "a", "beam_width": 2.5}, 422, "invalid_request"),  # 2.0 is an int
    ("/translate", {"text": "a", "beam_width": True}, 422, "invalid_request"),
    ("/translate", {"text": "a", "max_length": 0}, 422, "bad_max_length"),
    ("/translate", {"text": "a", "max_length": 100000}, 422, "bad_max_length"),
    ("/translate", {"text": "a", "return_attention": "yes"}, 422, "invalid_request"),
    ("/translate", {"texts": ["a"] * 5}, 422, "too_many_texts"),
    ("/translate", {"text": "a" * 201}, 422, "text_too_long"),
    ("/translate", {"text": " ".join(["7"] * 60)}, 422, "text_too_long"),
    (PREDICT, {"instances": [""]}, 422, "empty_text"),
    (PREDICT, {"instances": [1]}, 422, "invalid_request"),
    (PREDICT, {"instances": [{"txt": "a"}]}, 422, "invalid_request"),
    (PREDICT, {"instances": ["a"], "inputs": ["a"]}, 422, "invalid_request"),
    (PREDICT, {}, 422, "invalid_request"),
    (PREDICT, {"instances": ["a"], "signature_name": "greedy"}, 400, "unknown_signature"),
    (PREDICT, {"instances": ["a"] * 5}, 422, "too_many_texts"),
    ("/v1/models/nope:predict", {"instances": ["a"]}, 404, "model_not_found"),
    (f"/v1/models/{DEFAULT_MODEL_NAME}/versions/7:predict", {"inputs": ["a"]}, 404, None),
]


@pytest.mark.parametrize("path, body, status, code", BAD_REQUESTS)
def test_bad_requests_are_4xx_with_json_error(client, path, body, status, code):
    content = json.dumps(body).encode()
    body = error_of(client.post(path, content=content), status)
    if code:
        assert body["code"] == code
    assert client.post("/translate", json={"text": TEXTS[0]}).status_code == 200


@pytest.mark.parametrize(
    "content, status, code",
    [
        (b'{"text": "\xff\xfe"}', 400, "invalid_utf8"),
        (b'{"text": "a"', 400, "invalid_json"),
        (b"text=hello", 400, "invalid_json"),
        (b"", 422, "missing_body"),
        (b'{"text": "' + b"a" * 5000 + b'"}', 413, "body_too_large"),
        (b'{"text": NaN}', 422, "invalid_request"),
    ],
)
def test_malformed_bodies(client, content, status, code):
    headers = {"Content-Type": "application/x-www-form-urlencoded"}  # read as JSON anyway
    assert (
        error_of(client.post("/translate", content=content, headers=headers), status)["code"]
        == code
    )
    assert client.post("/translate", json={"text": TEXTS[0]}).status_code == 200


def test_unknown_paths_and_methods(client):
    assert error_of(client.get("/nope"), 404)["code"] == "not_found"
    assert error_of(client.get("/translate"), 405)["code"] == "method_not_allowed"
    assert error_of(client.post(f"/v1/models/{DEFAULT_MODEL_NAME}"), 405)["code"]


def test_surrogates_and_odd_unicode_are_fine(client):
    text = "\ud800 \u200d 🙂 \x00 ok"  # json.dumps escapes the lone surrogate
    response = client.post(
        "/translate", content=json.dumps({"text": text, "return_attention": True})
    )
    assert response.status_code == 200
    assert "[UNK]" in response.json()["source_tokens"][0]


def test_metrics(client):
    client.post("/translate", json={"text": TEXTS[0]})
    client.post("/translate", json={"text": ""})
    text = client.get("/metrics").text
    assert 'seq2seq_requests_total{endpoint="/translate",method="POST",status="200"}' in text
    assert 'seq2seq_errors_total{endpoint="/translate",status="422"}' in text
    assert "seq2seq_request_duration_seconds_bucket" in text
    assert "seq2seq_batch_size_bucket" in text
    assert "seq2seq_queue_depth" in text
    client.get("/no/such/path")
    assert 'endpoint="other"' in client.get("/metrics").text


def test_openapi_and_page(client):
    spec = client.get("/openapi.json").json()
    for path in [PREDICT.replace(DEFAULT_MODEL_NAME, "{name}"), "/translate", "/v1/models/{name}"]:
        assert path in spec["paths"]
    assert {"/healthz", "/readyz", "/metrics"} <= set(spec["paths"])
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert 'src="/static/app.js"' in page.text and "http" not in page.text.replace("http-equiv", "")
    script = client.get("/static/app.js").text
    assert "/translate" in script and "http://" not in script and "https://" not in script
    assert client.get("/config.json").json()["model"] == DEFAULT_MODEL_NAME


def test_concurrent_requests_are_batched_and_equal_single(export_dir):
    """Many concurrent requests: batches form, and every answer equals the one-by-one answer."""
    app = create_app(export_dir, max_batch_size=8, batch_timeout_ms=50)
    requests = [
        {"text": text, "beam_width": beam, "return_attention": True, "max_length": length}
        for text in TEXTS
        for beam in (1, 3)
        for length in (2, 30)
    ]
    with TestClient(app) as c:
        single = [c.post("/translate", json=r).json() for r in requests]
        with concurrent.futures.ThreadPoolExecutor(len(requests)) as pool:
            together = list(pool.map(lambda r: c.post("/translate", json=r).json(), requests))
        metrics = c.get("/metrics").text
    for a, b in zip(single, together, strict=True):
        assert a["translations"] == b["translations"]
        assert a["target_tokens"] == b["target_tokens"]
        np.testing.assert_allclose(a["scores"], b["scores"], atol=SCORE_ATOL)
        np.testing.assert_allclose(a["attention"][0], b["attention"][0], atol=ATTENTION_ATOL)
    batches = _sample(metrics, "seq2seq_batch_size_count")
    singles = _sample(metrics, 'seq2seq_batch_size_bucket{le="1.0"}')
    assert singles < batches  # some batches held more than one text


def _sample(metrics, name):
    """The value of one sample line of the Prometheus text format."""
    return next(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith(name))


def test_tflite_backend(export_dir):
    body = {"texts": TEXTS, "beam_width": 1}
    words = {"alignment": "hard", "scores": True}  # on the host search over each runtime
    with TestClient(create_app(export_dir, backend="tflite")) as c:
        tflite, tflite_words = (c.post("/translate", json=body | w).json() for w in ({}, words))
    with TestClient(create_app(export_dir)) as c:
        onnx, onnx_words = (c.post("/translate", json=body | w).json() for w in ({}, words))
    assert tflite["translations"] == onnx["translations"]
    np.testing.assert_allclose(tflite["scores"], onnx["scores"], atol=1e-4)
    assert tflite_words["alignment"] == onnx_words["alignment"]
    for a, b in zip(tflite_words["token_scores"], onnx_words["token_scores"], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_create_app_user_errors(export_dir, tmp_path):
    with pytest.raises(UserError, match="backend"):
        create_app(export_dir, backend="torch")
    with pytest.raises(UserError, match="not found"):
        create_app(tmp_path / "missing")
    with pytest.raises(UserError, match="manifest.json"):
        create_app(tmp_path)


def test_serve_checks_arguments(export_dir):
    from seq2seq_attn.serving.server import serve

    with pytest.raises(UserError, match="port"):
        serve(export_dir, port=70000)
    with pytest.raises(UserError, match="batch size"):
        serve(export_dir, max_batch_size=0)


def test_tf_serving_config_names_this_model():
    from pathlib import Path

    config = (Path(__file__).parents[1] / "serving" / "tfserving" / "models.config").read_text()
    assert f'name: "{DEFAULT_MODEL_NAME}"' in config
    assert f'base_path: "/models/{DEFAULT_MODEL_NAME}"' in config
    assert 'model_platform: "tensorflow"' in config
    assert config.count("{") == config.count("}")
