"""Export end to end on a tiny trained run: every format, parity, coverage, failure paths."""

import hashlib
import json
import os
import re

import numpy as np
import onnx
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the SentencePiece ops the SavedModel holds)
from onnx import numpy_helper

from seq2seq_attn.cli import main
from seq2seq_attn.errors import ParityError
from seq2seq_attn.export.main import export_run
from seq2seq_attn.export.signatures import (
    FULL_VOCABULARY_SIGNATURES as FULL_VOCABULARY,
)
from seq2seq_attn.export.signatures import SHORTLIST_SIGNATURES, SIGNATURES, STEP_SIGNATURES
from seq2seq_attn.export.validate import LOGITS_ATOL, Reference, check_step_runtime, float_failures
from seq2seq_attn.inference.runtime import LiteRTModel, OnnxModel
from seq2seq_attn.translator import Translator


@pytest.fixture(scope="module")
def run_dir(tiny_run):
    return tiny_run


@pytest.fixture(scope="module")
def exported(tiny_export):
    return tiny_export


def test_every_artifact_is_written_and_hashed(exported):
    out, report = exported
    for name in (
        "saved_model/saved_model.pb",
        "model.tflite",
        "model_fp16.tflite",
        "model_int8.tflite",
        "encoder.onnx",
        "decoder_step.onnx",
        "greedy.onnx",
        "encoder_int8.onnx",
        "decoder_step_int8.onnx",
        "greedy_int8.onnx",
        "translate.onnx",
        "tokenizer/source.model",
        "tokenizer/target.model",
        "tokenizer/tokenizer.json",
        "parity.json",
        "manifest.json",
    ):
        assert (out / name).is_file(), name
    manifest = json.loads((out / "manifest.json").read_text())
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest, name
    assert manifest["special_ids"] == {"pad": 0, "unk": 1, "start": 2, "end": 3}
    assert report["passed"] and json.loads((out / "parity.json").read_text())["passed"]
    assert not list(out.parent.glob(".exported-*"))  # the temporary directory is gone


def test_float_artifacts_meet_the_parity_rules(exported):
    _, report = exported
    for name in ("saved_model/tensorflow", "model.tflite/litert", "*.onnx/onnxruntime"):
        result = report["artifacts"][name]
        assert result["max_abs_logit_diff"] <= LOGITS_ATOL, name
        assert all(v == 1.0 for k, v in result.items() if k.endswith("agreement")), name
    for name in ("model_fp16.tflite/litert", "model_int8.tflite/litert", "*_int8.onnx/onnxruntime"):
        assert "bleu_drop" in report["artifacts"][name]
        assert "greedy_graph_agreement" in report["artifacts"][name]  # its own single graph


def test_the_int8_single_graph_runs_the_int8_step(exported):
    out, _ = exported
    ids = np.array([[5, 6, 7, 8, 3], [9, 10, 3, 0, 0]], np.int32)
    quantized = OnnxModel(out, quantized=True)
    host = quantized.decode(ids, 2, 3)["tokens"]  # over decoder_step_int8.onnx
    np.testing.assert_array_equal(quantized.greedy_graph(ids)["tokens"], host)
    assert "greedy_int8.onnx" in json.loads((out / "manifest.json").read_text())["files"]


def test_every_exported_signature_is_covered(exported):
    out, report = exported
    loaded = tf.saved_model.load(str(out / "saved_model"))
    # The tiny run has a shortlist (train builds one): its three signatures come too, and
    # the full-vocabulary twins of translate_ids and serving_default.
    assert set(loaded.signatures) == set(SIGNATURES) | set(SHORTLIST_SIGNATURES) | set(
        FULL_VOCABULARY
    )
    saved = report["artifacts"]["saved_model/tensorflow"]
    # encode + decode_step -> logit diff; greedy, translate_ids, serving_default -> agreement
    assert {
        "max_abs_logit_diff",
        "greedy_graph_agreement",
        "translate_ids_beam4_agreement",
        "translate_ids_full_vocabulary_beam4_agreement",
        "serving_default_agreement",
        "serving_full_vocabulary_agreement",
    } <= set(saved)
    assert (
        report["artifacts"]["translate_shortlist.onnx/onnxruntime+extensions"][
            "translation_agreement"
        ]
        == 1.0
    )
    runners = set(LiteRTModel(out / "model.tflite").runners)
    assert runners == set(STEP_SIGNATURES) | set(SHORTLIST_SIGNATURES)
    assert set(OnnxModel(out).sessions) == set(STEP_SIGNATURES)
    for name in ("model.tflite/litert", "*.onnx/onnxruntime"):
        assert {
            "max_abs_logit_diff",
            "greedy_graph_agreement",
            "greedy_agreement",
            "beam4_agreement",
        } <= set(report["artifacts"][name])


