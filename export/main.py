"""`seq2seq-attn export`: artifacts into a temporary directory, parity, then move into place.

Nothing that looks valid is left behind on failure: the artifacts are written next to the
output directory under a hidden name and only renamed to it once every parity check passed.

Each stage runs in its own short-lived process (`isolation.run_in_child`) while this one
holds no TensorFlow, so the export's peak memory is its largest stage's, not the sum of what
the stages leave behind.
"""

import dataclasses
import hashlib
import json
import shutil
import tempfile
import time
from importlib import metadata
from pathlib import Path

from seq2seq_attn.export.isolation import release_memory, run_in_child

from seq2seq_attn.errors import ParityError, UserError
from seq2seq_attn.native_logs import quiet_tensorflow_startup

TFLITE_VARIANTS = {"model.tflite": None, "model_fp16.tflite": "fp16", "model_int8.tflite": "int8"}
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


def manifest_fields(module, tokenizers):
    """What manifest.json says about the model: vocabularies, tokenizers, ids, I/O specs."""
    from seq2seq_attn import tokenizer

    signatures = ["encode", "decode_step", "greedy", "translate_ids"]
    return {
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
    }


def write_manifest(directory, fields, report):
    """manifest.json: versions, `manifest_fields`, tolerances and every file's SHA-256."""
    directory = Path(directory)
    hashes = {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }
    manifest = {
        "versions": {name: metadata.version(name) for name in VERSIONED},
        **fields,
        "tolerances": report["tolerances"],
        "files": hashes,
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


@dataclasses.dataclass(frozen=True)
class ExportJob:
    """What every stage of an export needs; it pickles into the stage's process.

    Attributes:
        run_dir: the training run.
        out: the (temporary) directory the artifacts go to.
        frozen: where the frozen step SavedModel goes, the TFLite converter's input.
        beam_width: beam of `translate_ids` and `serving_default`.
        max_source_length: static source length, or None.
        samples: held-out parity sentences.
    """

    run_dir: str
    out: str
    frozen: str
    beam_width: int
    max_source_length: int | None
    samples: int


_LOADED = {}  # ExportJob -> (Translator, ExportModule), per process


def _loaded(job):
    """The run's `Translator` and its `ExportModule`, built once per process."""
    if job not in _LOADED:
        quiet_tensorflow_startup()  # each stage's process would print its notices again
        import absl.logging
        import tensorflow as tf
        from seq2seq_attn.export.signatures import ExportModule

        from seq2seq_attn.graph_tokenizer import GraphTokenizerPair
        from seq2seq_attn.translator import Translator

        absl.logging.set_verbosity(absl.logging.ERROR)  # SavedModel saving warnings are noise
        tf.get_logger().setLevel("ERROR")
        translator = Translator.load(job.run_dir)
        graph_tokenizers = GraphTokenizerPair(translator.tokenizers)
        module = ExportModule(
            translator.model,
            graph_tokenizers,
            job.beam_width,
            max_source_length=job.max_source_length,
        )
        _LOADED.clear()
        _LOADED[job] = translator, module
    return _LOADED[job]


def _saved_model_stage(job):
    """Held-out sentences, `saved_model/`, `tokenizer/`; returns what later stages need."""
    from seq2seq_attn.export.convert import save_saved_model

    from seq2seq_attn.translator import TOKENIZER_DIR

    translator, module = _loaded(job)
    texts, references = _held_out(translator, job.run_dir, job.samples, job.max_source_length)
    save_saved_model(module, Path(job.out) / "saved_model")
    shutil.copytree(Path(job.run_dir) / TOKENIZER_DIR, Path(job.out) / "tokenizer")
    return texts, references, manifest_fields(module, translator.tokenizers)


def _frozen_stage(job):
    from seq2seq_attn.export.convert import save_frozen_steps

    save_frozen_steps(_loaded(job)[1], job.frozen)


def _tflite_stage(job, filename, quantization):
    quiet_tensorflow_startup()
    from seq2seq_attn.export.convert import to_tflite

    to_tflite(job.frozen, Path(job.out) / filename, quantization)


def _onnx_stage(job):
    """The ONNX graphs: `encoder.onnx` and `decoder_step.onnx` from TensorFlow, then those
    joined into `greedy.onnx`, their int8 versions and `translate.onnx`."""
    from seq2seq_attn.export import convert

    translator, module = _loaded(job)
    out = Path(job.out)
    convert.write_encoder_onnx(module, out / "encoder.onnx")
    convert.to_onnx(module.decode_step, out / "decoder_step.onnx")
    release_memory()
    convert.write_greedy_onnx(module, out)
    for name in ("encoder", "decoder_step"):
        convert.quantize_onnx(out / f"{name}.onnx", out / f"{name}_int8.onnx")
    convert.write_greedy_onnx(module, out, "_int8")
    convert.to_translate_onnx(out, translator.tokenizers, out / "translate.onnx")


def _parity_stage(job, texts, references):
    from seq2seq_attn.export.validate import validate_export

    translator = _loaded(job)[0]
    return validate_export(
        job.out,
        translator.model,
        translator.tokenizers,
        texts,
        references,
        source_length=job.max_source_length,
    )


STAGE_COUNT = 3 + len(TFLITE_VARIANTS) + 1  # SavedModel, frozen, TFLite, ONNX, parity


def _announced(run, echo):
    """`run` that first echoes "[i/n] stage (m:ss elapsed)" for each stage."""
    started, done = time.monotonic(), []

    def announced(name, fn, *args):
        done.append(name)
        minutes, seconds = divmod(int(time.monotonic() - started), 60)
        echo(f"[{len(done)}/{STAGE_COUNT}] {name} ({minutes}:{seconds:02d} elapsed)")
        return run(name, fn, *args)

    return announced


def _write_artifacts(job, run):
    """Every artifact of `job`, each stage through `run`; returns (held-out, manifest fields)."""
    texts, references, fields = run("saved_model", _saved_model_stage, job)
    run("frozen_step_graphs", _frozen_stage, job)
    for filename, quantization in TFLITE_VARIANTS.items():
        run(f"tflite:{filename}", _tflite_stage, job, filename, quantization)
    shutil.rmtree(job.frozen)
    run("onnx", _onnx_stage, job)
    return texts, references, fields


def export_run(
    run_dir,
    out,
    max_source_length=None,
    beam_width=4,
    samples=200,
    force=False,
    echo=print,
    run=None,
):
    """Exports a training run; returns the parity report. Raises ParityError on a mismatch.

    Args:
        run: `run(name, fn, *args)` runs each stage; `isolation.run_in_child` (a fresh
            process per stage) by default, `isolation.run_here` for one process (faster on
            small models, which do not need the memory back).
    """
    run = _announced(run or run_in_child, echo)
    out, tmp = _prepare_out(out, force)
    job = ExportJob(str(run_dir), str(tmp), f"{tmp}.frozen", beam_width, max_source_length, samples)
    echo(f"exporting {run_dir} into {tmp}, then {out} once parity passes")
    try:
        texts, references, fields = _write_artifacts(job, run)
        report = run(
            f"parity on {len(texts)} held-out sentences", _parity_stage, job, texts, references
        )
        (tmp / "parity.json").write_text(json.dumps(report, indent=2))
        if not report["passed"]:
            failed = out.parent / f"{out.name}.parity-failed.json"
            failed.write_text(json.dumps(report, indent=2))
            raise ParityError("; ".join(report["failures"]) + f" (report: {failed})")
        write_manifest(tmp, fields, report)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
        return report
    finally:
        _LOADED.clear()
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(job.frozen, ignore_errors=True)
