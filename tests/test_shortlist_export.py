"""The shortlist graphs of an export (issue 34): `shortlist.onnx`,
`decoder_step_shortlist.onnx` and `greedy_shortlist.onnx`, the host search and the single
graph over them, their parity check and manifest entry."""

import json

import numpy as np
import pytest
from test_shortlist_decoding import SOURCE, VOCAB, random_model

from seq2seq_attn import shortlist as sl
from seq2seq_attn.export.convert import to_onnx, write_encoder_onnx, write_greedy_onnx
from seq2seq_attn.export.signatures import SHORTLIST_SIGNATURES, ExportModule
from seq2seq_attn.export.validate import (
    BEAM_WIDTH,
    KerasDecoder,
    Reference,
    check_shortlist,
    float_failures,
)
from seq2seq_attn.inference.runtime import SHORTLIST_FILES, OnnxModel

START, END = 2, 3


def full_tokens(model):
    return model.generate(SOURCE)["tokens"].numpy()


def narrow(model):
    """A shortlist without the tokens of the model's full greedy and beam decodes of SOURCE."""
    used = [model.generate(SOURCE, beam_width=w)["tokens"].numpy() for w in (1, BEAM_WIDTH)]
    allowed = np.setdiff1d(np.arange(4, VOCAB), np.concatenate([u.ravel() for u in used]))
    top = np.random.default_rng(0).choice(allowed, size=(30, 2))
    top[[0, 2, 3]] = 0  # [PAD], [START], [END] are never aligned
    return sl.Shortlist(top, allowed[:1], VOCAB)


@pytest.fixture(scope="module", params=["untied", "tied"])
def exported(request, tmp_path_factory):
    """A random model's step graphs and shortlist graphs in onnxruntime (no full export)."""
    model = random_model(11, tie_embeddings=request.param == "tied")
    shortlist = narrow(model)
    module = ExportModule(model, shortlist=shortlist)
    out = tmp_path_factory.mktemp(request.param)
    write_encoder_onnx(module, out / "encoder.onnx")
    to_onnx(module.decode_step, out / "decoder_step.onnx")
    write_greedy_onnx(module, out)
    for signature in SHORTLIST_SIGNATURES:
        to_onnx(getattr(module, signature), out / SHORTLIST_FILES[signature])
    write_greedy_onnx(module, out, shortlist=True)
    return model, shortlist, OnnxModel(out, verify=False)


def test_shortlist_graph_gathers_the_union_and_places_each_sentences_own(exported):
    model, shortlist, runtime = exported
    candidates, rows = shortlist.candidates(SOURCE), shortlist.mask(SOURCE)
    assert len(candidates) < VOCAB and (rows.sum(axis=1) < len(candidates)).all()
    out = runtime.shortlist_output(SOURCE)
    kernel = model.decoder_cell.output_layer.kernel.numpy() if not model.tie_embeddings else None
    positions = out["shortlist_positions"]  # (batch, vocab)
    assert positions.shape == (len(SOURCE), VOCAB)
    index = np.searchsorted(candidates, np.arange(VOCAB))
    np.testing.assert_array_equal(positions, np.where(rows, index, len(candidates)))
    assert out["shortlist_kernel"].shape[1] == out["shortlist_bias"].shape[0] == len(candidates)
    if kernel is not None:
        np.testing.assert_array_equal(out["shortlist_kernel"], kernel[:, candidates])