def random_padded_batch(vocab, rng):
    lengths = [1, 3, 7, 12, 5]
    ids = np.zeros((len(lengths), max(lengths)), np.int32)
    for row, n in enumerate(lengths):
        ids[row, :n] = rng.integers(4, vocab, size=n)
    return ids


@pytest.mark.parametrize("runtime", ["onnx", "litert"])
def test_parity_on_random_padded_batches(exported, run_dir, runtime):
    out, _ = exported
    model = Translator.load(run_dir).model
    ids = random_padded_batch(model.source_vocab_size, np.random.default_rng(3))
    reference = Reference(model, ids)
    rt = OnnxModel(out) if runtime == "onnx" else LiteRTModel(out / "model.tflite")
    result, _ = check_step_runtime(reference, rt)
    assert float_failures(runtime, result) == []


def test_spilled_reference_logits_are_read_back_unchanged(run_dir, tmp_path):
    model = Translator.load(run_dir).model
    ids = random_padded_batch(model.source_vocab_size, np.random.default_rng(4))
    kept = Reference(model, ids)
    spilled = Reference(model, ids, spill_to=tmp_path / "batch0.npy")
    assert (tmp_path / "batch0.npy").is_file()
    assert "_logits" not in vars(spilled)  # not held in memory
    np.testing.assert_array_equal(spilled.logits, kept.logits)


def perturb_onnx(path):
    graph = onnx.load(str(path))
    biggest = max(graph.graph.initializer, key=lambda t: np.prod(t.dims))
    values = numpy_helper.to_array(biggest).copy()
    values += 0.05 * np.random.default_rng(0).standard_normal(values.shape).astype(values.dtype)
    biggest.CopyFrom(numpy_helper.from_array(values, biggest.name))
    onnx.save(graph, str(path))


def test_validator_catches_a_perturbed_artifact(exported, run_dir, tmp_path):
    out, _ = exported
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    perturb_onnx(copy / "decoder_step.onnx")
    model = Translator.load(run_dir).model
    reference = Reference(
        model, random_padded_batch(model.source_vocab_size, np.random.default_rng(4))
    )
    result, _ = check_step_runtime(reference, OnnxModel(copy, verify=False))
    failures = float_failures("decoder_step.onnx", result)
    assert failures and "logit diff" in failures[0]


def test_failed_parity_leaves_no_valid_looking_output(run_dir, tmp_path, monkeypatch):
    import seq2seq_attn.export.main as export_main

    real_export_all = export_main.export_all

    def export_then_break(module, directory, stage):
        written = real_export_all(module, directory, stage)
        perturb_onnx(directory / "decoder_step.onnx")
        return written

    monkeypatch.setattr(export_main, "export_all", export_then_break)
    out = tmp_path / "bad-export"
    with pytest.raises(ParityError, match="decoder|onnx"):
        export_run(run_dir, out, samples=6, echo=lambda *_: None)
    assert not out.exists()
    assert (tmp_path / "bad-export.parity-failed.json").exists()
    assert not list(tmp_path.glob(".bad-export-*"))


def test_export_user_mistakes_exit_2(run_dir, tmp_path, capsys):
    def expect(argv, fragment):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and fragment in err, err

    expect(["export", str(tmp_path / "missing"), "--out", str(tmp_path / "o")], "does not exist")
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    expect(["export", str(run_dir), "--out", str(blocker / "sub")], "cannot write")
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("x")
    expect(["export", str(run_dir), "--out", str(full)], "--force")
    with pytest.raises(SystemExit) as exc:
        main(["export", str(run_dir), "--out", str(tmp_path / "o"), "--max-source-length", "0"])
    assert exc.value.code == 2


def test_static_source_length_option_for_tflite(run_dir, tmp_path):
    from seq2seq_attn.export.convert import save_frozen_steps, to_tflite
    from seq2seq_attn.export.signatures import ExportModule

    model = Translator.load(run_dir).model
    save_frozen_steps(ExportModule(model, max_source_length=16), tmp_path / "frozen")
    to_tflite(tmp_path / "frozen", tmp_path / "static.tflite")
    litert = LiteRTModel(tmp_path / "static.tflite")
    ids = random_padded_batch(model.source_vocab_size, np.random.default_rng(5))
    padded = np.zeros((ids.shape[0], 16), np.int32)
    padded[:, : ids.shape[1]] = ids  # padding to the static length changes nothing
    keras_tokens = model.generate(ids)["tokens"].numpy()
    tokens = litert.greedy_graph(padded)["tokens"]
    np.testing.assert_array_equal(tokens[:, : keras_tokens.shape[1]], keras_tokens)
    input_shape = litert.interpreter.get_signature_runner("encode").get_input_details()
    assert list(input_shape["source_ids"]["shape"]) == [1, 16]


