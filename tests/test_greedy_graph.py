"""`greedy.onnx` joined from the encoder and step graphs: the host search's twin, in one graph."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

from seq2seq_attn.export.greedy_graph import _in_order, greedy_onnx
from seq2seq_attn.inference.runtime import OnnxModel
from seq2seq_attn.interface import MAX_LENGTH_OFFSET, MAX_LENGTH_RATIO


@pytest.fixture(scope="module")
def export_dir(tiny_export):
    return tiny_export[0]


def _source_batch(rng, vocab=20, rows=6, length=9):
    ids = rng.integers(4, vocab, (rows, length)).astype(np.int32)
    for row, pad in enumerate([0, 1, 3, 5, 8, 2][:rows]):  # mixed lengths, padding last
        ids[row, length - pad :] = 0
    return ids


def _composed(export_dir, start_id, end_id):
    encoder = onnx.load(str(export_dir / "encoder.onnx"))
    step = onnx.load(str(export_dir / "decoder_step.onnx"))
    model = greedy_onnx(encoder, step, start_id, end_id)
    onnx.checker.check_model(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return lambda ids: dict(zip(names, session.run(None, {"source_ids": ids}), strict=True))


@pytest.mark.parametrize("never_ends", [False, True])
def test_the_graph_decodes_as_the_host_search_over_the_same_step(export_dir, never_ends):
    runtime = OnnxModel(export_dir)
    start, end = 2, (-1 if never_ends else 3)  # -1: no row ever ends, every decode runs out
    ids = _source_batch(np.random.default_rng(4))
    got = _composed(export_dir, start, end)(ids)
    host = runtime.decode(ids, start, end)
    np.testing.assert_array_equal(got["tokens"], host["tokens"])
    np.testing.assert_allclose(got["scores"], host["scores"], atol=1e-5)
    np.testing.assert_allclose(got["attention"], host["attention"], atol=1e-6)
    if never_ends:
        assert got["tokens"].shape[1] == MAX_LENGTH_RATIO * ids.shape[1] + MAX_LENGTH_OFFSET
    else:  # after [END]: padding tokens and zero attention rows
        ended = got["tokens"] == end
        after = np.cumsum(ended, axis=1) - ended > 0
        assert after.any() and (got["tokens"][after] == 0).all()
        assert (got["attention"][after] == 0).all()


def test_the_export_writes_the_joined_graph(export_dir):
    graph = onnx.load(str(export_dir / "greedy.onnx")).graph
    loops = [n for n in graph.node if n.op_type == "Loop"]
    assert len(loops) == 1  # the encoder is the native one: no Loop of its own
    assert [i.name for i in graph.input] == ["source_ids"]
    assert sorted(o.name for o in graph.output) == ["attention", "scores", "tokens"]


def test_nodes_come_after_what_feeds_them():
    node = helper.make_node
    nodes = [node("Relu", ["b"], ["c"]), node("Identity", ["a"], ["b"]), node("Neg", ["c"], ["d"])]
    assert [n.output[0] for n in _in_order(nodes)] == ["b", "c", "d"]
