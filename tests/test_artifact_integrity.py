"""A changed byte in any file an export's loader reads stops it with one line naming the file.

`manifest.json` records the SHA-256 of every file of the export; the runtimes
(`seq2seq_attn.inference.runtime`), the server (`seq2seq-attn serve`) and the edge example
(`docs/edge_translate.py`) check the files they load against it first. Each test changes a
copy of the tiny export, never the shared fixture.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from seq2seq_attn.errors import UserError
from seq2seq_attn.inference.runtime import ArtifactError, LiteRTModel, OnnxModel, sha256_of
from seq2seq_attn.serving.app import create_app

EDGE_EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "edge_translate.py"

# (file changed, loader of the copy): every kind of artifact a loader reads.
LOADERS = {
    "encoder.onnx": lambda d: OnnxModel(d),
    "decoder_step.onnx": lambda d: OnnxModel(d),
    "greedy.onnx": lambda d: OnnxModel(d),
    "encoder_int8.onnx": lambda d: OnnxModel(d, quantized=True),
    "decoder_step_int8.onnx": lambda d: OnnxModel(d, quantized=True),
    "greedy_int8.onnx": lambda d: OnnxModel(d, quantized=True),
    "model.tflite": lambda d: LiteRTModel(d / "model.tflite"),
    "model_int8.tflite": lambda d: LiteRTModel(d / "model_int8.tflite"),
    "tokenizer/source.model": lambda d: create_app(d),
    "tokenizer/target.model": lambda d: create_app(d, backend="tflite"),
    "tokenizer/tokenizer.json": lambda d: create_app(d),
}


@pytest.fixture
def export_copy(tiny_export, tmp_path):
    copy = tmp_path / "export"
    shutil.copytree(tiny_export[0], copy)
    return copy


def change_one_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def edit_manifest(directory, edit):
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def one_line_error(error):
    message = str(error)
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_a_changed_byte_is_refused_naming_the_file(export_copy, name):
    change_one_byte(export_copy / name)
    with pytest.raises(ArtifactError) as raised:
        LOADERS[name](export_copy)
    message = one_line_error(raised.value)
    assert str(export_copy / name) in message
    assert "does not match the SHA-256 in manifest.json" in message
    assert "export the run again" in message
    assert isinstance(raised.value, UserError)  # the CLI's one line and exit code 2


def test_an_unchanged_export_still_loads(export_copy):
    for name in ("greedy.onnx", "greedy_int8.onnx", "model.tflite", "model_int8.tflite"):
        LOADERS[name](export_copy)
    create_app(export_copy)
    create_app(export_copy, backend="tflite", quantized=True)


def test_hashes_are_streamed_and_equal_hashlib(export_copy):
    import hashlib

    path = export_copy / "translate.onnx"
    assert path.stat().st_size > 0
    assert sha256_of(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_file_the_manifest_does_not_list_is_refused(export_copy):
    edit_manifest(export_copy, lambda m: m["files"].pop("greedy.onnx"))
    with pytest.raises(ArtifactError, match="greedy.onnx is not listed in manifest.json"):
        OnnxModel(export_copy)


def test_a_tokenizer_file_added_after_the_export_is_refused(export_copy):
    (export_copy / "tokenizer" / "extra.model").write_bytes(b"x")
    with pytest.raises(ArtifactError, match="extra.model is not listed in manifest.json"):
        create_app(export_copy)


def test_a_missing_file_is_named(export_copy):
    (export_copy / "decoder_step.onnx").unlink()
    with pytest.raises(ArtifactError, match="decoder_step.onnx is missing"):
        OnnxModel(export_copy)


@pytest.mark.parametrize("files", [None, {}], ids=["no files key", "empty"])
def test_a_manifest_without_hashes_is_refused(export_copy, files):
    def drop(manifest):
        if files is None:
            del manifest["files"]
        else:
            manifest["files"] = files

    edit_manifest(export_copy, drop)
    for load in (
        LOADERS["greedy.onnx"],
        LOADERS["model.tflite"],
        LOADERS["tokenizer/source.model"],
    ):
        with pytest.raises(ArtifactError, match="records no file hashes") as raised:
            load(export_copy)
        one_line_error(raised.value)


def test_graphs_without_a_manifest_are_not_an_export_and_load(export_copy):
    """The export's own parity step runs the graphs before it writes the manifest."""
    (export_copy / "manifest.json").unlink()
    change_one_byte(export_copy / "tokenizer" / "tokenizer.json")  # not read by a runtime
    assert set(OnnxModel(export_copy).sessions) == {"encode", "decode_step", "greedy"}
    assert "greedy" in LiteRTModel(export_copy / "model.tflite").runners


@pytest.mark.parametrize(
    "name, options",
    [
        ("greedy.onnx", []),
        ("model_int8.tflite", ["--backend", "tflite", "--quantized"]),
        ("tokenizer/source.model", []),
    ],
)
def test_serve_exits_2_with_one_line_naming_the_file(export_copy, name, options):
    change_one_byte(export_copy / name)
    done = subprocess.run(
        [sys.executable, "-m", "seq2seq_attn.cli", "serve", str(export_copy), "--port", "0"]
        + options,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert (
        lines[0].startswith("seq2seq-attn serve: error: ") and str(export_copy / name) in lines[0]
    )


@pytest.mark.parametrize("name", ["model.tflite", "tokenizer/target.model"])
def test_the_edge_example_refuses_a_changed_file(export_copy, name):
    change_one_byte(export_copy / name)
    done = subprocess.run(
        [sys.executable, str(EDGE_EXAMPLE), str(export_copy), "March 3, 1999"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(export_copy / name) in lines[0], done.stderr
    assert done.stdout == ""