class _WordTokenizer:
    """One id per word, [START] 2 and [END] 3 around them: encode length = words + 2."""

    def encode(self, text):
        return [2] + [4 + len(w) for w in text.split()] + [3]

    def encode_batch(self, texts, pad_to=None):
        rows = [self.encode(t) for t in texts]
        out = np.zeros((len(rows), pad_to or max(map(len, rows))), np.int32)
        for i, row in enumerate(rows):
            out[i, : len(row)] = row
        return out


def test_parity_batches_sort_by_length_and_keep_pairs_together():
    from types import SimpleNamespace

    from seq2seq_attn.export.validate import parity_batches

    texts = ["a b c d e", "a", "a b c", "a b", "a b c d e f g", "a b c d"]
    references = [f"ref {len(t.split())}" for t in texts]
    tokenizers = SimpleNamespace(source=_WordTokenizer())
    batches = parity_batches(texts, references, tokenizers, batch_size=4)
    assert [chunk for chunk, _, _ in batches] == [
        ["a", "a b", "a b c", "a b c d"],
        ["a b c d e", "a b c d e f g"],
    ]
    for chunk, refs, ids in batches:
        assert refs == [f"ref {len(t.split())}" for t in chunk]  # still aligned
        assert ids.shape == (len(chunk), len(chunk[-1].split()) + 2)  # padded to its longest
    assert batches[0][2][0].tolist() == [2, 5, 3, 0, 0, 0]


def test_combine_counts_sentences_not_batches():
    from seq2seq_attn.export.validate import combine

    per_batch = [
        {"greedy_agreement": 0.5, "max_abs_logit_diff": 1e-5, "mismatches": [["x", "y", "z"]]},
        {"greedy_agreement": 1.0, "max_abs_logit_diff": 3e-5, "mismatches": []},
        {"greedy_agreement": 2 / 3, "max_abs_logit_diff": 2e-5, "mismatches": [["u", "v", "w"]]},
    ]
    out = combine(per_batch, [2, 5, 3])
    assert out["greedy_agreement"] == (1 + 5 + 2) / 10  # 8 of 10 sentences, not mean(0.72)
    assert out["max_abs_logit_diff"] == 3e-5
    assert out["mismatches"] == [["x", "y", "z"], ["u", "v", "w"]]


def test_parity_in_several_batches_passes_and_counts_every_sentence(own_tiny_export, run_dir):
    from seq2seq_attn.export.main import _held_out
    from seq2seq_attn.export.validate import validate_export

    out = own_tiny_export
    translator = Translator.load(run_dir)
    texts, references = _held_out(translator, run_dir, 12, None)
    report = validate_export(
        out, translator.model, translator.tokenizers, texts, references, batch_size=5
    )
    assert report["passed"], report["failures"]
    assert report["samples"] == 12 and report["parity_batch_size"] == 5
    assert not list(out.glob(".parity-logits-*"))  # the spilled logits are gone
    translate = report["artifacts"]["translate.onnx/onnxruntime+extensions"]
    assert translate["translation_agreement"] == 1.0


def test_onnx_sessions_default_to_one_sleeping_thread(exported):
    out, _ = exported
    cases = [({}, "0", 1), ({"spinning": True, "threads": 0}, "1", 0), ({"threads": 2}, "0", 2)]
    for kwargs, spinning, threads in cases:
        for session in OnnxModel(out, **kwargs).sessions.values():
            options = session.get_session_options()
            assert options.get_session_config_entry("session.intra_op.allow_spinning") == spinning
            assert options.intra_op_num_threads == threads


def _run_encoder_onnx(model, ids):
    import onnxruntime as ort

    from seq2seq_attn.export.convert import encoder_onnx

    proto = encoder_onnx(model)
    onnx.checker.check_model(proto)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"source_ids": ids}), strict=True))


