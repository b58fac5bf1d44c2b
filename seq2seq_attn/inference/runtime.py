"""Exported models on TensorFlow-free runtimes: onnxruntime and LiteRT.

Both classes offer the same two calls, which the host-side search in `seq2seq_attn.inference.search`
drives one step at a time:

    memory, projected_keys, mask, states = model.encode(source_ids)
    logits, new_states, attention = model.step(prev_tokens, states, memory, projected_keys, mask)

and `model.greedy_graph(source_ids)`, the whole greedy decode exported as one graph.
Arrays are NumPy: ids int32, floats float32, the mask bool.

An export of a run with a lexical shortlist also has `shortlist.onnx` (source ids -> the
output layer's columns of the batch's candidates and each sentence's positions, once per
decode, so a sentence decodes over its own candidates whatever its batch mates),
`decoder_step_shortlist.onnx` (the step over those columns) and `greedy_shortlist.onnx` (the
two in one greedy graph); `OnnxModel.decode(..., shortlist=True)` runs the host search over
them and `greedy_graph(..., shortlist=True)` the single graph.

Before a runtime loads a file of an export, it checks the file's SHA-256 against the one
`manifest.json` records (`verify_export_files`): a changed or corrupted artifact is refused
with an `ArtifactError` naming the file, instead of failing inside the runtime or, worse,
being run as another valid graph.
"""

import functools
import hashlib
import json
from pathlib import Path

import numpy as np

from seq2seq_attn import shortlist as _shortlist
from seq2seq_attn.errors import UserError
from seq2seq_attn.inference import search
from seq2seq_attn.interface import NEG_INF, new_state_name, state_names
from seq2seq_attn.native_logs import native_stderr_filtered

MANIFEST_FILE = "manifest.json"
_HASH_CHUNK = 1 << 20  # bytes read at a time: a graph is hashed without holding it in memory
_WHAT_TO_DO = "export the run again, or restore the file from the original export"
# The graphs of a shortlist export (float32 ONNX only), by the export signature they hold.
SHORTLIST_FILES = {
    "shortlist_output": "shortlist.onnx",
    "decode_step_shortlist": "decoder_step_shortlist.onnx",
    "greedy_shortlist": "greedy_shortlist.onnx",
}
# The int8 export's: its own step and single graph (the output columns stay float: they are a
# run-time input, which dynamic quantization leaves as it is), the same shortlist graph.
SHORTLIST_FILES_INT8 = {
    "shortlist_output": "shortlist.onnx",
    "decode_step_shortlist": "decoder_step_shortlist_int8.onnx",
    "greedy_shortlist": "greedy_shortlist_int8.onnx",
}
SHORTLIST_INPUTS = ("shortlist_kernel", "shortlist_bias", "shortlist_positions")
# `shortlist_columns`' key for a batch decoded over the whole output layer, each sentence's
# logits masked to its own candidates: bool (batch, vocab).
ROWS = "shortlist_rows"


class ArtifactError(UserError):
    """A file of an export does not match the SHA-256 its `manifest.json` records, or the
    manifest cannot vouch for it; the message names the file and what to do."""


def sha256_of(path):
    """The hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _recorded_hashes(directory):
    """`manifest.json`'s `files` map, or ArtifactError when the manifest has none."""
    manifest_path = directory / MANIFEST_FILE
    try:
        files = json.loads(manifest_path.read_text()).get("files")
    except (OSError, ValueError, AttributeError) as error:
        raise ArtifactError(f"cannot read {manifest_path}: {error}; {_WHAT_TO_DO}") from None
    if not isinstance(files, dict) or not files:
        raise ArtifactError(
            f"{manifest_path} records no file hashes, so the files of {directory} cannot be "
            f"checked; {_WHAT_TO_DO}"
        )
    return files


def verify_export_files(directory, names):
    """Checks files of an export against the SHA-256 hashes in its `manifest.json`.

    Each file is read once, in chunks. A directory without `manifest.json` is not an export
    (the export's own parity step runs the graphs before it writes the manifest): nothing is
    checked there.

    Args:
        directory: the export directory.
        names: the files about to be loaded, as paths relative to `directory`
            (`"greedy.onnx"`, `"tokenizer/source.model"`).

    Raises:
        ArtifactError: a file is missing, not listed in the manifest, or its hash differs;
            or the manifest lists no hashes at all.
    """
    directory = Path(directory)
    if not (directory / MANIFEST_FILE).is_file():
        return
    recorded = _recorded_hashes(directory)
    for name in names:
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"{path} is missing; {_WHAT_TO_DO}")
        key = Path(name).as_posix()
        if key not in recorded:
            raise ArtifactError(
                f"{path} is not listed in {MANIFEST_FILE}, so it was not written by the "
                f"export; {_WHAT_TO_DO}"
            )
        if sha256_of(path) != recorded[key]:
            raise ArtifactError(
                f"{path} does not match the SHA-256 in {MANIFEST_FILE} (changed or corrupted "
                f"since the export); {_WHAT_TO_DO}"
            )


