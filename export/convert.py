"""One plain function per target format: SavedModel, TFLite (fp32 / fp16 / int8), ONNX (+ int8)."""

import contextlib
import io
import logging
import tempfile
from pathlib import Path

import tensorflow as tf
from seq2seq_attn.export.signatures import SIGNATURES, STEP_SIGNATURES
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

TFLITE_VARIANTS = {"model.tflite": None, "model_fp16.tflite": "fp16", "model_int8.tflite": "int8"}
ONNX_OPSET = 17


def save_saved_model(module, path):
    """Writes a SavedModel with every signature `module` has (TF Serving ready)."""
    signatures = {
        name: getattr(module, name).get_concrete_function()
        for name in SIGNATURES
        if hasattr(module, name)
    }
    tf.saved_model.save(module, str(path), signatures=signatures)
    return sorted(signatures)


def _named_frozen(function):
    """`function` with its variables folded into constants, outputs still named.

    LiteRT cannot read resource variables inside WHILE bodies (READ_VARIABLE fails at
    invoke), so the TFLite graphs are converted from frozen functions.
    """
    concrete = function.get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete)
    names = sorted(concrete.structured_outputs)  # TF flattens output dicts by sorted key

    def call(*args):
        return dict(zip(names, frozen(*args), strict=True))

    return tf.function(call, input_signature=function.input_signature).get_concrete_function()


def save_frozen_steps(module, path):
    """A variable-free SavedModel with the step signatures, the input of the TFLite converter."""
    signatures = {name: _named_frozen(getattr(module, name)) for name in STEP_SIGNATURES}
    tf.saved_model.save(tf.Module(), str(path), signatures=signatures)


def to_tflite(frozen_dir, path, quantization=None):
    """Converts the frozen step SavedModel to a LiteRT flatbuffer with builtin ops only.

    Args:
        frozen_dir: output of `save_frozen_steps`.
        path: the `.tflite` file to write.
        quantization: None (float32), "fp16" (float16 weights) or "int8" (dynamic range).
    """
    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(frozen_dir), signature_keys=list(STEP_SIGNATURES)
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no Flex ops
    if quantization in ("fp16", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantization not in (None, "int8"):
        raise ValueError(f"`quantization` must be None, 'fp16' or 'int8', got {quantization!r}")
    Path(path).write_bytes(converter.convert())


def to_onnx(function, path, opset=ONNX_OPSET):
    """Converts one `tf.function` of the export module to ONNX with tf2onnx."""
    import tf2onnx

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()):
        tf2onnx.convert.from_function(
            function,
            input_signature=function.input_signature,
            opset=opset,
            output_path=str(path),
        )


def quantize_onnx(path, out_path):
    """Dynamic int8 quantization of an ONNX graph's weights (onnxruntime.quantization)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(path), str(out_path), weight_type=QuantType.QInt8)


def _run(name, fn, *args):
    """The default `stage` of `export_all`: just call it."""
    return fn(*args)


def export_all(module, out_dir, stage=_run):
    """Writes every artifact of `module` into `out_dir`; returns {artifact: relative path}.

    Args:
        module: an `seq2seq_attn.export.signatures.ExportModule`.
        out_dir: an existing directory.
        stage: `stage(name, fn, *args)` runs each step as `fn(*args)`; pass a wrapper to
            time or log the steps (names like "saved_model", "tflite:model.tflite").
    """
    out_dir = Path(out_dir)
    written = {"saved_model": "saved_model"}
    stage("saved_model", save_saved_model, module, out_dir / "saved_model")
    with tempfile.TemporaryDirectory() as tmp:
        frozen = Path(tmp) / "frozen"
        stage("frozen_step_graphs", save_frozen_steps, module, frozen)
        for filename, quantization in TFLITE_VARIANTS.items():
            stage(f"tflite:{filename}", to_tflite, frozen, out_dir / filename, quantization)
            written[filename] = filename
    for name, filename in [
        ("encode", "encoder.onnx"),
        ("decode_step", "decoder_step.onnx"),
        ("greedy", "greedy.onnx"),
    ]:
        stage(f"onnx:{filename}", to_onnx, getattr(module, name), out_dir / filename)
        written[filename] = filename
    for filename in ("encoder.onnx", "decoder_step.onnx"):
        quantized = filename.replace(".onnx", "_int8.onnx")
        stage(f"onnx_int8:{quantized}", quantize_onnx, out_dir / filename, out_dir / quantized)
        written[quantized] = quantized
    return written
