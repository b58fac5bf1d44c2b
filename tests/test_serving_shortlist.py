"""/translate over an export with a lexical shortlist (issue 34): by default each text
decodes over its own candidates (the shortlist graphs where `shortlist.columns_pay`: one
row a step and a union at most `shortlist.MAX_SHARE` of the vocabulary, else the full step
masked per text);
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

    def shortlist_columns(self, source_ids, beam_width=1):
        self.calls.append(("shortlist_columns", len(source_ids)))
        return super().shortlist_columns(source_ids, beam_width)

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
        monkeypatch.setattr(shortlist, "MAX_ROWS", 100)  # (3 texts x 3 beams a step)
        model.calls.clear()
        over = translate(client, **body)
        assert over["translations"] == full["translations"]
        assert all(used and ROWS not in used for name, used in model.calls if name == "decode")
        monkeypatch.setattr(shortlist, "MAX_SHARE", 0.5)
        monkeypatch.setattr(shortlist, "MAX_ROWS", 1)
    assert {name for name, _ in model.calls} == {"shortlist_columns", "decode"}  # beam 3
    monkeypatch.setattr(shortlist, "MAX_SHARE", 1.0)
    monkeypatch.setattr(shortlist, "MAX_ROWS", 100)
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


def test_only_steps_of_at_most_max_rows_take_the_gathered_columns(served, monkeypatch):
    """More texts x beams a step than `shortlist.MAX_ROWS`: the full step masked per text even
    where the union is small (onnxruntime packs the run-time columns again every step,
    decision 0040); up to it, the columns (the single greedy graph for plain greedy)."""
    client, model = served
    monkeypatch.setattr(shortlist, "MAX_SHARE", 1.0)  # every union is small enough
    monkeypatch.setattr(shortlist, "MAX_ROWS", 2)
    full = translate(client, full_vocabulary=True, beam_width=1, no_repeat_ngram=2)
    for texts, body, columns in (
        (TEXTS, {"beam_width": 1, "no_repeat_ngram": 2}, False),  # 3 rows
        (TEXTS[:1], {"beam_width": 3}, False),  # 3 rows
        (TEXTS[:2], {"beam_width": 1, "no_repeat_ngram": 2}, True),  # 2 rows
        (TEXTS[:1], {"beam_width": 2}, True),  # 2 rows
    ):
        model.calls.clear()
        response = client.post("/translate", json={"texts": texts, **body})
        assert response.status_code == 200, response.text
        used = [u for name, u in model.calls if name == "decode"]
        assert used and all(("shortlist_kernel" in u) == columns for u in used), body
        assert all(ROWS in u for u in used) != columns
    model.calls.clear()
    translate(client, beam_width=1)  # plain greedy, 3 texts: over MAX_ROWS, no single graph
    assert ("greedy_graph", True) not in model.calls
    got = translate(client, beam_width=1, no_repeat_ngram=2)
    assert got["translations"] == full["translations"]  # the tiny run: every piece a candidate
