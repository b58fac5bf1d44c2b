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


# translate.onnx: strings in, strings out, with onnxruntime-extensions' SentencePiece ops.
EXTENSIONS_DOMAIN = "ai.onnx.contrib"
EXTENSIONS_OPSETS = [("", ONNX_OPSET), (EXTENSIONS_DOMAIN, 1)]
GREEDY_PREFIX = "greedy/"  # greedy.onnx's names inside translate.onnx


def _const(name, value, dtype):
    """A Constant node that outputs `value` (a scalar or a list) as `name`."""
    import numpy as np
    from onnx import helper, numpy_helper

    tensor = numpy_helper.from_array(np.array(value, dtype), name)
    return helper.make_node("Constant", [], [name], value=tensor)


def _model(nodes, name, inputs, outputs, opsets):
    from onnx import helper

    graph = helper.make_graph(nodes, name, inputs, outputs)
    imports = [helper.make_opsetid(domain, version) for domain, version in opsets]
    return helper.make_model(graph, opset_imports=imports)


def tokenizer_onnx(model_proto, source_length=None, opsets=EXTENSIONS_OPSETS):
    """An ONNX model `text` string `(batch,)` -> `source_ids` int32 `(batch, length)`.

    The SentencepieceTokenizer op (add_bos, add_eos) gives the ids of every text in one flat
    tensor with row splits `(batch + 1,)`; they are gathered into rows as long as the longest
    one and padded with [PAD]: `SentencePieceTokenizer.encode_batch(texts)`.

    Args:
        model_proto: the bytes of the SentencePiece `.model`.
        source_length: a fixed `length` instead: rows are padded or cut to it, like
            `encode_batch(texts, pad_to=source_length)` and `serving_default`.
        opsets: (domain, version) pairs the model imports.
    """
    from onnx import TensorProto, helper

    from seq2seq_attn.interface import PAD_ID

    nodes = [
        _const("nbest_size", 0, "int64"),
        _const("alpha", 0.0, "float32"),
        _const("add_bos", True, "bool"),
        _const("add_eos", True, "bool"),
        _const("reverse", False, "bool"),
        helper.make_node(
            "SentencepieceTokenizer",
            ["text", "nbest_size", "alpha", "add_bos", "add_eos", "reverse"],
            ["flat_ids", "row_splits"],  # int32 (total,), int64 (batch + 1,)
            domain=EXTENSIONS_DOMAIN,
            model=model_proto,
        ),
        _const("first", [0], "int64"),
        _const("second", [1], "int64"),
        _const("but_last", [-1], "int64"),
        _const("through_last", [2**62], "int64"),
        helper.make_node("Slice", ["row_splits", "first", "but_last"], ["row_starts"]),
        helper.make_node("Slice", ["row_splits", "second", "through_last"], ["row_ends"]),
        helper.make_node("Sub", ["row_ends", "row_starts"], ["row_lengths"]),  # (batch,)
        _const("zero", 0, "int64"),
        _const("one", 1, "int64"),
    ]
    if source_length is None:
        nodes.append(helper.make_node("ReduceMax", ["row_lengths"], ["width"], keepdims=0))
    else:
        nodes.append(_const("width", source_length, "int64"))
    nodes += [
        helper.make_node("Range", ["zero", "width", "one"], ["positions"]),  # (width,)
        helper.make_node("Unsqueeze", ["positions", "first"], ["columns"]),  # (1, width)
        helper.make_node("Unsqueeze", ["row_starts", "second"], ["starts"]),  # (batch, 1)
        helper.make_node("Unsqueeze", ["row_lengths", "second"], ["lengths"]),  # (batch, 1)
        helper.make_node("Less", ["columns", "lengths"], ["inside"]),  # (batch, width)
        helper.make_node("Add", ["starts", "columns"], ["flat_index"]),  # (batch, width)
        helper.make_node("Where", ["inside", "flat_index", "zero"], ["safe_index"]),
        helper.make_node("Gather", ["flat_ids", "safe_index"], ["gathered"]),
        _const("pad", PAD_ID, "int32"),
        helper.make_node("Where", ["inside", "gathered", "pad"], ["source_ids"]),
    ]
    return _model(
        nodes,
        "tokenize",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["batch"])],
        [helper.make_tensor_value_info("source_ids", TensorProto.INT32, ["batch", "length"])],
        opsets,
    )