def shortlist_over(out, columns):
    """What `decode(..., shortlist=...)` takes, from `shortlist_output`'s `out`: the step's
    `SHORTLIST_INPUTS` (the union's gathered columns) where `columns`, else `{ROWS: bool
    (batch, vocab)}`, each sentence's candidates to mask the full step's logits with."""
    if columns:
        return {name: out[name] for name in SHORTLIST_INPUTS}
    return {ROWS: out["shortlist_positions"] < len(out["shortlist_bias"])}


def _source_batch(source_ids):
    """`source_ids` as int32 `(batch, length)`; ValueError for any other shape or no rows
    (onnxruntime's GRU op crashes the process on an empty batch)."""
    ids = np.asarray(source_ids, np.int32)
    if ids.ndim != 2 or ids.shape[0] == 0 or ids.shape[1] == 0:
        raise ValueError(
            f"`source_ids` must be int (batch, length) with at least one row and one column, "
            f"received shape {ids.shape}"
        )
    return ids


class _StepModel:
    """The shared encode/step/decode plumbing; subclasses run the three graphs."""

    state_names: list

    def _run(self, graph, inputs):
        raise NotImplementedError

    def encode(self, source_ids):
        out = self._run("encode", {"source_ids": _source_batch(source_ids)})
        states = [out[name] for name in self.state_names]
        return out["memory"], out["projected_keys"], out["mask"] > 0.5, states

    def step(self, prev_tokens, states, memory, projected_keys, mask, shortlist=None):
        """One decoder step; with `shortlist` (`shortlist_columns`' dict, rows as the step's)
        over its columns, or over the whole output layer with each row's other ids `NEG_INF`
        (a dict of `ROWS` alone)."""
        inputs = {
            "prev_tokens": np.asarray(prev_tokens, np.int32),
            "memory": memory,
            "projected_keys": projected_keys,
            "mask": np.asarray(mask, np.float32),
        }
        inputs.update(zip(self.state_names, states, strict=True))
        columns = {k: v for k, v in (shortlist or {}).items() if k in SHORTLIST_INPUTS}
        inputs.update(columns)
        out = self._run("decode_step_shortlist" if columns else "decode_step", inputs)
        new_states = [out[new_state_name(i)] for i in range(len(self.state_names))]
        logits = out["logits"]
        if shortlist and not columns:
            logits = np.where(shortlist[ROWS], logits, np.float32(NEG_INF))
        return logits, new_states, out["attention"]

    def greedy_graph(self, source_ids, shortlist=False):
        """The whole greedy decode in one graph; with `shortlist`, each sentence over its
        own shortlist candidates (`greedy_shortlist.onnx`)."""
        if shortlist and not self.has_shortlist:
            raise ValueError("`shortlist=True` needs an export with shortlist graphs")
        graph = "greedy_shortlist" if shortlist else "greedy"
        return self._run(graph, {"source_ids": _source_batch(source_ids)})

    @property
    def has_shortlist(self):
        """Whether the shortlist graphs are loaded."""
        return False

    def shortlist_output(self, source_ids):
        """The batch's `SHORTLIST_INPUTS` of the step: the output-layer columns `(rows, C)`
        and bias `(C,)` of the batch's union of candidates, and each sentence's positions
        `(batch, vocab)` of the target ids (C where it is not one of its candidates)."""
        return self._run("shortlist_output", {"source_ids": _source_batch(source_ids)})

    def shortlist_columns(self, source_ids, beam_width=1):
        """What `decode(..., shortlist=...)` takes for this batch, so the candidates are
        computed once: the step's `SHORTLIST_INPUTS` where the columns pay
        (`seq2seq_attn.shortlist.columns_pay`: few rows a step, batch x `beam_width`, and a
        union of candidates at most `MAX_SHARE` of the target vocabulary); else (the whole
        output layer was measured faster) `{ROWS: bool (batch, vocab)}`, each sentence's
        candidates, which the full step's logits are masked with. None where the export has
        no shortlist graphs."""
        if not self.has_shortlist:
            return None
        out = self.shortlist_output(source_ids)
        count, (batch, vocab) = len(out["shortlist_bias"]), out["shortlist_positions"].shape
        return shortlist_over(out, _shortlist.columns_pay(batch * beam_width, count, vocab))

    def decode(self, source_ids, start_id, end_id, beam_width=1, shortlist=False, **kwargs):
        """Host-side greedy (beam_width 1) or beam search over the step graphs; with
        `shortlist` (the export must have one) each sentence over its own shortlist
        candidates: True computes them, or pass `shortlist_columns`' dict for this batch."""
        memory, keys, mask, states = self.encode(source_ids)
        step = self.step
        if shortlist is not False and shortlist is not None:
            if not self.has_shortlist:
                raise ValueError("`shortlist=True` needs an export with shortlist graphs")
            if shortlist is True:
                shortlist = self.shortlist_columns(source_ids, beam_width)
            # Per-sentence inputs follow the search's rows: repeated per beam like the memory.
            rows = {"shortlist_positions", ROWS}
            columns = {
                k: np.repeat(v, beam_width, axis=0) if k in rows else v
                for k, v in shortlist.items()
            }
            step = functools.partial(self.step, shortlist=columns)
        if beam_width == 1:
            return search.greedy_search(
                step, states, memory, keys, mask, start_id, end_id, **kwargs
            )
        return search.beam_search(
            step, states, memory, keys, mask, start_id, end_id, beam_width, **kwargs
        )


