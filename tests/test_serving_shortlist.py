"""/translate over an export with a lexical shortlist (issue 34): by default each text
decodes over its own candidates (the shortlist graphs where the batch's union is at most
`shortlist.MAX_SHARE` of the vocabulary, else the full step masked per text);
`"full_vocabulary": true`, scores and prefixes decode over the whole vocabulary."""

import pytest
from fastapi.testclient import TestClient

from seq2seq_attn import shortlist
from seq2seq_attn.inference.runtime import ROWS, OnnxModel
from seq2seq_attn.interface import DecodeOptions
from seq2seq_attn.serving.app import create_app
from seq2seq_attn.serving.service import Limits, OverShortlist, shortlist_options

TEXTS = ["March 3, 1999", "tuesday 4 june 2001", "12/05/1970"]


class Recording(OnnxModel):
    """The export's onnxruntime model, recording which graphs each decode ran."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def greedy_graph(self, source_ids, shortlist=False):
        self.calls.append(("greedy_graph", shortlist))
        return super().greedy_graph(source_ids, shortlist=shortlist)

    def shortlist_columns(self, source_ids):
        self.calls.append(("shortlist_columns", len(source_ids)))
        return super().shortlist_columns(source_ids)

    def decode(self, *args, shortlist=False, **kwargs):
        self.calls.append(("decode", shortlist))
        return super().decode(*args, shortlist=shortlist, **kwargs)


@pytest.fixture
def served(tiny_export):
    model = Recording(tiny_export[0])
    assert model.has_shortlist  # train built the tiny run's shortlist: the export has its graphs
    app = create_app(tiny_export[0], limits=Limits(max_texts=4), batch_timeout_ms=2, model=model)
    with TestClient(app) as client:
        yield client, model


def translate(client, **body):
    response = client.post("/translate", json={"texts": TEXTS, **body})
    assert response.status_code == 200, response.text
    return response.json()


def test_full_vocabulary_or_not_the_translations_are_equal_where_candidates_cover_all(
    served, monkeypatch
):
    client, model = served
    for body in ({}, {"beam_width": 3}):
        model.calls.clear()
        full = translate(client, full_vocabulary=True, **body)
        assert model.calls and not any(used for _, used in model.calls)
        model.calls.clear()
        # The default: the shortlist. The tiny run's candidates are all 30 pieces, more than
        # half: the full step, each text's logits masked to its own candidates.
        assert translate(client, **body) == full
        assert all(ROWS in used for name, used in model.calls if name == "decode")
        monkeypatch.setattr(shortlist, "MAX_SHARE", 1.0)  # now the shortlist graphs run
        model.calls.clear()
        over = translate(client, **body)
        assert over["translations"] == full["translations"]
        assert all(used and ROWS not in used for name, used in model.calls if name == "decode")
        monkeypatch.setattr(shortlist, "MAX_SHARE", 0.5)
    assert {name for name, _ in model.calls} == {"shortlist_columns", "decode"}  # beam 3
    monkeypatch.setattr(shortlist, "MAX_SHARE", 1.0)
    for texts in (TEXTS, TEXTS[:1]):
        model.calls.clear()
        response = client.post("/translate", json={"texts": texts, "beam_width": 1})
        assert response.status_code == 200
        # greedy_shortlist.onnx; one text needs no shortlist.onnx first to size its candidates
        asked = [("shortlist_columns", len(texts))] if len(texts) > 1 else []
        assert model.calls == [*asked, ("greedy_graph", True)]
    for body in ({"scores": True}, {"texts": [{"text": TEXTS[0], "target_prefix": "1"}]}):
        model.calls.clear()
        translate(client, **body)
        assert model.calls and not any(used for _, used in model.calls), body


def test_full_vocabulary_must_be_a_boolean(served):
    client, _ = served
    response = client.post("/translate", json={"text": TEXTS[0], "full_vocabulary": "yes"})
    assert response.status_code == 422


def test_shortlist_keys_batch_apart_and_keep_their_values():
    options = DecodeOptions(beam_width=2, n_best=2)
    marked = shortlist_options(options)
    assert isinstance(marked, OverShortlist) and isinstance(marked, DecodeOptions)
    assert marked != options and marked == shortlist_options(options)
    assert (marked.beam_width, marked.n_best) == (2, 2)
    assert len({marked, options}) == 2