@pytest.mark.parametrize("beam_width", [1, BEAM_WIDTH])
@pytest.mark.parametrize("share", [0.5, 0.0], ids=["columns", "masked_full_step"])
def test_host_search_over_the_shortlist_graphs_equals_keras(
    exported, beam_width, share, monkeypatch
):
    model, shortlist, runtime = exported
    monkeypatch.setattr(sl, "MAX_SHARE", share)  # 0: every union is "large", the full step
    monkeypatch.setattr(sl, "MAX_ROWS", 1000)  # the batch's rows may take the columns
    rows = shortlist.mask(SOURCE)
    keras = model.generate(SOURCE, beam_width=beam_width, candidates=rows)
    host = runtime.decode(SOURCE, START, END, beam_width=beam_width, shortlist=True)
    np.testing.assert_array_equal(host["tokens"], keras["tokens"])
    np.testing.assert_allclose(host["scores"], keras["scores"], atol=1e-4)
    for i, tokens in enumerate(host["tokens"]):
        assert np.isin(tokens, np.flatnonzero(rows[i])).all()
        length = int((SOURCE[i] != 0).sum())
        alone = runtime.decode(
            SOURCE[i : i + 1, :length], START, END, beam_width=beam_width, shortlist=True
        )["tokens"][0]
        np.testing.assert_array_equal(tokens[: len(alone)], alone)  # batch mates change nothing
    if beam_width == 1:  # and the single graph, greedy_shortlist.onnx
        graph = runtime.greedy_graph(SOURCE, shortlist=True)
        np.testing.assert_array_equal(graph["tokens"], keras["tokens"])
    full = model.generate(SOURCE, beam_width=beam_width)
    assert not np.isin(full["tokens"], shortlist.candidates(SOURCE)).all()  # it changed


@pytest.mark.parametrize("exported", ["untied"], indirect=True)
def test_parity_check_of_the_shortlist_graphs_and_its_failure_path(exported):
    model, shortlist, runtime = exported
    decoder = KerasDecoder(model)
    references = [Reference(model, SOURCE, decoder), Reference(model, SOURCE[1:], decoder)]
    result = check_shortlist(references, runtime, shortlist)
    assert result["greedy_agreement"] == result["beam4_agreement"] == 1.0
    assert result["greedy_graph_agreement"] == 1.0
    assert result["greedy_same_as_full"] == result["beam4_same_as_full"] == 0.0
    sizes = [*shortlist.mask(SOURCE).sum(1), *shortlist.mask(SOURCE[1:]).sum(1)]
    assert result["mean_candidates"] == pytest.approx(np.mean(sizes))
    assert float_failures("shortlist", result) == []

    class OffByOne:  # a runtime whose shortlist decodes differ in one sentence
        def decode(self, *args, **kwargs):
            out = runtime.decode(*args, **kwargs)
            out["tokens"][0, 0] += 1
            return out

        def greedy_graph(self, *args, **kwargs):
            out = dict(runtime.greedy_graph(*args, **kwargs))
            out["tokens"] = out["tokens"].copy()
            out["tokens"][0, 0] += 1
            return out

    broken = check_shortlist(references, OffByOne(), shortlist)
    assert broken["greedy_agreement"] == broken["beam4_agreement"] == 3 / 5
    assert broken["greedy_graph_agreement"] == 3 / 5
    assert float_failures("shortlist", broken) == [
        "shortlist: greedy_agreement 0.600 < 1",
        "shortlist: beam4_agreement 0.600 < 1",
        "shortlist: greedy_graph_agreement 0.600 < 1",
    ]


@pytest.mark.parametrize("exported", ["untied"], indirect=True)
def test_int8_graphs_decode_over_the_shortlist_too(exported, tmp_path, monkeypatch):
    """`*_int8.onnx` with the shortlist: the int8 step with float output columns (a run-time
    input, which dynamic quantization leaves as it is), joined into its own single graph."""
    from seq2seq_attn.export.convert import quantize_onnx

    model, shortlist, _ = exported
    module = ExportModule(model, shortlist=shortlist)
    out = tmp_path
    write_encoder_onnx(module, out / "encoder.onnx")
    to_onnx(module.decode_step, out / "decoder_step.onnx")
    for signature in SHORTLIST_SIGNATURES[:2]:  # shortlist.onnx, decoder_step_shortlist.onnx
        to_onnx(getattr(module, signature), out / SHORTLIST_FILES[signature])
    for name in ("encoder", "decoder_step", "decoder_step_shortlist"):
        quantize_onnx(out / f"{name}.onnx", out / f"{name}_int8.onnx")
    write_greedy_onnx(module, out, "_int8")
    assert not OnnxModel(out, quantized=True, verify=False).has_shortlist  # older exports
    write_greedy_onnx(module, out, "_int8", shortlist=True)
    int8 = OnnxModel(out, quantized=True, verify=False)
    assert int8.has_shortlist
    rows = shortlist.mask(SOURCE)
    for width in (1, BEAM_WIDTH):
        host = int8.decode(SOURCE, START, END, beam_width=width, shortlist=True)["tokens"]
        assert all(np.isin(t, np.flatnonzero(r)).all() for t, r in zip(host, rows, strict=True))
    graph = int8.greedy_graph(SOURCE, shortlist=True)["tokens"]
    monkeypatch.setattr(sl, "MAX_ROWS", 1000)  # the columns, as the single graph takes them
    host = int8.decode(SOURCE, START, END, shortlist=True)["tokens"]
    np.testing.assert_array_equal(graph, host)
    full = int8.greedy_graph(SOURCE)["tokens"]
    assert not np.array_equal(full, graph)  # the narrow shortlist changed the decode