@pytest.mark.parametrize(
    "kwargs", [dict(), dict(bidirectional=False), dict(encoder_layers=2, units=12)]
)
def test_native_gru_encoder_equals_the_keras_encoder(kwargs):
    """ONNX GRU ops (sequence_lens from the mask) against the masked Keras loop, rows of
    lengths 1 to full, the backward direction included."""
    import keras

    from seq2seq_attn import Seq2SeqAttention
    from seq2seq_attn.export.convert import native_encoder_supported

    keras.utils.set_random_seed(7)
    model = Seq2SeqAttention(50, 40, embedding_dim=6, units=kwargs.pop("units", 10), **kwargs)
    model.build()
    for w in model.encoder.weights:  # non-zero biases, so their layout matters
        w.assign(np.random.default_rng(1).normal(0, 0.5, w.shape).astype("float32"))
    assert native_encoder_supported(model)
    ids = random_padded_batch(50, np.random.default_rng(2))  # lengths 1, 3, 7, 12, 5
    memory, keys, mask, states = model.encode(ids)
    got = _run_encoder_onnx(model, ids)
    np.testing.assert_allclose(got["memory"], memory, atol=1e-5)
    np.testing.assert_allclose(got["projected_keys"], keys, atol=1e-5)
    np.testing.assert_allclose(got["state_0"], states[0], atol=1e-5)
    np.testing.assert_array_equal(got["mask"], np.asarray(mask, np.float32))
    assert np.all(got["memory"][0, 1:] == 0)  # padding positions are exactly zero


@pytest.mark.parametrize(
    "kwargs", [dict(rnn="lstm"), dict(attention="luong"), dict(input_feeding=True)]
)
def test_other_encoders_convert_with_tf2onnx(kwargs):
    from seq2seq_attn import Seq2SeqAttention
    from seq2seq_attn.export.convert import native_encoder_supported

    model = Seq2SeqAttention(20, 20, embedding_dim=4, units=8, **kwargs)
    model.build()
    assert not native_encoder_supported(model)


def test_exported_encoder_is_the_native_one(exported):
    out, _ = exported
    ops = {node.op_type for node in onnx.load(str(out / "encoder.onnx")).graph.node}
    assert "GRU" in ops and "Loop" not in ops


def test_held_out_falls_back_to_dev_for_a_run_trained_without_a_test_file(tmp_path):
    """A run of `train --train A --dev B` has no test split: parity uses the dev pairs, and a
    run with neither is a one-line user error."""
    import types

    from seq2seq_attn.errors import UserError
    from seq2seq_attn.export.main import _held_out

    train, dev = tmp_path / "train.tsv", tmp_path / "dev.tsv"
    train.write_text("a b\tx y\nc d\tz w\n", encoding="utf-8")
    dev.write_text("e f\tu v\ng h\tt s\n", encoding="utf-8")
    files = {"train": str(train), "dev": str(dev), "test": None}
    translator = types.SimpleNamespace(run_info={"files": files})
    assert _held_out(translator, tmp_path, 1, None) == (["e f"], ["u v"])
    translator.run_info["files"]["dev"] = None
    with pytest.raises(UserError, match="no test or dev sentences"):
        _held_out(translator, tmp_path, 5, None)


def test_tf2onnx_runs_only_the_kept_passes_and_a_failing_pass_raises(monkeypatch, tmp_path):
    """`to_onnx` leaves most graph optimisation to onnxruntime (tf2onnx's passes each keep
    a copy of the weights): it asks tf2onnx's optimizer for `TF2ONNX_PASSES` only, with
    errors raised, and leaves tf2onnx's own settings alone."""
    import onnxruntime
    from tf2onnx import optimizer

    from seq2seq_attn.export import convert

    function = tf.function(lambda x: x + 1, input_signature=[tf.TensorSpec([None], tf.float32)])
    convert.to_onnx(function, tmp_path / "plus_one.onnx")  # the real conversion runs
    session = onnxruntime.InferenceSession(str(tmp_path / "plus_one.onnx"))
    x = np.array([1.5, -2.0], np.float32)
    np.testing.assert_array_equal(session.run(None, {session.get_inputs()[0].name: x})[0], x + 1)

    seen = []

    def failing_optimizer(graph, catch_errors=True, optimizers=None):
        seen.append((list(optimizers), catch_errors))
        raise RuntimeError("a pass failed")

    monkeypatch.delenv("TF2ONNX_CATCH_ERRORS", raising=False)
    monkeypatch.setattr(optimizer, "optimize_graph", failing_optimizer)
    with pytest.raises(RuntimeError, match="a pass failed"):
        convert.to_onnx(function, tmp_path / "unused.onnx")
    assert seen == [(list(convert.TF2ONNX_PASSES), False)]
    assert "TF2ONNX_CATCH_ERRORS" not in os.environ


@pytest.fixture(scope="module")
def frozen_steps(run_dir, tmp_path_factory):
    from seq2seq_attn.export.convert import save_frozen_steps
    from seq2seq_attn.export.signatures import ExportModule

    path = tmp_path_factory.mktemp("frozen") / "frozen"
    save_frozen_steps(ExportModule(Translator.load(run_dir).model), path)
    return path


