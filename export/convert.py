"""One plain function per target format: SavedModel, TFLite (fp32 / fp16 / int8), ONNX (+ int8)."""

import contextlib
import io
import logging
import tempfile
from pathlib import Path

import tensorflow as tf

from seq2seq_attn import _compat
from seq2seq_attn.export.signatures import (
    SHORTLIST_STEP_SIGNATURES,
    SIGNATURES,
    STEP_SIGNATURES,
)
from seq2seq_attn.inference.runtime import SHORTLIST_FILES

# Where TensorFlow moved a private name the export relies on, it stops here, naming it,
# rather than half-way through an export.
_compat.check_tensorflow()

TFLITE_VARIANTS = {"model.tflite": None, "model_fp16.tflite": "fp16", "model_int8.tflite": "int8"}
ONNX_OPSET = 17
# tf2onnx optimizer passes run at conversion (see `_kept_tf2onnx_passes`).
TF2ONNX_PASSES = ("fold_constants", "remove_identity", "remove_back_to_back")


def save_saved_model(module, path):
    """Writes a SavedModel with every signature `module` has (TF Serving ready)."""
    signatures = {
        name: getattr(module, name).get_concrete_function()
        for name in (*SIGNATURES, *module.shortlist_signatures, *module.full_vocabulary_signatures)
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
    frozen = _compat.freeze(concrete)
    names = sorted(concrete.structured_outputs)  # TF flattens output dicts by sorted key

    def call(*args):
        return dict(zip(names, frozen(*args), strict=True))

    wrapper = tf.function(call, input_signature=function.input_signature, autograph=False)
    return wrapper.get_concrete_function()


def save_frozen_steps(module, path):
    """A variable-free SavedModel with the step signatures, the input of the TFLite converter.

    Each signature is frozen and saved on its own, then the files are merged
    (`saved_model_merge`): all three frozen at once peaked at 3.84 GB at the benchmark size,
    one at a time at 2.42 GB.
    """
    from seq2seq_attn.export.saved_model_merge import merge_signature_saved_models

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as parts:
        directories = []
        for name in (*STEP_SIGNATURES, *module.shortlist_signatures):
            signature = {name: _named_frozen(getattr(module, name))}
            directories.append(Path(parts) / name)
            tf.saved_model.save(tf.Module(), str(directories[-1]), signatures=signature)
            del signature
            release_memory()
        merge_signature_saved_models(directories, path)


def to_tflite(frozen_dir, path, quantization=None, signatures=STEP_SIGNATURES):
    """Converts the frozen step SavedModel to a LiteRT flatbuffer with builtin ops only.

    Args:
        frozen_dir: output of `save_frozen_steps`.
        path: the `.tflite` file to write.
        quantization: None (float32), "fp16" (float16 weights) or "int8" (dynamic range).
        signatures: the frozen signatures to convert (with a shortlist, its three too).
    """
    if quantization not in (None, "fp16", "int8"):
        raise ValueError(f"`quantization` must be None, 'fp16' or 'int8', got {quantization!r}")
    # `from_saved_model`'s converter without its three Python loads of the SavedModel:
    # 2.29 GB against 3.26 GB at the benchmark size, byte-identical (see `_compat`).
    converter = _compat.tflite_converter(frozen_dir, list(signatures))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no Flex ops
    if quantization in ("fp16", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    Path(path).write_bytes(converter.convert())


def _kept_tf2onnx_passes():
    """tf2onnx's ONNX optimizer passes named in `TF2ONNX_PASSES`, in tf2onnx's order.

    Its full set of passes, repeated until nothing changes, kept a copy of the graph's
    constants after every pass: converting the benchmark model's decoder step peaked at
    4.97 GB and took 13.5 s with them, 2.21 GB and 7.2 s with these three (greedy loop:
    5.9 GB before, 3.26 GB now). onnxruntime applies its own graph optimisations
    (`ORT_ENABLE_ALL`) when it loads a graph, so the step runs as fast (2.7 ms against
    2.8 ms at batch 1), `greedy.onnx` up to 1.2x slower, outputs equal within 1e-6 and
    the same int8 size. With no pass at all, tf2onnx leaves Identity nodes that reference
    a Loop's values out of order (the checker refuses the translate.onnx built from such
    a greedy graph) and patterns onnxruntime's Gemm fusion mishandles in a Loop body.
    """
    from collections import OrderedDict

    from tf2onnx.optimizer.back_to_back_optimizer import BackToBackOptimizer
    from tf2onnx.optimizer.const_fold_optimizer import ConstFoldOptimizer
    from tf2onnx.optimizer.identity_optimizer import IdentityOptimizer

    passes = {
        "fold_constants": ConstFoldOptimizer,
        "remove_identity": IdentityOptimizer,
        "remove_back_to_back": BackToBackOptimizer,
    }
    return OrderedDict((name, passes[name]) for name in TF2ONNX_PASSES)


def to_onnx(function, path, opset=ONNX_OPSET):
    """Converts one `tf.function` of the export module to ONNX with tf2onnx.

    The public steps `tf2onnx.convert.from_function` is made of (it takes no list of
    optimizer passes), with only `TF2ONNX_PASSES` (`_kept_tf2onnx_passes`). A failing pass
    raises instead of being skipped with a warning, which also spares the deep copy of the
    graph tf2onnx makes before each pass to be able to skip it.
    """
    from tf2onnx import optimizer, tf_loader, tfonnx
    from tf2onnx.convert import tensor_names_from_structed

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    concrete = function.get_concrete_function(*function.input_signature)
    inputs = [t.name for t in concrete.inputs if t.dtype != tf.resource]
    outputs = [t.name for t in concrete.outputs if t.dtype != tf.resource]
    renames = tensor_names_from_structed(concrete, inputs, outputs)
    with contextlib.redirect_stdout(io.StringIO()), tf.device("/cpu:0"):
        frozen = tf_loader.from_function(concrete, inputs, outputs)
        with tf.Graph().as_default() as graph:
            tf.graph_util.import_graph_def(frozen, name="")
            onnx_graph = tfonnx.process_tf_graph(
                graph,
                continue_on_error=True,
                opset=opset,
                input_names=inputs,
                output_names=outputs,
                tensors_to_rename=renames,
            )
            onnx_graph = optimizer.optimize_graph(
                onnx_graph, catch_errors=False, optimizers=_kept_tf2onnx_passes()
            )
            model = onnx_graph.make_model(f"converted from {concrete.name}")
    Path(path).write_bytes(model.SerializeToString())


def native_encoder_supported(model):
    """Whether `encoder_onnx` can write the model's encoder.

    Float32 Keras GRU cells (reset_after, tanh / sigmoid), Bahdanau keys and one decoder
    state (one decoder layer, no input feeding); anything else converts with tf2onnx.
    """
    from seq2seq_attn.attention import BahdanauAttention

    encoder = model.encoder
    return (
        encoder.rnn == "gru"
        and len(model.decoder_cell.state_sizes) == 1
        and isinstance(model.decoder_cell.attention, BahdanauAttention)
        and all(w.dtype == "float32" for w in model.weights)
        and all(c.reset_after and c.use_bias for c in encoder.cells)
        and all(
            c.activation.__name__ == "tanh" and c.recurrent_activation.__name__ == "sigmoid"
            for c in encoder.cells
        )
    )


def _gru_weights(cells):
    """ONNX GRU W, R, B `(directions, ...)` of Keras `GRUCell`s (reset_after), one per direction.

    Keras and ONNX both order the gates z, r, h; Keras keeps `x @ kernel`, ONNX `W @ x`, and
    Keras' bias rows (input, recurrent) are ONNX's Wb and Rb, so `linear_before_reset=1`
    computes the Keras cell exactly.
    """
    import numpy as np

    w = np.stack([np.asarray(c.kernel).T for c in cells])  # (dirs, 3 units, input)
    r = np.stack([np.asarray(c.recurrent_kernel).T for c in cells])  # (dirs, 3 units, units)
    b = np.stack([np.asarray(c.bias).reshape(-1) for c in cells])  # (dirs, 6 units)
    return w.astype("float32"), r.astype("float32"), b.astype("float32")


def encoder_onnx(model, source_length=None):
    """The `encode` graph with ONNX `GRU` ops in place of tf2onnx's `Loop`s.

    tf2onnx turns each direction's `tf.while_loop` into an ONNX `Loop` of ~55 small nodes
    per source position, which onnxruntime runs at ~0.2 ms a position at the tutorial's
    size (3.4 ms for 8 tokens, against 1.5 ms for the same encoder in LiteRT). One `GRU`
    op per layer (both directions) runs the same cells in one kernel. Same inputs and
    outputs as the tf2onnx graph (`source_ids` -> memory, projected_keys, mask, state_0).

    Padding must come last in every row (as `encode_batch` and the server pad): the
    mask's count of non-padding ids is the `sequence_lens` of the GRU, which then runs
    the backward direction from each row's last real token, like the masked Keras loop.

    Args:
        model: a built `Seq2SeqAttention` with `native_encoder_supported(model)`.
        source_length: optional static source length (`ExportModule.max_source_length`).

    Returns:
        an `onnx.ModelProto`.
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    encoder = model.encoder
    dirs, units = encoder._directions, encoder.units
    inits = [
        numpy_helper.from_array(np.asarray(encoder.embedding.embeddings, np.float32), "embedding"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
        numpy_helper.from_array(np.array([0, 0, dirs * units], np.int64), "merge3"),
        numpy_helper.from_array(np.array([0, dirs * units], np.int64), "merge2"),
        numpy_helper.from_array(np.array(0, np.int32), "pad"),
    ]
    node = helper.make_node
    nodes = [
        node("Equal", ["source_ids", "pad"], ["is_pad"]),
        node("Not", ["is_pad"], ["mask_bool"]),  # (batch, length)
        node("Cast", ["mask_bool"], ["mask"], to=TensorProto.FLOAT),
        node("Cast", ["mask_bool"], ["mask_int"], to=TensorProto.INT32),
        node("ReduceSum", ["mask_int", "axis1"], ["lengths"], keepdims=0),  # (batch,)
        node("Gather", ["embedding", "source_ids"], ["embedded"]),  # (batch, length, emb)
        node("Transpose", ["embedded"], ["x0"], perm=[1, 0, 2]),  # (length, batch, emb)
    ]
    x = "x0"
    for i in range(encoder.num_layers):
        w, r, b = _gru_weights(encoder.cells[i * dirs : (i + 1) * dirs])
        inits += [numpy_helper.from_array(a, f"{n}{i}") for n, a in (("W", w), ("R", r), ("B", b))]
        nodes += [
            node(
                "GRU",
                [x, f"W{i}", f"R{i}", f"B{i}", "lengths"],
                [f"y{i}", f"h{i}"],  # (length, dirs, batch, units), (dirs, batch, units)
                hidden_size=units,
                direction="bidirectional" if dirs == 2 else "forward",
                linear_before_reset=1,
            ),
            node("Transpose", [f"y{i}"], [f"yt{i}"], perm=[0, 2, 1, 3]),
            node("Reshape", [f"yt{i}", "merge3"], [f"x{i + 1}"]),  # (length, batch, dirs*units)
        ]
        x = f"x{i + 1}"
    top = encoder.num_layers - 1
    bridge = encoder.bridges[0]
    inits += [
        numpy_helper.from_array(np.asarray(bridge.kernel, np.float32), "bridge_kernel"),
        numpy_helper.from_array(np.asarray(bridge.bias, np.float32), "bridge_bias"),
        numpy_helper.from_array(
            np.asarray(model.decoder_cell.attention.key_kernel, np.float32), "key_kernel"
        ),
    ]
    nodes += [
        node("Transpose", [x], ["outputs"], perm=[1, 0, 2]),  # (batch, length, memory_units)
        node("Unsqueeze", ["mask", "minus1"], ["mask3"]),
        node("Mul", ["outputs", "mask3"], ["memory"]),
        node("Transpose", [f"h{top}"], ["finals_t"], perm=[1, 0, 2]),  # (batch, dirs, units)
        node("Reshape", ["finals_t", "merge2"], ["finals"]),  # (batch, memory_units)
        node("Gemm", ["finals", "bridge_kernel", "bridge_bias"], ["bridged"]),
        node("Tanh", ["bridged"], ["state_0"]),
        node("MatMul", ["memory", "key_kernel"], ["projected_keys"]),
    ]
    inits.append(numpy_helper.from_array(np.array([-1], np.int64), "minus1"))
    length = source_length or "length"
    value = helper.make_tensor_value_info
    graph = helper.make_graph(
        nodes,
        "encode",
        [value("source_ids", TensorProto.INT32, ["batch", length])],
        [
            value("memory", TensorProto.FLOAT, ["batch", length, dirs * units]),
            value("projected_keys", TensorProto.FLOAT, ["batch", length, None]),
            value("mask", TensorProto.FLOAT, ["batch", length]),
            value("state_0", TensorProto.FLOAT, ["batch", None]),
        ],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)])


def write_encoder_onnx(module, path):
    """`encoder.onnx`: `encoder_onnx` where the model allows, else tf2onnx of `encode`."""
    import onnx

    if not native_encoder_supported(module.model):
        return to_onnx(module.encode, path)
    model = encoder_onnx(module.model, module.max_source_length)
    model.ir_version = min(model.ir_version, 8)  # what tf2onnx writes for opset 17
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def write_greedy_onnx(module, out_dir, suffix="", shortlist=False):
    """`greedy{suffix}.onnx`: `encoder{suffix}.onnx` and `decoder_step{suffix}.onnx` of
    `out_dir` joined by an ONNX `Loop` (`seq2seq_attn.export.greedy_graph`), instead of
    tf2onnx's conversion of the `greedy` signature (at the benchmark size 3.38 GB and 6.5 s to
    convert; at the tutorial's size 2.3x slower to run at batch 1). With `suffix="_int8"`,
    the quantized graphs' own single graph. With `shortlist`, `greedy_shortlist{suffix}.onnx`:
    the same loop around `decoder_step_shortlist{suffix}.onnx`, after `shortlist.onnx`."""
    import onnx

    from seq2seq_attn.export.greedy_graph import greedy_onnx

    out_dir = Path(out_dir)
    encoder = onnx.load(str(out_dir / f"encoder{suffix}.onnx"))
    name = f"decoder_step_shortlist{suffix}" if shortlist else f"decoder_step{suffix}"
    step = onnx.load(str(out_dir / f"{name}.onnx"))
    selection = onnx.load(str(out_dir / SHORTLIST_FILES["shortlist_output"])) if shortlist else None
    model = greedy_onnx(encoder, step, module.model.start_id, module.model.end_id, selection)
    onnx.checker.check_model(model)
    onnx.save(model, str(out_dir / f"greedy{'_shortlist' if shortlist else ''}{suffix}.onnx"))


def quantize_onnx(path, out_path):
    """Dynamic int8 quantization of an ONNX graph's weights (onnxruntime.quantization)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()  # it advises pre-processing on the root logger, every export
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(str(path), str(out_path), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)


def _run(name, fn, *args):
    """The default `stage` of `export_all`: just call it."""
    return fn(*args)


def release_memory():
    """Collects garbage and hands freed heap pages back to the system (glibc `malloc_trim`).

    Each conversion frees its graphs, but glibc keeps the pages for reuse and the next
    conversion's peak then comes on top of them: at the benchmark size the export's peak
    RSS grew stage by stage to 5.5 GB. Trimming after each stage makes the peak the
    largest single stage's instead of their sum. Does nothing more than `gc.collect()`
    where there is no glibc.
    """
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


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
    given = stage

    def stage(name, fn, *args):
        value = given(name, fn, *args)
        release_memory()
        return value

    stage("saved_model", save_saved_model, module.for_saved_model(), out_dir / "saved_model")
    with tempfile.TemporaryDirectory() as tmp:
        frozen = Path(tmp) / "frozen"
        stage("frozen_step_graphs", save_frozen_steps, module, frozen)
        for filename, quantization in TFLITE_VARIANTS.items():
            names = (*STEP_SIGNATURES, *module.shortlist_signatures)
            stage(f"tflite:{filename}", to_tflite, frozen, out_dir / filename, quantization, names)
            written[filename] = filename
    stage("onnx:encoder.onnx", write_encoder_onnx, module, out_dir / "encoder.onnx")
    written["encoder.onnx"] = "encoder.onnx"
    stage("onnx:decoder_step.onnx", to_onnx, module.decode_step, out_dir / "decoder_step.onnx")
    stage("onnx:greedy.onnx", write_greedy_onnx, module, out_dir)
    written.update({name: name for name in ("decoder_step.onnx", "greedy.onnx")})
    if module.shortlist is not None:  # the host search's shortlist graphs (issue 34)
        for signature in SHORTLIST_STEP_SIGNATURES:
            filename = SHORTLIST_FILES[signature]
            stage(f"onnx:{filename}", to_onnx, getattr(module, signature), out_dir / filename)
            written[filename] = filename
        stage("onnx:greedy_shortlist.onnx", write_greedy_onnx, module, out_dir, "", True)
        written["greedy_shortlist.onnx"] = "greedy_shortlist.onnx"
    for filename in ("encoder.onnx", "decoder_step.onnx"):
        quantized = filename.replace(".onnx", "_int8.onnx")
        stage(f"onnx_int8:{quantized}", quantize_onnx, out_dir / filename, out_dir / quantized)
        written[quantized] = quantized
    stage("onnx_int8:greedy_int8.onnx", write_greedy_onnx, module, out_dir, "_int8")
    written["greedy_int8.onnx"] = "greedy_int8.onnx"
    if module.shortlist is not None:  # int8 step, float output columns (a run-time input)
        source, quantized = "decoder_step_shortlist.onnx", "decoder_step_shortlist_int8.onnx"
        stage(f"onnx_int8:{quantized}", quantize_onnx, out_dir / source, out_dir / quantized)
        name = "greedy_shortlist_int8.onnx"
        stage(f"onnx_int8:{name}", write_greedy_onnx, module, out_dir, "_int8", True)
        written.update({quantized: quantized, name: name})
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


def to_translate_onnx(export_dir, tokenizers, path, greedy_file="greedy.onnx"):
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
        greedy_file: the greedy graph inside: `greedy_shortlist.onnx` writes
            `translate_shortlist.onnx`, each sentence over its own shortlist candidates.
    """
    import onnx
    from onnx import TensorProto, compose, helper

    greedy = onnx.load(str(Path(export_dir) / greedy_file))
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