def test_a_shortlist_decode_needs_the_shortlist_graphs(tmp_path):
    model = random_model(2)
    module = ExportModule(model)
    write_encoder_onnx(module, tmp_path / "encoder.onnx")
    to_onnx(module.decode_step, tmp_path / "decoder_step.onnx")
    write_greedy_onnx(module, tmp_path)
    runtime = OnnxModel(tmp_path, verify=False)
    assert not runtime.has_shortlist
    with pytest.raises(ValueError, match="needs an export with shortlist graphs"):
        runtime.decode(SOURCE, START, END, shortlist=True)
    with pytest.raises(ValueError, match="needs an export with shortlist graphs"):
        runtime.greedy_graph(SOURCE, shortlist=True)


def test_the_tiny_export_carries_and_checks_its_shortlist(tiny_export):
    out, report = tiny_export
    manifest = json.loads((out / "manifest.json").read_text())
    entry = manifest["shortlist"]
    assert (entry["top_k"], entry["frequent"]) == (100, 500)
    assert entry["always_ids"] == manifest["vocab_size"]["target"]  # all 30 seen in training
    assert entry["files"] == list(SHORTLIST_FILES.values())
    assert all(name in manifest["files"] for name in SHORTLIST_FILES.values())
    assert {"shortlist_output", "decode_step_shortlist"} <= set(manifest["signatures"])
    for runtime in ("onnxruntime", "litert"):
        parity = report["artifacts"][f"shortlist/{runtime}"]
        assert parity["greedy_agreement"] == parity["beam4_agreement"] == 1.0
        assert parity["greedy_graph_agreement"] == 1.0
    assert report["artifacts"]["shortlist/saved_model"]["greedy_graph_agreement"] == 1.0
    # 500 frequent pieces cover the tiny run's 30: the shortlist decode is the full one.
    assert parity["greedy_same_as_full"] == parity["beam4_same_as_full"] == 1.0
    assert parity["mean_candidates"] == manifest["vocab_size"]["target"]


