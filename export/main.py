"""`seq2seq-attn export`: artifacts into a temporary directory, parity, then move into place.

Nothing that looks valid is left behind on failure: the artifacts are written next to the
output directory under a hidden name and only renamed to it once every parity check passed.
"""

import json
import shutil
import tempfile
import time
from importlib import metadata
from pathlib import Path

from seq2seq_attn.errors import ParityError, UserError
from seq2seq_attn.export.convert import export_all, release_memory, to_translate_onnx
from seq2seq_attn.export.signatures import SHORTLIST_SIGNATURES, ExportModule
from seq2seq_attn.export.validate import BEAM_WIDTH, validate_export
from seq2seq_attn.inference.runtime import MANIFEST_FILE, SHORTLIST_FILES, sha256_of

VERSIONED = (
    "seq2seq-attn",
    "tensorflow",
    "keras",
    "tensorflow-text",
    "tf2onnx",
    "onnx",
    "onnxruntime",
    "onnxruntime-extensions",
    "ai-edge-litert",
)


def _prepare_out(out, force):
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not force:
        raise UserError(f"output directory {out} exists and is not empty (use --force)")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return out, Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    except OSError as err:
        raise UserError(f"cannot write to {out.parent}: {err.strerror}") from None


def _held_out(translator, run_dir, samples, max_source_length):
    from seq2seq_attn.training import run_corpus

    corpus = run_corpus(run_dir, translator.run_info)
    # A run trained with --train/--dev and no --test file has only its dev split held out.
    pairs = corpus.test or corpus.dev
    if not pairs:
        raise UserError(f"{run_dir} has no test or dev sentences to check parity on")
    if max_source_length:
        source = translator.tokenizers.source
        pairs = [p for p in pairs if len(source.encode(p[0])) <= max_source_length]
    if not pairs:
        raise UserError("no held-out sentence fits the export's source length")
    return [s for s, _ in pairs[:samples]], [t for _, t in pairs[:samples]]


def _io_spec(function):
    concrete = function.get_concrete_function()
    describe = lambda t: {"shape": list(t.shape.as_list()), "dtype": t.dtype.name}  # noqa: E731
    return {
        "inputs": {s.name: describe(s) for s in function.input_signature},
        "outputs": {k: describe(v) for k, v in concrete.structured_outputs.items()},
    }