def detokenizer_onnx(model_proto, opsets=EXTENSIONS_OPSETS):
    """An ONNX model `tokens` int32 `(batch, steps)` -> `translation` string `(batch,)`.

    Each row is cut before its first [END], its [PAD]s dropped, and decoded by the
    SentencepieceDecoder op: `SentencePieceTokenizer.decode(row)`. The op decodes one
    sequence per call, so a Scan runs it row by row; the Scan body's names start with "row/"
    (a subgraph may not reuse a name of the graph around it).

    Args:
        model_proto: the bytes of the SentencePiece `.model`.
        opsets: (domain, version) pairs the model imports.
    """
    from onnx import TensorProto, helper

    from seq2seq_attn.interface import PAD_ID
    from seq2seq_attn.tokenizer import END_ID

    def node(op, inputs, outputs, **attributes):
        inputs, outputs = [f"row/{n}" for n in inputs], [f"row/{n}" for n in outputs]
        return helper.make_node(op, inputs, outputs, **attributes)

    body = helper.make_graph(
        [
            _const("row/end", END_ID, "int32"),
            _const("row/pad", PAD_ID, "int32"),
            _const("row/zero", 0, "int32"),
            node("Equal", ["ids", "end"], ["is_end"]),
            node("Cast", ["is_end"], ["end_count"], to=TensorProto.INT32),
            node("CumSum", ["end_count", "zero"], ["ends_so_far"]),
            node("Equal", ["ends_so_far", "zero"], ["before_end"]),
            node("Equal", ["ids", "pad"], ["is_pad"]),
            node("Not", ["is_pad"], ["not_pad"]),
            node("And", ["before_end", "not_pad"], ["keep"]),
            node("Compress", ["ids", "keep"], ["kept"], axis=0),
            node("Cast", ["kept"], ["kept_int64"], to=TensorProto.INT64),
            node(
                "SentencepieceDecoder",
                ["kept_int64"],
                ["decoded"],  # (1,)
                domain=EXTENSIONS_DOMAIN,
                model=model_proto,
            ),
            node("Squeeze", ["decoded"], ["sentence"]),  # ()
        ],
        "detokenize_row",
        [helper.make_tensor_value_info("row/ids", TensorProto.INT32, ["steps"])],
        [helper.make_tensor_value_info("row/sentence", TensorProto.STRING, [])],
    )
    scan = helper.make_node("Scan", ["tokens"], ["translation"], num_scan_inputs=1, body=body)
    return _model(
        [scan],
        "detokenize",
        [helper.make_tensor_value_info("tokens", TensorProto.INT32, ["batch", "steps"])],
        [helper.make_tensor_value_info("translation", TensorProto.STRING, ["batch"])],
        opsets,
    )


def to_translate_onnx(export_dir, tokenizers, path):
    """Writes `translate.onnx`: greedy translation of strings in one graph.

    `tokenizer_onnx` (source `.model`) -> `greedy.onnx` (names prefixed "greedy/") ->
    `detokenizer_onnx` (target `.model`), joined with `onnx.compose.merge_models`. It runs
    in onnxruntime with onnxruntime-extensions' library registered:
    `SessionOptions.register_custom_ops_library(onnxruntime_extensions.get_library_path())`
    (where TensorFlow is loaded too, import it with `validate.load_onnxruntime_extensions`).

    Inputs: `text` string `(batch,)`. Outputs: `translation` string `(batch,)`, and greedy's
    `tokens` int32 `(batch, steps)` (0 after [END]) and `scores` float32 `(batch,)`.

    Args:
        export_dir: a directory holding `greedy.onnx` (written by `export_all`).
        tokenizers: the run's `seq2seq_attn.tokenizer.TokenizerPair`.
        path: the `.onnx` file to write.
    """
    import onnx
    from onnx import TensorProto, compose, helper

    greedy = onnx.load(str(Path(export_dir) / "greedy.onnx"))
    length = greedy.graph.input[0].type.tensor_type.shape.dim[1]  # of source_ids
    source_length = length.dim_value if length.HasField("dim_value") else None
    opsets = [(o.domain, o.version) for o in greedy.opset_import] + [(EXTENSIONS_DOMAIN, 1)]
    tokenize = tokenizer_onnx(tokenizers.source.model_proto, source_length, opsets)
    detokenize = detokenizer_onnx(tokenizers.target.model_proto, opsets)
    for model in (tokenize, detokenize):
        model.ir_version = greedy.ir_version  # merge_models wants one IR version
    merged = compose.merge_models(
        tokenize, greedy, io_map=[("source_ids", "source_ids")], prefix2=GREEDY_PREFIX
    )
    merged = compose.merge_models(merged, detokenize, io_map=[(f"{GREEDY_PREFIX}tokens", "tokens")])
    merged.graph.node.extend(
        [
            helper.make_node("Identity", [f"{GREEDY_PREFIX}{name}"], [name])
            for name in ("tokens", "scores")
        ]
    )
    del merged.graph.output[:]  # greedy/scores and greedy/attention: renamed or unused
    merged.graph.output.extend(
        [
            helper.make_tensor_value_info("translation", TensorProto.STRING, ["batch"]),
            helper.make_tensor_value_info("tokens", TensorProto.INT32, ["batch", "steps"]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch"]),
        ]
    )
    imports = sorted({(o.domain, o.version) for o in merged.opset_import})
    del merged.opset_import[:]  # merge_models lists both models' imports
    merged.opset_import.extend([helper.make_opsetid(d, v) for d, v in imports])
    merged.graph.name = "translate"
    onnx.checker.check_model(merged)
    onnx.save(merged, str(path))
