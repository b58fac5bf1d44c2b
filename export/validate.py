"""The parity harness: every artifact on every runtime against the Keras model.

For float32 artifacts a mismatch is an error: step logits must agree within
`LOGITS_ATOL` along the Keras greedy trajectory, and greedy and beam-4 tokens must
agree exactly (host-side search over the step graphs, and the single-graph greedy
decodes) unless the two decodes parted at a near tie, a choice whose margin was within
what logits `LOGITS_ATOL` apart can swap (`Reference.greedy_ties`, `beam_ties`; counted
and reported as `*_ties`: a barely trained model's flat distributions have them).

Quantized artifacts report their BLEU against the float Keras model and must lose at
most `BLEU_DROP[variant]`. `translate.onnx` (strings in, strings out) must give exactly
the host's strings: `decode` of the host-side greedy tokens. The SavedModel is checked
twice: through `tf.saved_model.load`, and loaded the way TF Serving loads it
(`tf_serving_loader`), where its `greedy` and `serving_default` must agree too. All
mismatches are collected, then reported at once.

The sentences are sorted by length and decoded in batches of `PARITY_BATCH` (little
padding, and a batch stops at its own longest decode); every artifact sees the same
batches as the Keras reference, which runs compiled (`KerasDecoder`), and every sentence
still has to agree on its own.
"""

import os
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from seq2seq_attn.errors import ParityError
from seq2seq_attn.export.search_parity import validate_search
from seq2seq_attn.export.tf_serving_loader import SessionSignatures
from seq2seq_attn.inference import search
from seq2seq_attn.inference.runtime import SHORTLIST_FILES_INT8, LiteRTModel, OnnxModel
from seq2seq_attn.interface import new_state_name, state_name, state_names, trim_after_end

LOGITS_ATOL = 1e-4
BLEU_DROP = {"fp16": 0.5, "int8": 1.0}
BEAM_WIDTH = 4
PARITY_BATCH = 32  # parity sentences decoded together, of similar length


def _trim(tokens, end_id):
    """Token rows as lists, cut after the first [END]."""
    return [trim_after_end(row, end_id).tolist() for row in np.asarray(tokens)]


def _share_equal(got, expected):
    """The share of rows of `got` equal to their row of `expected` (lists of token lists)."""
    return float(np.mean([a == b for a, b in zip(got, expected, strict=True)]))


class KerasDecoder:
    """The Keras model's encode, step and whole decodes, compiled once with `tf.function`.

    Every function takes any batch size and source length (no retracing per parity batch);
    `Reference` calls these instead of the eager model when given one.
    """

    def __init__(self, model):
        ids = tf.TensorSpec([None, None], tf.int32)
        self.model = model
        self._generate = {
            width: tf.function(
                lambda source_ids, width=width: model.generate(source_ids, beam_width=width),
                input_signature=[ids],
                autograph=False,
            )
            for width in (1, BEAM_WIDTH)
        }
        self.encode = tf.function(model.encode, input_signature=[ids], autograph=False)
        self.decode_step = tf.function(model.decode_step, reduce_retracing=True, autograph=False)
        candidates = tf.TensorSpec([None, None], tf.bool)
        self._shortlisted = {
            width: tf.function(
                lambda source_ids, candidates, width=width: model.generate(
                    source_ids, beam_width=width, candidates=candidates
                ),
                input_signature=[ids, candidates],
                autograph=False,
            )
            for width in (1, BEAM_WIDTH)
        }

    def generate(self, source_ids, beam_width):
        return self._generate[beam_width](tf.constant(source_ids, tf.int32))

    def generate_shortlist(self, source_ids, candidates, beam_width):
        """`generate` over `candidates`, bool `(batch, vocab)`: each sentence's own."""
        ids = tf.constant(source_ids, tf.int32)
        return self._shortlisted[beam_width](ids, tf.constant(candidates, tf.bool))


