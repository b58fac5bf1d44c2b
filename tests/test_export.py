"""Export end to end on a tiny trained run: every format, parity, coverage, failure paths."""

import hashlib
import json

import numpy as np
import onnx
import pytest
import tensorflow as tf
from onnx import numpy_helper
from seq2seq_attn.export.main import export_run
from seq2seq_attn.export.signatures import SIGNATURES, STEP_SIGNATURES
from seq2seq_attn.export.validate import LOGITS_ATOL, Reference, check_step_runtime, float_failures

from seq2seq_attn.cli import main
from seq2seq_attn.errors import ParityError
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


def test_every_exported_signature_is_covered(exported):
    out, report = exported
    loaded = tf.saved_model.load(str(out / "saved_model"))
    assert set(loaded.signatures) == set(SIGNATURES)
    saved = report["artifacts"]["saved_model/tensorflow"]
    # encode + decode_step -> logit diff; greedy, translate_ids, serving_default -> agreement
    assert {
        "max_abs_logit_diff",
        "greedy_graph_agreement",
        "translate_ids_beam4_agreement",
        "serving_default_agreement",
    } <= set(saved)
    assert set(LiteRTModel(out / "model.tflite").runners) == set(STEP_SIGNATURES)
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
    result, _ = check_step_runtime(reference, OnnxModel(copy))
    failures = float_failures("decoder_step.onnx", result)
    assert failures and "logit diff" in failures[0]


def test_failed_parity_leaves_no_valid_looking_output(run_dir, tmp_path, monkeypatch):
    import seq2seq_attn.export.main as export_main

    real_export_all = export_main.export_all

    def export_then_break(module, directory):
        written = real_export_all(module, directory)
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
