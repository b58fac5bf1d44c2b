"""The parity harness: every artifact on every runtime against the Keras model.

For float32 artifacts a mismatch is an error: step logits must agree within
`LOGITS_ATOL` along the Keras greedy trajectory, and greedy and beam-4 tokens must
agree exactly (host-side search over the step graphs, and the single-graph greedy
decodes). Quantized artifacts report their BLEU against the float Keras model and must
lose at most `BLEU_DROP[variant]`. `translate.onnx` (strings in, strings out) must give
exactly the host's strings: `decode` of the host-side greedy tokens. All mismatches are
collected, then reported at once.
"""

from pathlib import Path

import numpy as np
import tensorflow as tf

from seq2seq_attn.inference.runtime import LiteRTModel, OnnxModel
from seq2seq_attn.interface import new_state_name, state_name, state_names, trim_after_end

LOGITS_ATOL = 1e-4
BLEU_DROP = {"fp16": 0.5, "int8": 1.0}
BEAM_WIDTH = 4


def _trim(tokens, end_id):
    """Token rows as lists, cut after the first [END]."""
    return [trim_after_end(row, end_id).tolist() for row in np.asarray(tokens)]


class Reference:
    """What the Keras model computes on `source_ids`: the yardstick for every artifact."""

    def __init__(self, model, source_ids):
        self.model = model
        self.source_ids = np.asarray(source_ids, np.int32)
        self.end_id, self.start_id = model.end_id, model.start_id
        greedy = model.generate(self.source_ids, beam_width=1)
        beam = model.generate(self.source_ids, beam_width=BEAM_WIDTH)
        self.greedy = _trim(greedy["tokens"], self.end_id)
        self.beam = _trim(beam["tokens"], self.end_id)
        self.trajectory = np.asarray(greedy["tokens"])  # (batch, steps) fed back step by step
        self.logits = self.step_logits(model.encode, model.decode_step)

    def step_logits(self, encode, step):
        """Logits `(batch, steps, vocab)` of `step` fed the Keras greedy trajectory."""
        memory, keys, mask, states = encode(self.source_ids)
        prev = np.full([len(self.source_ids)], self.start_id, np.int32)
        logits = []
        for t in range(self.trajectory.shape[1]):
            out, states, _ = step(prev, states, memory, keys, mask)
            logits.append(np.asarray(out))
            prev = self.trajectory[:, t]
        return np.stack(logits, axis=1)  # (batch, steps, vocab)

    def agreement(self, tokens, which="greedy"):
        expected = self.greedy if which == "greedy" else self.beam
        got = _trim(tokens, self.end_id)
        return float(np.mean([a == b for a, b in zip(got, expected, strict=True)]))


def check_step_runtime(reference, runtime):
    """Logit diff, host greedy/beam agreement and single-graph greedy agreement of a runtime."""
    logits = reference.step_logits(runtime.encode, runtime.step)
    ids, start, end = reference.source_ids, reference.start_id, reference.end_id
    host_greedy = runtime.decode(ids, start, end, beam_width=1)["tokens"]
    host_beam = runtime.decode(ids, start, end, beam_width=BEAM_WIDTH)["tokens"]
    result = {
        "max_abs_logit_diff": float(np.max(np.abs(logits - reference.logits))),
        "greedy_agreement": reference.agreement(host_greedy),
        "beam4_agreement": reference.agreement(host_beam, "beam"),
        "greedy_graph_agreement": reference.agreement(runtime.greedy_graph(ids)["tokens"]),
    }
    return result, host_greedy