class _EagerDecoder:
    """The Keras model called eagerly: `KerasDecoder`'s interface without the compiling."""

    def __init__(self, model):
        self.model = model
        self.encode, self.decode_step = model.encode, model.decode_step

    def generate(self, source_ids, beam_width):
        return self.model.generate(source_ids, beam_width=beam_width)

    def generate_shortlist(self, source_ids, candidates, beam_width):
        return self.model.generate(source_ids, beam_width=beam_width, candidates=candidates)


class Reference:
    """What the Keras model computes on `source_ids`: the yardstick for every artifact.

    Args:
        model: the Keras `Seq2SeqAttention`.
        source_ids: int `(batch_size, source_length)`, one parity batch.
        decoder: a `KerasDecoder` of `model` (compiled once, shared by the batches), or
            None to call the model eagerly.
        spill_to: optional `.npy` path: the step logits are kept there, not in memory, and
            read back whenever `logits` is used (every artifact compares against every
            batch's; at the benchmark size they are 0.6 GB for 200 sentences).
    """

    def __init__(self, model, source_ids, decoder=None, spill_to=None):
        self.model = model
        self.decoder = decoder or _EagerDecoder(model)
        self.source_ids = np.asarray(source_ids, np.int32)
        self.end_id, self.start_id = model.end_id, model.start_id
        greedy = self.decoder.generate(self.source_ids, 1)
        beam = self.decoder.generate(self.source_ids, BEAM_WIDTH)
        self.greedy = _trim(greedy["tokens"], self.end_id)
        self.beam = _trim(beam["tokens"], self.end_id)
        self.trajectory = np.asarray(greedy["tokens"])  # (batch, steps) fed back step by step
        self._shortlisted = {}  # (shortlist, beam width) -> token rows, see `shortlist_tokens`
        logits = self.step_logits(self.decoder.encode, self.decoder.decode_step)
        self.greedy_margins = _top2_gap(logits)  # (batch, steps), for `greedy_ties`
        self._spill = spill_to
        if spill_to is None:
            self._logits = logits
        else:
            np.save(spill_to, logits)

    @property
    def logits(self):
        """float32 `(batch, steps, vocab)`: the Keras step logits on the greedy trajectory."""
        return self._logits if self._spill is None else np.load(self._spill)

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
        return _share_equal(_trim(tokens, self.end_id), expected)

    def shortlist_tokens(self, shortlist, beam_width):
        """Keras' decode of the batch, each sentence over its own `shortlist` candidates:
        token rows cut after [END], decoded once per beam width (every shortlist check of
        an export compares against them)."""
        key = (id(shortlist), beam_width)
        if key not in self._shortlisted:
            mask = shortlist.mask(self.source_ids)
            out = self.decoder.generate_shortlist(self.source_ids, mask, beam_width)
            self._shortlisted[key] = _trim(out["tokens"], self.end_id)
        return self._shortlisted[key]

    def greedy_ties(self, tokens):
        """Share of sentences whose greedy `tokens` leave the Keras ones where the Keras
        logits' two best were within `2 * LOGITS_ATOL` (a runtime within tolerance may pick
        either there)."""
        margins = self.greedy_margins  # (batch, steps), on the Keras trajectory
        ties = []
        got = _trim(tokens, self.end_id)
        for i, (row, expected) in enumerate(zip(got, self.greedy, strict=True)):
            t = _first_difference(row, expected)
            near = t is not None and t < margins.shape[1] and margins[i, t] <= 2 * LOGITS_ATOL
            ties.append(near)
        return float(np.mean(ties))

    def beam_ties(self, tokens, margins):
        """Share of sentences whose beam `tokens` differ from the Keras ones and whose
        search came near a tie: at some step t (1-based) the runtime's decision margin
        (`inference.search.beam_search`'s `margins`) was at most `4 * t * LOGITS_ATOL`, what two
        hypotheses' scores, sums of t log-probabilities each off by up to
        `2 * LOGITS_ATOL`, can differ by. The first step where two searches part has
        such a margin."""
        margins = np.asarray(margins)
        allowed = 4 * LOGITS_ATOL * np.arange(1, margins.shape[1] + 1)
        near = (margins <= allowed).any(axis=1)
        got = _trim(tokens, self.end_id)
        differ = np.array([a != b for a, b in zip(got, self.beam, strict=True)])
        return float(np.mean(differ & near))