class OnnxModel(_StepModel):
    """`encoder.onnx`, `decoder_step.onnx`, `greedy.onnx` (or their `_int8` twins) in onnxruntime.

    Args:
        directory: the export directory.
        quantized: use the int8 graphs (`*_int8.onnx`).
        threads: intra-op threads of each session. None is 1: on a 2-core machine shared
            with other work, onnxruntime's own choice (one thread per physical core) made
            batch-1 greedy 1.1-1.8x and batch-32 beam-4 1.26x slower (tutorial-size model,
            `benchmarks/tutorial_size.py`), and LiteRT runs on one thread too. 0 lets
            onnxruntime choose; give more on a dedicated many-core host for large batches.
        spinning: let idle intra-op threads spin-wait for work (onnxruntime's own
            default) instead of sleeping. Off by default: a spinning pool (3 sessions,
            one pool each) takes the cores from the server's own threads and from any
            other process (batch-1 greedy was 1.4-3x slower with it on 2 shared cores);
            with 1 thread there is no pool and nothing spins.
        verify: check the graphs against `manifest.json` first (`verify_export_files`);
            False only for a copy whose graphs were changed on purpose (tests of the parity
            check).

    Raises:
        ArtifactError: a graph does not match the manifest.
    """

    def __init__(self, directory, quantized=False, threads=None, spinning=False, verify=True):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1 if threads is None else threads
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if spinning else "0"
        )
        suffix = "_int8" if quantized else ""
        directory = Path(directory)
        files = {
            "encode": f"encoder{suffix}.onnx",
            "decode_step": f"decoder_step{suffix}.onnx",
            "greedy": f"greedy{suffix}.onnx",
        }
        # Exports before the int8 shortlist graphs have only the float ones.
        shortlist_files = SHORTLIST_FILES_INT8 if quantized else SHORTLIST_FILES
        shortlisted = all((directory / name).is_file() for name in shortlist_files.values())
        if verify:
            verify_export_files(
                directory, [*files.values(), *(shortlist_files.values() if shortlisted else [])]
            )

        def load(name):
            return ort.InferenceSession(
                str(directory / name), options, providers=["CPUExecutionProvider"]
            )

        self.sessions = {graph: load(name) for graph, name in files.items()}
        # The shortlist graphs, when the export has them (kept apart: `sessions` are the
        # three graphs every export has).
        self.shortlist_sessions = {
            graph: load(name) for graph, name in shortlist_files.items() if shortlisted
        }
        self.output_names = {
            graph: [o.name for o in session.get_outputs()]
            for graph, session in {**self.sessions, **self.shortlist_sessions}.items()
        }
        inputs = [i.name for i in self.sessions["decode_step"].get_inputs()]
        self.state_names = state_names(inputs)

    @property
    def has_shortlist(self):
        return bool(self.shortlist_sessions)

    def _run(self, graph, inputs):
        names = self.output_names[graph]
        session = self.sessions.get(graph) or self.shortlist_sessions[graph]
        return dict(zip(names, session.run(names, inputs), strict=True))


class LiteRTModel(_StepModel):
    """The `encode`, `decode_step` and `greedy` signatures of a `.tflite` file in LiteRT
    (and `shortlist_output`, `decode_step_shortlist`, `greedy_shortlist` in an export of a run
    with a shortlist).

    Args:
        path: the `.tflite` file, in its export directory.
        threads: interpreter threads; None is LiteRT's default.
        verify: check the file against the `manifest.json` beside it first
            (`verify_export_files`).

    Raises:
        ArtifactError: the file does not match the manifest.
    """

    def __init__(self, path, threads=None, verify=True):
        from ai_edge_litert.interpreter import Interpreter

        path = Path(path)
        if verify:
            verify_export_files(path.parent, [path.name])
        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        with native_stderr_filtered():  # applying XNNPACK prints a notice, once per process
            self.interpreter.allocate_tensors()
        signatures = self.interpreter.get_signature_list()
        self.runners = {name: self.interpreter.get_signature_runner(name) for name in signatures}
        self.state_names = state_names(signatures["decode_step"]["inputs"])

    @property
    def has_shortlist(self):
        return "shortlist_output" in self.runners

    def _run(self, graph, inputs):
        return self.runners[graph](**inputs)
