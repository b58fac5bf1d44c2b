"""/translate keeps placeholders and markup: the library's outputs, a report, a switch."""

import collections

import numpy as np
import pytest
from fastapi.testclient import TestClient

from seq2seq_attn.alignment import parse_pharaoh
from seq2seq_attn.placeholders import Placeholders
from seq2seq_attn.serving.app import create_app
from seq2seq_attn.serving.service import Limits

SCORE_ATOL = 1e-4  # the Keras graph against the ONNX step graph on the host, float32
DEFAULT = Placeholders()
TEXTS = ["Due <b>3 March 2021</b>", "%1 december 25, 1999 {when}", "1 jan 2000", "{0} <br/>"]


@pytest.fixture(scope="module")
def client(tiny_export):
    with TestClient(create_app(tiny_export[0], limits=Limits(max_texts=4))) as c:
        yield c


@pytest.fixture(scope="module")
def translator(tiny_run):
    from seq2seq_attn.translator import Translator

    return Translator.load(tiny_run)


def found(text):
    return collections.Counter(text[a:b] for a, b, _ in DEFAULT.find(text))


@pytest.mark.parametrize("options", [{"beam_width": 1}, {"beam_width": 3, "n_best": 2}])
def test_server_equals_the_library(client, translator, options):
    response = client.post("/translate", json={"texts": TEXTS, "alignment": "hard", **options})
    assert response.status_code == 200, response.text
    out = response.json()
    expected = translator.translate(TEXTS, alignment="hard", **options)
    assert out["translations"] == [r.text for r in expected]
    np.testing.assert_allclose(out["scores"], [r.score for r in expected], atol=SCORE_ATOL)
    assert out["alignment"] == [r.alignment.pharaoh() for r in expected]
    reports = zip(TEXTS, out["translations"], out["placeholders"], strict=True)
    for text, translation, report in reports:
        assert found(translation) == found(text) and report["count"] == sum(found(text).values())
    assert out["translations"][3] == "{0} <br/>" and out["scores"][3] == 0.0  # only those
    assert out["placeholders"][2] == {"count": 0, "reinserted": 0, "removed": 0, "positions": []}
    for hypotheses, text in zip(out.get("nbest", []), TEXTS, strict=False):
        for h in hypotheses:
            assert found(h["translation"]) == found(text)
            assert ("placeholders" in h) == bool(found(text))
    for line, text in zip(out["alignment"], TEXTS, strict=True):  # words of the masked text
        assert all(s < len(DEFAULT.mask(text).text.split()) for s, _ in parse_pharaoh(line))


def test_placeholders_false_translates_as_sent(client, translator):
    body = {"texts": TEXTS[:3], "beam_width": 1, "placeholders": False}
    out = client.post("/translate", json=body).json()
    assert "placeholders" not in out
    expected = translator.translate(TEXTS[:3], placeholders=False)
    assert out["translations"] == [r.text for r in expected]


def test_no_placeholder_no_report_and_unchanged(client):
    body = {"texts": TEXTS[2:3], "beam_width": 1}
    on, off = (client.post("/translate", json=body | {"placeholders": p}).json() for p in (1, 0))
    assert on == off and "placeholders" not in on


def test_placeholders_with_a_target_prefix(client):
    item = {"text": "Due <b>3 March 2021</b>", "target_prefix": "20"}
    out = client.post("/translate", json={"texts": [item], "beam_width": 1}).json()
    assert out["translations"][0].startswith("20") and found(out["translations"][0]) == found(
        item["text"]
    )


def test_only_placeholders_with_every_option(client):
    body = {"text": "%s", "n_best": 2, "beam_width": 2, "scores": True, "alignment": "soft"}
    response = client.post("/translate", json=body | {"return_attention": True})
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["translations"] == ["%s"] and out["nbest"][0][0]["translation"] == "%s"
    assert out["sentence_scores"] == [0.0] and out["alignment"] == [[]]