def _top2_gap(logits):
    """float32 `(batch, steps)`: the best logit minus the second best at every step."""
    top2 = -np.partition(-np.asarray(logits), 1, axis=-1)[..., :2]
    return top2[..., 0] - top2[..., 1]


def _first_difference(a, b):
    """The first index where token lists `a` and `b` differ, None if one is a prefix."""
    return next((t for t, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)


def host_greedy_and_logits(reference, runtime):
    """The host greedy tokens of `runtime` and its step logits on the Keras trajectory.

    Where the host decode took exactly the Keras greedy trajectory (same tokens, same
    number of steps), its own step calls had exactly the replay's inputs, so the logits
    they returned are the replay's and the steps are not run again: at the benchmark size
    the replay was a seventh of the parity time. Otherwise the batch is replayed.

    Returns:
        (int32 `(batch, steps)` host greedy tokens, float32 `(batch, steps, vocab)` logits).
    """
    recorded = []

    def recording_step(*args):
        out = runtime.step(*args)
        recorded.append(np.asarray(out[0]))
        return out

    memory, keys, mask, states = runtime.encode(reference.source_ids)
    tokens = search.greedy_search(
        recording_step, states, memory, keys, mask, reference.start_id, reference.end_id
    )["tokens"]
    if np.array_equal(tokens, reference.trajectory):
        return tokens, np.stack(recorded, axis=1)
    recorded.clear()  # not held beside the replay's own logits
    return tokens, reference.step_logits(runtime.encode, runtime.step)


def check_step_runtime(reference, runtime, quantized=False):
    """Logit diff, host greedy/beam agreement and single-graph greedy agreement of a runtime.

    With `quantized` (an artifact held to its BLEU, not to the tokens) the host beam
    search is left out.
    """
    ids, start, end = reference.source_ids, reference.start_id, reference.end_id
    host_greedy, logits = host_greedy_and_logits(reference, runtime)
    result = {
        "max_abs_logit_diff": float(np.max(np.abs(logits - reference.logits))),
        "greedy_agreement": reference.agreement(host_greedy),
        "greedy_ties": reference.greedy_ties(host_greedy),
    }
    if not quantized:
        beam = runtime.decode(ids, start, end, beam_width=BEAM_WIDTH, with_margins=True)
        result["beam4_agreement"] = reference.agreement(beam["tokens"], "beam")
        result["beam4_ties"] = reference.beam_ties(beam["tokens"], beam["margins"])
    result.update(_greedy_graph_result(reference, runtime.greedy_graph(ids)["tokens"]))
    return result, host_greedy


def check_saved_model(reference, signatures, shortlist=None):
    """The SavedModel's step and whole-decode signatures against the Keras model.

    Args:
        reference: the `Reference` of one parity batch.
        signatures: `tf.saved_model.load(path).signatures`.
        shortlist: the export's `Shortlist`, if it has one: `translate_ids` is then checked
            against Keras' beam decode over each sentence's candidates, and
            `translate_ids_full_vocabulary` against the full one.
    """
    sig = signatures
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
    return {
        "max_abs_logit_diff": float(np.max(np.abs(logits - reference.logits))),
        **_greedy_graph_result(reference, sig["greedy"](source_ids=ids)["tokens"]),
        **_translate_ids_result(reference, sig, shortlist),
    }


def _translate_ids_result(reference, sig, shortlist):
    """`translate_ids` (and with a shortlist `translate_ids_full_vocabulary`) against Keras."""
    ids = tf.constant(reference.source_ids)
    tokens = sig["translate_ids"](source_ids=ids)["tokens"]
    if shortlist is None:
        return {"translate_ids_beam4_agreement": reference.agreement(tokens, "beam")}
    full = sig["translate_ids_full_vocabulary"](source_ids=ids)["tokens"]
    return {
        "translate_ids_beam4_agreement": _share_equal(
            _trim(tokens, reference.end_id), reference.shortlist_tokens(shortlist, BEAM_WIDTH)
        ),
        "translate_ids_full_vocabulary_beam4_agreement": reference.agreement(full, "beam"),
    }


def _greedy_graph_result(reference, tokens):
    """Agreement and near ties of a single-graph greedy decode's `tokens` with Keras."""
    return {
        "greedy_graph_agreement": reference.agreement(tokens),
        "greedy_graph_ties": reference.greedy_ties(tokens),
    }


def check_serving_loader(reference, signatures):
    """The SavedModel's `greedy` as TF Serving loads it (`SessionSignatures`), against Keras."""
    tokens = signatures["greedy"](source_ids=reference.source_ids)["tokens"]
    return _greedy_graph_result(reference, tokens)


def check_serving_default(
    signatures, decoder, tokenizers, texts, source_length=None, shortlist=None
):
    """`serving_default` (strings in, strings out, beam 4) against the Keras beam decode of
    the same ids (padded to the export's static `source_length`, as the graph pads them);
    with a `shortlist`, over each sentence's candidates, and `serving_full_vocabulary`
    against the full decode."""
    source = tokenizers.source.encode_batch(texts, pad_to=source_length)
    pairs = {"serving_default": None}
    if shortlist is not None:
        pairs = {"serving_default": shortlist.mask(source), "serving_full_vocabulary": None}
    result = {}
    for name, mask in pairs.items():
        served = np.asarray(signatures[name](text=tf.constant(texts))["translation"])
        if mask is None:
            beam = decoder.generate(source, BEAM_WIDTH)
        else:
            beam = decoder.generate_shortlist(source, mask, BEAM_WIDTH)
        expected = [tokenizers.target.decode(row) for row in np.asarray(beam["tokens"])]
        got = [s.decode("utf-8") for s in served]
        result[f"{name}_agreement"] = _share_equal(got, expected)
    return result


def runtimes(directory, threads=None):
    """Every (artifact, runtime, variant) to check, lazily constructed.

    `threads`: intra-op threads of every runtime (None: each runtime's default, 1 for
    onnxruntime). Parity decodes batches of up to 128 rows (beam 4), so `validate_export`
    passes the machine's core count: 1.4-1.7x faster than one thread at the benchmark size.
    """
    litert = lambda name: lambda: LiteRTModel(directory / name, threads=threads)  # noqa: E731
    return [
        ("model.tflite", "litert", None, litert("model.tflite")),
        ("model_fp16.tflite", "litert", "fp16", litert("model_fp16.tflite")),
        ("model_int8.tflite", "litert", "int8", litert("model_int8.tflite")),
        ("*.onnx", "onnxruntime", None, lambda: OnnxModel(directory, threads=threads)),
        (
            "*_int8.onnx",
            "onnxruntime",
            "int8",
            lambda: OnnxModel(directory, quantized=True, threads=threads),
        ),
    ]


class SavedModelGreedy:
    """The SavedModel's `greedy_shortlist` signature as a runtime with only `greedy_graph`."""

    def __init__(self, signatures):
        self.signatures = signatures

    def greedy_graph(self, source_ids, shortlist=True):
        run = self.signatures["greedy_shortlist" if shortlist else "greedy"]
        return {k: v.numpy() for k, v in run(source_ids=tf.constant(source_ids)).items()}


def check_shortlist(references, runtime, shortlist, host=True):
    """The host search over the shortlist graphs against Keras' shortlist decode.

    Each sentence of a parity batch decodes over its own candidates (`shortlist.mask`) in
    Keras (`generate(..., candidates=...)`) and on `runtime` (`decode(..., shortlist=True)`,
    greedy and beam 4, over the shortlist step graph or, for a batch whose union of
    candidates is large, the full step masked per sentence; and the single graph
    `greedy_shortlist.onnx`); the tokens must agree exactly. Beside that, the share of
    sentences whose shortlist decode is the full-vocabulary Keras decode. `host=False`: only
    the single graph (the SavedModel).

    Returns:
        dict: `greedy_agreement`, `beam4_agreement`, `greedy_graph_agreement` (shares of all
        sentences), `greedy_same_as_full`, `beam4_same_as_full`, and `mean_candidates` per
        sentence.
    """
    same = {"greedy_agreement": 0, "beam4_agreement": 0, "greedy_graph_agreement": 0}
    same.update(greedy_same_as_full=0, beam4_same_as_full=0)
    if not host:
        same = {"greedy_graph_agreement": 0, "greedy_same_as_full": 0}
    sizes = []
    for reference in references:
        ids, start, end = reference.source_ids, reference.start_id, reference.end_id
        sizes.extend(shortlist.mask(ids).sum(axis=1))
        for width, which, name in ((1, "greedy", "greedy"), (BEAM_WIDTH, "beam", "beam4")):
            if not host and width > 1:
                continue
            keras = reference.shortlist_tokens(shortlist, width)
            full = reference.greedy if which == "greedy" else reference.beam
            if host:
                out = runtime.decode(ids, start, end, beam_width=width, shortlist=True)
                got = _trim(out["tokens"], end)
                same[f"{name}_agreement"] += sum(a == b for a, b in zip(got, keras, strict=True))
            same[f"{name}_same_as_full"] += sum(a == b for a, b in zip(keras, full, strict=True))
            if width == 1:
                graph = _trim(runtime.greedy_graph(ids, shortlist=True)["tokens"], end)
                same["greedy_graph_agreement"] += sum(
                    a == b for a, b in zip(graph, keras, strict=True)
                )
    total = sum(len(r.source_ids) for r in references)
    result = {key: count / total for key, count in same.items()}
    result["mean_candidates"] = float(np.mean(sizes))
    return result


def float_failures(name, result):
    """The parity rules for float32 artifacts; returns a list of messages."""
    failures = []
    if result.get("max_abs_logit_diff", 0.0) > LOGITS_ATOL:  # not every check has logits
        failures.append(
            f"{name}: max |logit diff| {result['max_abs_logit_diff']:.3g} > {LOGITS_ATOL}"
        )
    for key, value in result.items():
        ties = result.get(key.replace("_agreement", "_ties"), 0.0)
        if key.endswith("agreement") and value + ties < 1.0:
            near = f" (+ {ties:.3f} near ties)" if ties else ""
            failures.append(f"{name}: {key} {value:.3f}{near} < 1")
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
OPTIONS_RUNTIME = "onnxruntime, host search"


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


def check_translate_onnx(reference, path, tokenizers, texts, host_greedy, keras_greedy=None):
    """`translate.onnx` (strings in, strings out) against the host-side text path.

    Args:
        reference: the `Reference` of `tokenizers.source.encode_batch(texts)`.
        path: the `translate.onnx` file, or a session of it (`translate_session`).
        tokenizers: the run's `TokenizerPair`.
        texts: the source sentences.
        host_greedy: int32 `(batch, steps)`, host-side greedy search over the float ONNX step
            graphs on `reference.source_ids`.
        keras_greedy: the Keras greedy token rows its tokens must equal (default the
            reference's; `translate_shortlist.onnx` is held to Keras' shortlist decode).

    Returns:
        dict: `translation_agreement` (its strings equal `tokenizers.target.decode` of
        `host_greedy`), `greedy_graph_agreement` (its tokens equal the Keras greedy decode)
        and up to 3 `mismatches` as [text, got, expected].
    """
    session = path if hasattr(path, "run") else translate_session(path)
    got, tokens = session.run(["translation", "tokens"], {"text": np.array(texts, object)})
    expected = [tokenizers.target.decode(row) for row in host_greedy]
    same = [a == b for a, b in zip(got, expected, strict=True)]
    if keras_greedy is None:
        graph = reference.agreement(tokens)
    else:
        graph = _share_equal(_trim(tokens, reference.end_id), keras_greedy)
    return {
        "translation_agreement": float(np.mean(same)),
        "greedy_graph_agreement": graph,
        "mismatches": [
            [text, str(a), b]
            for text, a, b, ok in zip(texts, got, expected, same, strict=True)
            if not ok
        ][:3],
    }


def _check_translate_shortlist(path, references, batches, tokenizers, shortlist):
    """`translate_shortlist.onnx` against the host greedy search over the shortlist graphs
    (strings) and Keras' greedy decode over each sentence's candidates (tokens)."""
    session, runtime = translate_session(path), OnnxModel(path.parent)
    per_batch = []
    for reference, (chunk, _, _) in zip(references, batches, strict=True):
        ids, start, end = reference.source_ids, reference.start_id, reference.end_id
        host = _trim(runtime.decode(ids, start, end, shortlist=True)["tokens"], end)
        keras = reference.shortlist_tokens(shortlist, 1)
        per_batch.append(check_translate_onnx(reference, session, tokenizers, chunk, host, keras))
    return combine(per_batch, [len(chunk) for chunk, _, _ in batches])


def translate_failures(result, name="translate.onnx"):
    """The parity rule for `translate.onnx`: every string and every token sequence agrees."""
    failures = [
        f"{name}: {key} {value:.3f} < 1"
        for key, value in result.items()
        if key.endswith("agreement") and value < 1.0
    ]
    if result["mismatches"]:
        text, got, expected = result["mismatches"][0]
        failures.append(f"{name}: {text!r} -> {got!r}, host {expected!r}")
    return failures


def parity_batches(texts, references, tokenizers, batch_size=PARITY_BATCH, source_length=None):
    """The parity sentences sorted by source length and cut into batches of `batch_size`.

    Sorting keeps padding (and the default decode length, 2 x padded length + 10) close
    to each sentence's own, and a batch stops at its own longest decode. An export with a
    static `source_length` takes exactly that length, so every batch is padded to it.

    Returns:
        list of `(texts, references, source_ids)`, source_ids int32 `(n, longest)`.
    """
    lengths = [len(tokenizers.source.encode(t)) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    batches = []
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        chunk = [texts[i] for i in rows]
        refs = [references[i] for i in rows]
        batches.append((chunk, refs, tokenizers.source.encode_batch(chunk, pad_to=source_length)))
    return batches


def combine(results, sizes):
    """One result from the per-batch results of one artifact.

    Agreements become the share of all sentences (per batch share x batch size, summed),
    `max_*` the maximum, `mismatches` the first 3 of all batches; other keys are dropped.
    """
    total = sum(sizes)
    out = {}
    for key in results[0]:
        values = [r[key] for r in results]
        if key.endswith(("agreement", "_ties")):
            same = sum(round(v * n) for v, n in zip(values, sizes, strict=True))
            out[key] = same / total
        elif key.startswith("max_"):
            out[key] = max(values)
        elif key == "mismatches":
            out[key] = [m for batch in values for m in batch][:3]
    return out


def _check_serving_loader(
    path, references, sizes, decoder, tokenizers, texts, source_length, shortlist
):
    """`greedy` on every parity batch and `serving_default` on `texts`, with the SavedModel
    loaded as TF Serving loads it; a load or run error is a failure, reported as such."""
    name = "saved_model (TF Serving's loader)"
    try:
        with SessionSignatures(path) as session:
            result = combine([check_serving_loader(r, session) for r in references], sizes)
            result.update(
                check_serving_default(session, decoder, tokenizers, texts, source_length, shortlist)
            )
    except tf.errors.OpError as error:
        lines = [line.strip() for line in error.message.splitlines() if line.strip()]
        message = next((line for line in lines if not line.endswith(":")), lines[0])[:300]
        return {"error": message}, [f"{name}: {message}"]
    return result, float_failures(name, result)


def _check_runtime(references, runtime, quantized=False):
    """`check_step_runtime` over every parity batch: combined result, host greedy per batch."""
    per_batch = [check_step_runtime(reference, runtime, quantized) for reference in references]
    sizes = [len(r.source_ids) for r in references]
    return combine([r for r, _ in per_batch], sizes), [tokens for _, tokens in per_batch]


def _check_int8_shortlist(references, runtime, shortlist):
    """The int8 graphs' host greedy search over the shortlist: the share of sentences equal to
    Keras' float shortlist decode (reported; the rule is the BLEU drop) and the token rows."""
    same, rows = 0, []
    for reference in references:
        ids, start, end = reference.source_ids, reference.start_id, reference.end_id
        got = _trim(runtime.decode(ids, start, end, shortlist=True)["tokens"], end)
        keras = reference.shortlist_tokens(shortlist, 1)
        same += sum(a == b for a, b in zip(got, keras, strict=True))
        rows += got
    return {"greedy_same_as_keras_shortlist": same / len(rows)}, rows


def _rows(batches):
    """Token rows of every batch, in order (batches differ in length)."""
    return [row for batch in batches for row in np.asarray(batch)]


def _check_search_options(model, runtime, batches):
    """`search_parity.validate_search` on the first parity batch: every decoding option
    (n-best, length rule, no-repeat-ngram, sampling) through `generate` and through the
    host search over `runtime`; returns (figures, failures)."""
    try:
        return validate_search(model, runtime, [batches[0][2]]), []
    except ParityError as err:
        return {"passed": False}, [f"search options: {err}"]


def validate_export(
    directory,
    model,
    tokenizers,
    texts,
    references,
    batch_size=PARITY_BATCH,
    source_length=None,
    progress=None,
    shortlist=None,
):
    """Checks every artifact in an export directory; returns the parity report.

    The sentences are decoded in batches of similar length (`parity_batches`); every
    artifact sees the same batches as the Keras reference, and each sentence still has to
    agree on its own (agreements are shares of all sentences).

    Args:
        directory: export directory (as written by `convert.export_all`).
        model: the Keras `Seq2SeqAttention` the artifacts came from.
        tokenizers: the run's `seq2seq_attn.tokenizer.TokenizerPair`.
        texts: held-out source sentences.
        references: their reference translations (for the BLEU of quantized variants).
        batch_size: sentences per parity batch.
        source_length: the export's static source length (`--max-source-length`), if any;
            the texts must fit it.
        progress: optional `progress(part)`, called as each part of the check starts (the
            Keras reference, each artifact, the search options, `translate.onnx`).
        shortlist: the run's `Shortlist` when the export has its shortlist graphs
            (`check_shortlist`).

    Returns:
        dict: tolerances, per-artifact results, `failures` (list) and `passed` (bool).
    """
    # On the export's own disk (/tmp may be memory), removed before the manifest lists files.
    with tempfile.TemporaryDirectory(prefix=".parity-logits-", dir=directory) as spill:
        batches = parity_batches(texts, references, tokenizers, batch_size, source_length)
        sizes = {"batch_size": batch_size, "source_length": source_length, "shortlist": shortlist}
        progress = progress or (lambda part: None)
        return _validate(
            Path(directory), model, tokenizers, texts, batches, Path(spill), progress, **sizes
        )


def _validate(
    directory,
    model,
    tokenizers,
    texts,
    batches,
    spill,
    progress,
    batch_size,
    source_length,
    shortlist,
):
    """`validate_export`'s checks; the Keras step logits are kept in the `spill` folder."""
    progress("the Keras reference")
    sorted_refs = [r for _, refs, _ in batches for r in refs]
    sizes = [len(chunk) for chunk, _, _ in batches]
    decoder = KerasDecoder(model)
    keras = [
        Reference(model, ids, decoder, spill_to=spill / f"batch{i}.npy")
        for i, (_, _, ids) in enumerate(batches)
    ]
    keras_bleu = _bleu([row for r in keras for row in r.greedy], tokenizers, sorted_refs)
    artifacts, failures = {}, []
    key = "saved_model/tensorflow"  # each part is announced by its report key
    progress(key)
    signatures = tf.saved_model.load(str(directory / "saved_model")).signatures
    result = combine([check_saved_model(r, signatures, shortlist) for r in keras], sizes)
    served = list(texts[:16])
    result.update(
        check_serving_default(signatures, decoder, tokenizers, served, source_length, shortlist)
    )
    artifacts[key] = result
    failures += float_failures("saved_model", result)
    del signatures
    key = "saved_model/tf_serving_loader"
    progress(key)
    artifacts[key], loader_failures = _check_serving_loader(
        directory / "saved_model", keras, sizes, decoder, tokenizers, served, source_length,
        shortlist,
    )  # fmt: skip
    failures += loader_failures
    threads = os.cpu_count() or 1
    for name, runtime_name, variant, make in runtimes(directory, threads):
        key = f"{name}/{runtime_name}"
        progress(key)
        result, host_greedy = _check_runtime(keras, make(), quantized=variant is not None)
        artifacts[key] = result
        if name == "*.onnx":
            onnx_greedy = host_greedy  # the host text path translate.onnx must equal
        if variant is None:
            failures += float_failures(name, result)
        else:
            failures += _check_quantized(
                name, variant, result, _rows(host_greedy), keras_bleu, tokenizers, sorted_refs
            )
    if shortlist is not None:
        checks = {
            "shortlist/onnxruntime": lambda: OnnxModel(directory, threads=threads),
            "shortlist/litert": lambda: LiteRTModel(directory / "model.tflite", threads=threads),
            "shortlist/saved_model": lambda: SavedModelGreedy(
                tf.saved_model.load(str(directory / "saved_model")).signatures
            ),
        }
        for key, make in checks.items():
            progress(key)
            host = not key.endswith("saved_model")
            artifacts[key] = check_shortlist(keras, make(), shortlist, host)
            failures += float_failures(key, artifacts[key])
        if (directory / SHORTLIST_FILES_INT8["decode_step_shortlist"]).is_file():
            key = "shortlist/onnxruntime_int8"
            progress(key)
            runtime = OnnxModel(directory, quantized=True, threads=threads)
            result, rows = _check_int8_shortlist(keras, runtime, shortlist)
            artifacts[key] = result
            failures += _check_quantized(
                key, "int8", result, rows, keras_bleu, tokenizers, sorted_refs
            )
    key = f"search options/{OPTIONS_RUNTIME}"
    progress(key)
    options_runtime = OnnxModel(directory, threads=threads)
    result, search_failures = _check_search_options(model, options_runtime, batches)
    artifacts[key] = result
    failures += search_failures
    if not (directory / "translate.onnx").is_file():
        failures.append("translate.onnx: missing")
    else:
        key = f"translate.onnx/{TRANSLATE_RUNTIME}"
        progress(key)
        session = translate_session(directory / "translate.onnx")
        per_batch = [
            check_translate_onnx(reference, session, tokenizers, chunk, host)
            for reference, (chunk, _, _), host in zip(keras, batches, onnx_greedy, strict=True)
        ]
        result = combine(per_batch, sizes)
        artifacts[key] = result
        failures += translate_failures(result)
    path = directory / "translate_shortlist.onnx"
    if shortlist is not None and not path.is_file():
        failures.append("translate_shortlist.onnx: missing")
    elif shortlist is not None:
        key = f"translate_shortlist.onnx/{TRANSLATE_RUNTIME}"
        progress(key)
        result = _check_translate_shortlist(path, keras, batches, tokenizers, shortlist)
        artifacts[key] = result
        failures += translate_failures(result, "translate_shortlist.onnx")
    return {
        "tolerances": {"logits_atol": LOGITS_ATOL, "bleu_drop": BLEU_DROP},
        "samples": len(texts),
        "parity_batch_size": batch_size,
        "keras_bleu": keras_bleu,
        "artifacts": artifacts,
        "failures": failures,
        "passed": not failures,
    }