def check_saved_model(reference, path, tokenizers=None, texts=None):
    """Every signature of the SavedModel against the Keras model."""
    loaded = tf.saved_model.load(str(path))
    sig = loaded.signatures
    ids = tf.constant(reference.source_ids)

    def encode(source_ids):
        out = sig["encode"](source_ids=tf.constant(source_ids))
        states = [out[k] for k in state_names(out)]
        return out["memory"], out["projected_keys"], out["mask"], states

    def step(prev, states, memory, keys, mask):
        inputs = {state_name(i): s for i, s in enumerate(states)}
        out = sig["decode_step"](
            prev_tokens=tf.constant(prev), memory=memory, projected_keys=keys, mask=mask, **inputs
        )
        new = [out[new_state_name(i)] for i in range(len(states))]
        return out["logits"], new, out["attention"]

    logits = reference.step_logits(encode, step)
    result = {
        "max_abs_logit_diff": float(np.max(np.abs(logits - reference.logits))),
        "greedy_graph_agreement": reference.agreement(sig["greedy"](source_ids=ids)["tokens"]),
        "translate_ids_beam4_agreement": reference.agreement(
            sig["translate_ids"](source_ids=ids)["tokens"], "beam"
        ),
    }
    if tokenizers is not None and texts:
        served = sig["serving_default"](text=tf.constant(texts))["translation"].numpy()
        source = tokenizers.source.encode_batch(texts)
        beam = reference.model.generate(source, beam_width=BEAM_WIDTH)["tokens"].numpy()
        expected = [tokenizers.target.decode(row) for row in beam]
        got = [s.decode("utf-8") for s in served]
        result["serving_default_agreement"] = float(
            np.mean([a == b for a, b in zip(got, expected, strict=True)])
        )
    return result


def runtimes(directory):
    """Every (artifact, runtime, variant) to check, lazily constructed."""
    return [
        ("model.tflite", "litert", None, lambda: LiteRTModel(directory / "model.tflite")),
        (
            "model_fp16.tflite",
            "litert",
            "fp16",
            lambda: LiteRTModel(directory / "model_fp16.tflite"),
        ),
        (
            "model_int8.tflite",
            "litert",
            "int8",
            lambda: LiteRTModel(directory / "model_int8.tflite"),
        ),
        ("*.onnx", "onnxruntime", None, lambda: OnnxModel(directory)),
        ("*_int8.onnx", "onnxruntime", "int8", lambda: OnnxModel(directory, quantized=True)),
    ]


def float_failures(name, result):
    """The parity rules for float32 artifacts; returns a list of messages."""
    failures = []
    if result["max_abs_logit_diff"] > LOGITS_ATOL:
        failures.append(
            f"{name}: max |logit diff| {result['max_abs_logit_diff']:.3g} > {LOGITS_ATOL}"
        )
    for key, value in result.items():
        if key.endswith("agreement") and value < 1.0:
            failures.append(f"{name}: {key} {value:.3f} < 1")
    return failures


def _bleu(tokens, tokenizers, references):
    import sacrebleu

    hypotheses = [tokenizers.target.decode(row) for row in tokens]  # rows of ids
    return float(sacrebleu.corpus_bleu(hypotheses, [list(references)]).score)


def _check_quantized(name, variant, result, host_greedy, keras_bleu, tokenizers, references):
    result["bleu"] = _bleu(host_greedy, tokenizers, references)
    result["bleu_keras"] = keras_bleu
    result["bleu_drop"] = keras_bleu - result["bleu"]
    if result["bleu_drop"] > BLEU_DROP[variant]:
        return [f"{name}: BLEU drop {result['bleu_drop']:.2f} > {BLEU_DROP[variant]}"]
    return []


TRANSLATE_RUNTIME = "onnxruntime+extensions"


def load_onnxruntime_extensions():
    """The `onnxruntime_extensions` module, its native library bound to its own symbols.

    The library carries its own protobuf and sentencepiece. TensorFlow loads its libraries
    with RTLD_GLOBAL, so a library loaded after it resolves those C++ symbols to TensorFlow's
    protobuf (another version) and creating a session with the SentencepieceTokenizer op
    segfaults (in `MessageLite::ParseFromArray`). RTLD_DEEPBIND makes it look up its own
    symbols first. Import it through this function in any process that may hold TensorFlow;
    an earlier plain `import onnxruntime_extensions` after TensorFlow cannot be undone.
    """
    import os
    import sys

    import onnx  # noqa: F401  (loaded the usual way, not deep-bound)
    import onnxruntime  # noqa: F401

    if "onnxruntime_extensions" not in sys.modules:
        flags = sys.getdlopenflags()
        sys.setdlopenflags(flags | getattr(os, "RTLD_DEEPBIND", 0))  # 0 where there is none
        try:
            import onnxruntime_extensions  # noqa: F401
        finally:
            sys.setdlopenflags(flags)
    return sys.modules["onnxruntime_extensions"]