@pytest.mark.canary
@pytest.mark.parametrize("quantization", [None, "int8"])
def test_tflite_conversion_reads_no_savedmodel_in_python_and_matches_the_public_converter(
    frozen_steps, tmp_path, monkeypatch, quantization
):
    from tensorflow.lite.python import lite

    from seq2seq_attn.export.convert import to_tflite

    public = tf.lite.TFLiteConverter.from_saved_model(
        str(frozen_steps), signature_keys=list(STEP_SIGNATURES)
    )
    public.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization:
        public.optimizations = [tf.lite.Optimize.DEFAULT]
    expected = public.convert()

    def no_load(*args, **kwargs):
        raise AssertionError("the SavedModel was loaded in Python")

    monkeypatch.setattr(lite, "_load", no_load)  # tf.saved_model.load
    monkeypatch.setattr(lite.TFLiteConverterBaseV2, "_load_saved_model", no_load)  # TF1 graph
    to_tflite(frozen_steps, tmp_path / "model.tflite", quantization)
    assert (tmp_path / "model.tflite").read_bytes() == expected


@pytest.mark.canary
def test_tflite_conversion_stops_with_one_error_where_tensorflow_internals_differ(
    frozen_steps, tmp_path, monkeypatch
):
    """No silent fallback: a TensorFlow whose converter internals moved stops the
    conversion with `_compat`'s error, naming package, version and the missing name."""
    import importlib
    import sys

    from seq2seq_attn import _compat
    from seq2seq_attn.export.convert import to_tflite

    # Another TensorFlow's internals: a module the converter imports is gone.
    package = importlib.import_module("tensorflow.lite.python")
    name = "conversion_metadata_schema_py_generated"
    monkeypatch.delattr(package, name)
    monkeypatch.setitem(sys.modules, f"{package.__name__}.{name}", None)
    _compat._tflite.cache_clear()
    try:
        with pytest.raises(_compat.CompatibilityError, match=f"has no `{package.__name__}.{name}`"):
            to_tflite(frozen_steps, tmp_path / "model.tflite")
    finally:
        _compat._tflite.cache_clear()
    assert not (tmp_path / "model.tflite").exists()
    with pytest.raises(ValueError, match="quantization"):
        to_tflite(frozen_steps, tmp_path / "bad.tflite", "int4")


def test_an_export_with_a_static_source_length_passes_parity(run_dir, tmp_path):
    # Parity batches are padded to the static length (they used to be padded to their own
    # longest sentence, which LiteRT's static graphs refused with a traceback).
    out = tmp_path / "static"
    lines = []
    report = export_run(run_dir, out, max_source_length=24, samples=12, echo=lines.append)
    assert report["passed"], report["failures"]
    # Progress: one line per stage once it ends, with its time, then each part of parity.
    shown = [
        re.fullmatch(r"(export|parity \(12 sentences\)): (.+) \d+\.\d s", line) for line in lines
    ]
    assert all(shown), lines
    stages = [m[2] for m in shown if m[1] == "export"]
    assert stages == [
        "saved_model",
        "frozen_step_graphs",
        "tflite:model.tflite",
        "tflite:model_fp16.tflite",
        "tflite:model_int8.tflite",
        "onnx:encoder.onnx",
        "onnx:decoder_step.onnx",
        "onnx:greedy.onnx",
        "onnx:shortlist.onnx",  # the tiny run has a shortlist: its three graphs
        "onnx:decoder_step_shortlist.onnx",
        "onnx:greedy_shortlist.onnx",
        "onnx_int8:encoder_int8.onnx",
        "onnx_int8:decoder_step_int8.onnx",
        "onnx_int8:greedy_int8.onnx",
        "onnx_int8:decoder_step_shortlist_int8.onnx",
        "onnx_int8:greedy_shortlist_int8.onnx",
        "onnx:translate.onnx",
        "onnx:translate_shortlist.onnx",
    ]
    parity_parts = [m[2] for m in shown[len(stages) :]]
    assert parity_parts == ["the Keras reference", *report["artifacts"]], lines
    assert json.loads((out / "manifest.json").read_text())["max_source_length"] == 24
    graph = onnx.load(str(out / "greedy.onnx")).graph
    assert graph.input[0].type.tensor_type.shape.dim[1].dim_value == 24
    ids = np.zeros((2, 24), np.int32)
    ids[:, :4] = [5, 6, 7, 3]
    tokens = LiteRTModel(out / "model.tflite").greedy_graph(ids)["tokens"]
    np.testing.assert_array_equal(tokens, OnnxModel(out).greedy_graph(ids)["tokens"])