def write_manifest(directory, module, tokenizers, report):
    """manifest.json: versions, tokenizer models, special ids, I/O specs, tolerances, hashes."""
    from seq2seq_attn import tokenizer

    directory = Path(directory)
    hashes = {  # keyed and hashed as `verify_export_files` checks them at load
        p.relative_to(directory).as_posix(): sha256_of(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != MANIFEST_FILE
    }
    signatures = ["encode", "decode_step", "greedy", "translate_ids"]
    if module.shortlist is not None:
        signatures += list(SHORTLIST_SIGNATURES)
        signatures += [name for name in module.full_vocabulary_signatures if "serving" not in name]
    manifest = {
        "versions": {name: metadata.version(name) for name in VERSIONED},
        "vocab_size": {
            "source": tokenizers.source.vocab_size,
            "target": tokenizers.target.vocab_size,
        },
        "tokenizer": {
            side: {
                "file": f"tokenizer/{name}",
                "sha256": getattr(tokenizers, side).sha256,
                "type": "sentencepiece",
            }
            for side, name in tokenizers.files().items()
        },
        "special_ids": {
            "pad": tokenizer.PAD_ID,
            "unk": tokenizer.UNK_ID,
            "start": tokenizer.START_ID,
            "end": tokenizer.END_ID,
        },
        "state_names": module.state_names,
        "beam_width": module.beam_width,
        "max_source_length": module.max_source_length,
        "signatures": {name: _io_spec(getattr(module, name)) for name in signatures},
        "shortlist": _shortlist_entry(module.shortlist),
        "tolerances": report["tolerances"],
        "files": hashes,
    }
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    return manifest


def _shortlist_entry(shortlist):
    """The manifest's `shortlist`: its sizes and how it was built, or None without one."""
    if shortlist is None:
        return None
    return {
        "top_k": shortlist.top_k,
        "frequent": shortlist.info.get("frequent", len(shortlist.frequent)),
        "always_ids": len(shortlist.always),  # the frequent pieces seen in training + 4 special
        "source_vocab_size": shortlist.source_vocab_size,
        "target_vocab_size": shortlist.target_vocab_size,
        "files": list(SHORTLIST_FILES.values()),
        "info": shortlist.info,
    }


class StageClock:
    """Echoes one line per stage once it ends, with its time: `export: saved_model 2.1 s`.

    `start(name)` ends the stage before it, if any; `end()` ends the last one.
    """

    def __init__(self, echo, clock=time.monotonic):
        self.echo = echo
        self.clock = clock
        self._name = None
        self._started = None

    def start(self, name):
        self.end()
        self._name, self._started = name, self.clock()

    def end(self):
        if self._name is not None:
            self.echo(f"{self._name} {self.clock() - self._started:.1f} s")
            self._name = None


def _export_and_check(translator, module, directory, texts, references, echo):
    """Every artifact of `module` into `directory`, then parity; returns the parity report.
    Echoes one line per stage, and per part of parity, as each ends."""
    clock = StageClock(echo)

    def stage(name, fn, *args):  # `export_all`'s hook
        clock.start(f"export: {name}")
        result = fn(*args)
        clock.end()
        return result

    export_all(module, directory, stage)
    tokenizers = translator.tokenizers
    stage(
        "onnx:translate.onnx",
        to_translate_onnx,
        directory,
        tokenizers,
        directory / "translate.onnx",
    )
    if module.shortlist is not None:  # strings in and out over each sentence's candidates
        stage(
            "onnx:translate_shortlist.onnx",
            to_translate_onnx,
            directory,
            tokenizers,
            directory / "translate_shortlist.onnx",
            "greedy_shortlist.onnx",
        )
    release_memory()
    report = validate_export(
        directory,
        translator.model,
        tokenizers,
        texts,
        references,
        source_length=module.max_source_length,
        progress=lambda part: clock.start(f"parity ({len(texts)} sentences): {part}"),
        shortlist=module.shortlist,
    )
    clock.end()
    return report


def export_run(
    run_dir,
    out,
    max_source_length=None,
    beam_width=BEAM_WIDTH,
    samples=200,
    force=False,
    echo=print,
    library_logs=False,
    web=False,
):
    """Exports a training run; returns the parity report. Raises ParityError on a mismatch.

    `echo` gets one line per stage with its time; `library_logs` leaves TensorFlow's and
    absl's Python log levels as they are (by default only their errors show); `web` also
    writes `out/web/`, the folder that translates in the browser (`export.web.write_web`).
    """
    import absl.logging
    import tensorflow as tf

    from seq2seq_attn.graph_tokenizer import GraphTokenizerPair
    from seq2seq_attn.translator import TOKENIZER_DIR, Translator

    if not library_logs:
        absl.logging.set_verbosity(absl.logging.ERROR)  # SavedModel saving warnings: noise here
        tf.get_logger().setLevel("ERROR")
    translator = Translator.load(run_dir)
    out, tmp = _prepare_out(out, force)
    try:
        texts, references = _held_out(translator, run_dir, samples, max_source_length)
        graph_tokenizers = GraphTokenizerPair(translator.tokenizers)
        module = ExportModule(
            translator.model,
            graph_tokenizers,
            beam_width,
            max_source_length=max_source_length,
            shortlist=translator.shortlist,
        )
        shutil.copytree(Path(run_dir) / TOKENIZER_DIR, tmp / "tokenizer")
        report = _export_and_check(translator, module, tmp, texts, references, echo)
        (tmp / "parity.json").write_text(json.dumps(report, indent=2))
        if not report["passed"]:
            failed = out.parent / f"{out.name}.parity-failed.json"
            failed.write_text(json.dumps(report, indent=2))
            raise ParityError("; ".join(report["failures"]) + f" (report: {failed})")
        write_manifest(tmp, module, translator.tokenizers, report)
        if web:
            from seq2seq_attn.export.web import write_web

            write_web(tmp, tmp / "web")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
        return report
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