def translate_session(model):
    """An onnxruntime session with onnxruntime-extensions' ops registered.

    Args:
        model: the path of `translate.onnx` (or of any graph using those ops), or an
            `onnx.ModelProto`.
    """
    import onnxruntime as ort

    onnxruntime_extensions = load_onnxruntime_extensions()
    options = ort.SessionOptions()
    options.register_custom_ops_library(onnxruntime_extensions.get_library_path())
    source = model.SerializeToString() if hasattr(model, "SerializeToString") else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def check_translate_onnx(reference, path, tokenizers, texts, host_greedy):
    """`translate.onnx` (strings in, strings out) against the host-side text path.

    Args:
        reference: the `Reference` of `tokenizers.source.encode_batch(texts)`.
        path: the `translate.onnx` file.
        tokenizers: the run's `TokenizerPair`.
        texts: the source sentences.
        host_greedy: int32 `(batch, steps)`, host-side greedy search over the float ONNX step
            graphs on `reference.source_ids`.

    Returns:
        dict: `translation_agreement` (its strings equal `tokenizers.target.decode` of
        `host_greedy`), `greedy_graph_agreement` (its tokens equal the Keras greedy decode)
        and up to 3 `mismatches` as [text, got, expected].
    """
    session = translate_session(path)
    got, tokens = session.run(["translation", "tokens"], {"text": np.array(texts, object)})
    expected = [tokenizers.target.decode(row) for row in host_greedy]
    same = [a == b for a, b in zip(got, expected, strict=True)]
    return {
        "translation_agreement": float(np.mean(same)),
        "greedy_graph_agreement": reference.agreement(tokens),
        "mismatches": [
            [text, str(a), b]
            for text, a, b, ok in zip(texts, got, expected, same, strict=True)
            if not ok
        ][:3],
    }


def translate_failures(result):
    """The parity rule for `translate.onnx`: every string and every token sequence agrees."""
    failures = [
        f"translate.onnx: {key} {value:.3f} < 1"
        for key, value in result.items()
        if key.endswith("agreement") and value < 1.0
    ]
    if result["mismatches"]:
        text, got, expected = result["mismatches"][0]
        failures.append(f"translate.onnx: {text!r} -> {got!r}, host {expected!r}")
    return failures


def validate_export(directory, model, tokenizers, texts, references):
    """Checks every artifact in an export directory; returns the parity report.

    Args:
        directory: export directory (as written by `convert.export_all`).
        model: the Keras `Seq2SeqAttention` the artifacts came from.
        tokenizers: the run's `seq2seq_attn.tokenizer.TokenizerPair`.
        texts: held-out source sentences.
        references: their reference translations (for the BLEU of quantized variants).

    Returns:
        dict: tolerances, per-artifact results, `failures` (list) and `passed` (bool).
    """
    directory = Path(directory)
    reference = Reference(model, tokenizers.source.encode_batch(texts))
    keras_bleu = _bleu(reference.greedy, tokenizers, references)
    artifacts, failures = {}, []
    result = check_saved_model(reference, directory / "saved_model", tokenizers, list(texts[:16]))
    artifacts["saved_model/tensorflow"] = result
    failures += float_failures("saved_model", result)
    for name, runtime_name, variant, make in runtimes(directory):
        result, host_greedy = check_step_runtime(reference, make())
        artifacts[f"{name}/{runtime_name}"] = result
        if name == "*.onnx":
            onnx_greedy = host_greedy  # the host text path translate.onnx must equal
        if variant is None:
            failures += float_failures(name, result)
        else:
            failures += _check_quantized(
                name, variant, result, host_greedy, keras_bleu, tokenizers, references
            )
    if not (directory / "translate.onnx").is_file():
        failures.append("translate.onnx: missing")
    else:
        result = check_translate_onnx(
            reference, directory / "translate.onnx", tokenizers, list(texts), onnx_greedy
        )
        artifacts[f"translate.onnx/{TRANSLATE_RUNTIME}"] = result
        failures += translate_failures(result)
    return {
        "tolerances": {"logits_atol": LOGITS_ATOL, "bleu_drop": BLEU_DROP},
        "samples": len(texts),
        "keras_bleu": keras_bleu,
        "artifacts": artifacts,
        "failures": failures,
        "passed": not failures,
    }