def test_tflite_and_saved_model_carry_the_shortlist(tmp_path):
    """builtin ops only (the converter refuses others), and the same tokens as Keras."""
    import tensorflow as tf

    from seq2seq_attn.export.convert import (
        STEP_SIGNATURES,
        save_frozen_steps,
        save_saved_model,
        to_tflite,
    )
    from seq2seq_attn.export.validate import SavedModelGreedy
    from seq2seq_attn.inference.runtime import LiteRTModel

    model = random_model(11)
    shortlist = narrow(model)
    module = ExportModule(model, shortlist=shortlist)
    save_frozen_steps(module, tmp_path / "frozen")
    names = (*STEP_SIGNATURES, *module.shortlist_signatures)
    to_tflite(tmp_path / "frozen", tmp_path / "model.tflite", None, names)
    litert = LiteRTModel(tmp_path / "model.tflite", verify=False)
    assert litert.has_shortlist
    save_saved_model(module, tmp_path / "saved_model")
    saved = SavedModelGreedy(tf.saved_model.load(str(tmp_path / "saved_model")).signatures)
    candidates = shortlist.mask(SOURCE)
    for width in (1, BEAM_WIDTH):
        keras = model.generate(SOURCE, beam_width=width, candidates=candidates)["tokens"]
        host = litert.decode(SOURCE, START, END, beam_width=width, shortlist=True)["tokens"]
        np.testing.assert_array_equal(host, keras)
    # translate_ids over each sentence's candidates by default, its twin over the whole
    signatures = tf.saved_model.load(str(tmp_path / "saved_model")).signatures
    for name, over in (("translate_ids", candidates), ("translate_ids_full_vocabulary", None)):
        keras = model.generate(SOURCE, beam_width=BEAM_WIDTH, candidates=over)["tokens"]
        got = signatures[name](source_ids=tf.constant(SOURCE))["tokens"]
        np.testing.assert_array_equal(got, keras)
    assert not np.array_equal(
        model.generate(SOURCE, beam_width=BEAM_WIDTH)["tokens"],
        model.generate(SOURCE, beam_width=BEAM_WIDTH, candidates=candidates)["tokens"],
    )
    keras = model.generate(SOURCE, candidates=candidates)["tokens"].numpy()
    for runtime in (litert, saved):
        np.testing.assert_array_equal(runtime.greedy_graph(SOURCE, shortlist=True)["tokens"], keras)
        np.testing.assert_array_equal(
            runtime.greedy_graph(SOURCE, shortlist=False)["tokens"], full_tokens(model)
        )


def _kernel_transposes(function, kernel_shape):
    """Transpose ops of `function`'s graph (nested functions included) whose input has
    `kernel_shape`: the whole output kernel turned every call."""
    graph = function.get_concrete_function().graph
    found, seen, stack = 0, set(), [graph]
    while stack:
        g = stack.pop()
        for op in g.get_operations():
            if op.type == "Transpose" and op.inputs[0].shape.as_list() == list(kernel_shape):
                found += 1
        for fn in getattr(g, "_functions", {}).values():
            if id(fn) not in seen and hasattr(fn, "graph"):
                seen.add(id(fn))
                stack.append(fn.graph)
    return found


def test_the_saved_model_gathers_the_candidates_from_its_own_transposed_kernel(tmp_path):
    """A SavedModel's weights are variables, which TensorFlow cannot fold: its shortlist
    signatures read `output_rows`, kept beside the weights, instead of transposing the
    kernel every call, and decode the same."""
    import tensorflow as tf

    from seq2seq_attn.export.convert import save_saved_model

    model = random_model(11)
    shortlist = narrow(model)
    module = ExportModule(model, shortlist=shortlist)
    saved = module.for_saved_model()
    assert module.output_rows is None and saved is not module
    kernel = model.decoder_cell.output_layer.kernel.numpy()  # (features, vocab)
    np.testing.assert_array_equal(saved.output_rows.numpy(), kernel.T)
    assert _kernel_transposes(module.greedy_shortlist, kernel.shape) == 1
    assert _kernel_transposes(saved.greedy_shortlist, kernel.shape) == 0
    save_saved_model(saved, tmp_path / "saved_model")
    loaded = tf.saved_model.load(str(tmp_path / "saved_model"))
    signatures = loaded.signatures
    ids = tf.constant(SOURCE)
    candidates = shortlist.mask(SOURCE)
    np.testing.assert_array_equal(
        signatures["greedy_shortlist"](source_ids=ids)["tokens"],
        model.generate(SOURCE, candidates=candidates)["tokens"],
    )
    np.testing.assert_array_equal(
        signatures["translate_ids"](source_ids=ids)["tokens"],
        model.generate(SOURCE, beam_width=BEAM_WIDTH, candidates=candidates)["tokens"],
    )
    for name, value in module.shortlist_output(ids).items():  # the host search's columns
        np.testing.assert_array_equal(signatures["shortlist_output"](source_ids=ids)[name], value)


def test_only_an_untied_shortlist_export_keeps_output_rows():
    for model, shortlist in (
        (random_model(11), None),
        (random_model(11, tie_embeddings=True), "narrow"),
    ):
        module = ExportModule(model, shortlist=shortlist and narrow(model))
        assert module.for_saved_model() is module and module.output_rows is None
