"""/translate with per-text target prefixes: `{"text": ..., "target_prefix": ...}` items."""

import numpy as np
import pytest
from fastapi.testclient import TestClient

from seq2seq_attn.serving.app import create_app
from seq2seq_attn.serving.service import Limits

SCORE_ATOL = 1e-4  # the Keras graph against the ONNX step graph on the host, float32
TEXTS = ["3 March 2021", "december 25, 1999", "1 jan 2000", "12/05/1970"]
# a whole-looking prefix, one ending mid-number, one ending with a space, none
PREFIXES = ["1999-", "20", "2021 ", ""]


@pytest.fixture(scope="module")
def client(tiny_export):
    limits = Limits(max_texts=4, max_text_chars=40)
    with TestClient(create_app(tiny_export[0], limits=limits, batch_timeout_ms=2)) as c:
        yield c


@pytest.fixture(scope="module")
def translator(tiny_run):
    from seq2seq_attn.translator import Translator

    return Translator.load(tiny_run)


def mixed_items():
    """Plain strings and prefixed objects in one request, every prefix different."""
    return [
        text if prefix == "" else {"text": text, "target_prefix": prefix}
        for text, prefix in zip(TEXTS, PREFIXES, strict=True)
    ]


@pytest.mark.parametrize(
    "options",
    [{"beam_width": 1}, {"beam_width": 2}, {"beam_width": 3, "n_best": 2, "scores": True}],
)
def test_prefixes_equal_the_library(client, translator, options):
    body = {"texts": mixed_items(), **options}
    response = client.post("/translate", json=body)
    assert response.status_code == 200, response.text
    out = response.json()
    library = {k: v for k, v in options.items() if k != "scores"}
    expected = translator.translate(TEXTS, target_prefix=PREFIXES, **library)
    assert out["translations"] == [r.text for r in expected]
    np.testing.assert_allclose(out["scores"], [r.score for r in expected], atol=SCORE_ATOL)
    for i, prefix in enumerate(PREFIXES):
        assert out["translations"][i].startswith(prefix)
        for hypothesis, one in zip(
            out.get("nbest", [[]] * 4)[i], expected[i].nbest or [], strict=True
        ):
            assert hypothesis["translation"] == one.text and one.text.startswith(prefix)
    if options.get("scores"):  # the prefix's own pieces are scored
        sums = [sum(s) for s in out["token_scores"]]
        np.testing.assert_allclose(sums, out["scores"], atol=SCORE_ATOL)


def test_prefix_changes_the_output_and_empty_is_none(client):
    def post(items):
        return client.post("/translate", json={"texts": items, "beam_width": 1}).json()

    free, empty = post(TEXTS[:1]), post([{"text": TEXTS[0]}])
    forced = post([{"text": TEXTS[0], "target_prefix": "1999-"}])
    assert empty == free
    assert not free["translations"][0].startswith("1999-")
    assert forced["translations"][0].startswith("1999-")
    assert forced["scores"][0] < free["scores"][0]  # greedy's own choice was likelier


def test_a_text_decodes_the_same_beside_any_prefix(client):
    """Texts with different prefixes batch apart; each gives what it gives alone."""
    together = client.post("/translate", json={"texts": mixed_items()}).json()
    for i, item in enumerate(mixed_items()):
        alone = client.post("/translate", json={"texts": [item]}).json()
        assert alone["translations"][0] == together["translations"][i]


@pytest.mark.parametrize(
    "item, code",
    [
        ({"text": "3 March 2021", "target_prefix": "2" * 41}, "text_too_long"),
        ({"text": "3 March 2021", "prefix": "20"}, "invalid_request"),
        ({"target_prefix": "20"}, "invalid_request"),
        ({"text": "  ", "target_prefix": "20"}, "empty_text"),
        ({"text": "3 March 2021", "target_prefix": None}, "invalid_request"),
    ],
)
def test_bad_items_are_422(client, item, code):
    response = client.post("/translate", json={"texts": [item]})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code


def test_schema_states_one_of_string_or_prefixed_text(client):
    schemas = client.app.openapi()["components"]["schemas"]
    items = schemas["TranslateRequest"]["properties"]["texts"]["items"]
    assert [item.get("type", item.get("$ref")) for item in items["oneOf"]] == [
        "string",
        "#/components/schemas/PrefixedText",
    ]
    assert items["oneOf"][0]["maxLength"] == 40
    prefixed = schemas["PrefixedText"]
    assert prefixed["required"] == ["text"] and prefixed["additionalProperties"] is False
    assert prefixed["properties"]["target_prefix"]["maxLength"] == 40
