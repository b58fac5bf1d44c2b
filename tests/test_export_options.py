"""Export parity for the deeper-decoder, tied-embedding and no-attention options.

Tiny models (no training run: the step graphs are what the options change) go through the
export pipeline's own pieces: the SavedModel, the frozen step graphs converted to a
builtin-only float32 TFLite file, the ONNX encoder and step, and `greedy.onnx` joined from
those two by an ONNX `Loop` (`write_greedy_onnx`, every state wired by name). Each artifact is then
checked by the parity harness `export` runs (`Reference`, `check_saved_model`,
`check_step_runtime`, `float_failures`): step logits within `LOGITS_ATOL` along the Keras
greedy trajectory, host-side greedy and beam-4 and the in-graph greedy token for token.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from seq2seq_attn.export.convert import (
    save_frozen_steps,
    save_saved_model,
    to_onnx,
    to_tflite,
    write_greedy_onnx,
)
from seq2seq_attn.export.signatures import ExportModule
from seq2seq_attn.export.validate import (
    LOGITS_ATOL,
    Reference,
    check_saved_model,
    check_step_runtime,
    float_failures,
)
from seq2seq_attn.inference.runtime import LiteRTModel, OnnxModel
from seq2seq_attn.interface import state_names
from seq2seq_attn.model import Seq2SeqAttention

SOURCE_VOCAB, TARGET_VOCAB = 24, 20
OPTIONS = {
    # rnn, decoder_layers, tie_embeddings, other model arguments
    "gru-2-tied": dict(rnn="gru", decoder_layers=2, tie_embeddings=True),  # with projection P
    "lstm-2-tied": dict(  # input feeding, features of embedding size: no projection
        rnn="lstm",
        decoder_layers=2,
        tie_embeddings=True,
        attention="luong",
        input_feeding=True,
        embedding_dim=16,
    ),
    "gru-vanilla": dict(rnn="gru", attention=None),  # the step reads no keys or mask
}
# The residual third layer is covered by the NumPy reference of tests/test_decoder.py.


def source_batch():
    """Mixed lengths (1 to 9 tokens), so padding is exercised."""
    lengths = [1, 4, 9, 6]
    ids = np.zeros((len(lengths), max(lengths)), np.int32)
    rng = np.random.default_rng(11)
    for row, n in enumerate(lengths):
        ids[row, :n] = rng.integers(4, SOURCE_VOCAB, size=n)
    return ids


@pytest.fixture(
    scope="module",
    params=list(OPTIONS),
)
def exported(request, tmp_path_factory):
    """`(model, export_dir, reference)`: SavedModel, model.tflite, the ONNX step graphs."""
    keras.utils.set_random_seed(0)
    kwargs = dict(dict(embedding_dim=8, units=16, attention_units=16), **OPTIONS[request.param])
    model = Seq2SeqAttention(SOURCE_VOCAB, TARGET_VOCAB, **kwargs)
    model.build()
    module = ExportModule(model, beam_width=4)
    out = tmp_path_factory.mktemp(request.param)
    save_saved_model(module, out / "saved_model")
    save_frozen_steps(module, out / "frozen")
    to_tflite(out / "frozen", out / "model.tflite")  # builtin ops only, or it raises
    to_onnx(module.encode, out / "encoder.onnx")
    to_onnx(module.decode_step, out / "decoder_step.onnx")
    write_greedy_onnx(module, out)
    return model, out, Reference(model, source_batch())


def test_saved_model_parity(exported):
    _, out, reference = exported
    signatures = tf.saved_model.load(str(out / "saved_model")).signatures
    result = check_saved_model(reference, signatures)
    assert result["max_abs_logit_diff"] <= LOGITS_ATOL
    assert float_failures("saved_model", result) == []


@pytest.mark.parametrize("runtime", ["litert", "onnx"])
def test_step_runtime_parity(exported, runtime):
    model, out, reference = exported
    rt = LiteRTModel(out / "model.tflite") if runtime == "litert" else OnnxModel(out)
    assert len(rt.state_names) == len(model.decoder_cell.state_sizes)
    result, host_greedy = check_step_runtime(reference, rt)
    assert float_failures(runtime, result) == [], result
    assert host_greedy.shape[0] == 4


def test_tflite_has_builtin_ops_only_and_every_state(exported):
    from ai_edge_litert import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model, out, _ = exported
    tflite = flatbuffer_utils.read_model(str(out / "model.tflite"))
    codes = [max(op.builtinCode, op.deprecatedBuiltinCode) for op in tflite.operatorCodes]
    assert schema.BuiltinOperator.CUSTOM not in codes  # no Flex or custom ops
    inputs = LiteRTModel(out / "model.tflite").interpreter.get_signature_list()["decode_step"]
    n = len(model.decoder_cell.state_sizes)
    assert state_names(inputs["inputs"]) == [f"state_{i}" for i in range(n)]
