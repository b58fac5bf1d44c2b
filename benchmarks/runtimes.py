"""The one way the benchmarks build a runtime: through the product's own loaders.

`decoder(name, run_dir, export_dir)` returns `decode(source_ids, beam_width) -> tokens` for
one runtime of an export, built the way the product builds it:

- `keras_eager`: `Translator.load(run_dir).model.generate`, no `tf.function`;
- `saved_model`: `tf.saved_model.load` of the export's SavedModel, its `greedy` (beam 1)
  and `translate_ids` (beam 4) signatures; `saved_model_session`: the `greedy` signature in
  a TF1 session, loaded as TF Serving loads it (`export.tf_serving_loader`);
- `onnx_host` / `onnx_host_int8` / `litert_fp32` / `litert_int8`: the server's loader
  (`seq2seq_attn.serving.app.load_model`) and the host search of
  `seq2seq_attn.inference` (what `seq2seq-attn serve` runs); `litert_fp16`,
  `onnx_host_ort_threads` (onnxruntime's own thread count) and `onnx_host_spin` (that pool
  spinning): the same runtime classes with those options;
- `onnx_graph` / `litert_graph`: the export's single greedy graph (`greedy.onnx`, the
  `greedy` signature of `model.tflite`), greedy only;
- `NAME_shortlist` (`onnx_host`, `onnx_graph`, `litert_graph`, `saved_model`): the same
  runtime over the batch's lexical shortlist candidates (an export of a run with
  `shortlist.npz`): the host search over `decoder_step_shortlist.onnx`
  (`decode(..., shortlist=True)`, the server's path for `"full_vocabulary": false`),
  `greedy_shortlist.onnx`, `model.tflite`'s `greedy_shortlist` and the SavedModel's
  `greedy_shortlist` signature, greedy only. `full_vocabulary_twin(name)` is the runtime
  without the shortlist.
"""

from pathlib import Path

RUNTIMES = (
    "keras_eager",
    "saved_model",
    "saved_model_session",
    "onnx_host",
    "onnx_host_int8",
    "onnx_host_ort_threads",
    "onnx_host_spin",
    "onnx_graph",
    "litert_fp32",
    "litert_fp16",
    "litert_int8",
    "litert_graph",
    "onnx_host_shortlist",
    "onnx_graph_shortlist",
    "litert_graph_shortlist",
    "saved_model_shortlist",
)
SHORTLIST_SUFFIX = "_shortlist"
SINGLE_GRAPH_GREEDY = {"onnx_graph", "litert_graph"}
ALIASES = {"litert_host": "litert_fp32"}  # tutorial_size's name


def full_vocabulary_twin(name):
    """The runtime that decodes like `name` over the whole vocabulary (None: not a shortlist
    runtime)."""
    if not name.endswith(SHORTLIST_SUFFIX):
        return None
    return name[: -len(SHORTLIST_SUFFIX)]


def step_model(name, export_dir, threads=None):
    """The onnxruntime or LiteRT model of an `onnx_*` / `litert_*` runtime."""
    from seq2seq_attn.inference.runtime import LiteRTModel, OnnxModel
    from seq2seq_attn.serving.app import load_model

    export_dir = Path(export_dir)
    if name == "onnx_host_ort_threads":
        return OnnxModel(export_dir, threads=0)
    if name == "onnx_host_spin":
        return OnnxModel(export_dir, threads=0, spinning=True)
    if name == "litert_fp16":
        return LiteRTModel(export_dir / "model_fp16.tflite", threads=threads)
    backend = "onnx" if name.startswith("onnx") else "tflite"
    return load_model(export_dir, backend, quantized=name.endswith("int8"), threads=threads)


def decoder(name, run_dir, export_dir, threads=None, max_length=None):
    """`decode(source_ids, beam_width) -> tokens (batch, steps)` of runtime `name`, loaded.

    `threads`: intra-op threads (None: the runtime's default, the server's); `max_length`:
    decoder steps of the host search and Keras (None: their default).
    """
    from seq2seq_attn import tokenizer

    name = ALIASES.get(name, name)
    if name not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {name!r}")
    export_dir = Path(export_dir)
    limit = {} if max_length is None else {"max_length": max_length}
    if name == "keras_eager":
        return _keras_eager(run_dir, limit)
    if name.startswith("saved_model"):
        return _saved_model(name, export_dir)
    shortlist = full_vocabulary_twin(name) is not None
    base = full_vocabulary_twin(name) or name
    model = step_model(base, export_dir, threads)
    if shortlist and not model.has_shortlist:
        raise ValueError(f"runtime {name!r} needs an export of a run with a shortlist")
    if base in SINGLE_GRAPH_GREEDY:
        return lambda ids, beam: model.greedy_graph(ids, shortlist=shortlist)["tokens"]
    start, end = tokenizer.START_ID, tokenizer.END_ID
    kwargs = {**limit, "shortlist": True} if shortlist else limit

    def host(ids, beam):
        return model.decode(ids, start, end, beam_width=beam, **kwargs)["tokens"]

    return host


def _keras_eager(run_dir, limit):
    from seq2seq_attn.translator import Translator

    model = Translator.load(run_dir).model

    def keras_eager(ids, beam):
        return model.generate(ids, beam_width=beam, **limit)["tokens"].numpy()

    return keras_eager


def _saved_model(name, export_dir):
    if name == "saved_model_session":
        from seq2seq_attn.export.tf_serving_loader import SessionSignatures

        greedy = SessionSignatures(export_dir / "saved_model")["greedy"]
        return lambda ids, beam: greedy(source_ids=ids)["tokens"]
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the ops of the serving_default signature)

    signatures = tf.saved_model.load(str(export_dir / "saved_model")).signatures
    if name == "saved_model_shortlist":
        greedy = signatures["greedy_shortlist"]
        return lambda ids, beam: greedy(source_ids=tf.constant(ids))["tokens"].numpy()
    by_beam = {1: signatures["greedy"], 4: signatures["translate_ids"]}
    return lambda ids, beam: by_beam[beam](source_ids=tf.constant(ids))["tokens"].numpy()
