"""What exporting costs: export time, artifact sizes, and the peak memory of each runtime.

1. `seq2seq-attn export` on the benchmark model (`common.bench_run()`) in a child process,
   into runs/bench-export: wall time and peak RSS (the child's VmHWM, polled). Parity
   runs on `--samples` held-out sentences (200 by default, as the CLI).
2. The same export again, stage by stage, in another child that calls the functions
   `seq2seq_attn.export.convert.export_all` and `seq2seq_attn.export.main.export_run` call,
   one by one, into a
   scratch directory that is deleted afterwards (skip with `--no-stages`), with the
   process's peak RSS after each stage (where it jumps is the stage that needs the memory).
3. The size of every artifact, of the Keras `.keras` file and of the tokenizer.
4. Peak memory (VmHWM) of a fresh process per runtime that loads its artifacts and greedily
   decodes the batch of 32 test sentences of `decode_latency.py`, beside a process that only
   imports that runtime's packages, so the load + decode part can be read off.

    python -m benchmarks export_cost          # ~8 min on 2 busy CPU cores
    python -m benchmarks export_cost --small  # the small model, 4 parity sentences, 4 probes

Writes benchmarks/results/export_cost.json. The stages and the memory probes run in children
started as `python -m benchmarks.export_cost --stages ...` / `--probe ...`.
"""

import argparse
import importlib
import json
import shutil
import sys
from pathlib import Path

from benchmarks import common, decode_latency
from benchmarks.common import mb, run_child, status_kb
from benchmarks.harness import clock, work_dir

SAMPLES = 200  # parity sentences, the CLI's default
SMALL_SAMPLES = 4
SMALL_PROBES = ("onnxruntime_imports", "onnx_host", "litert_fp32", "tensorflow_imports")
# What each memory probe imports before loading anything: its runtime's packages.
IMPORTS = {
    "onnxruntime": ("numpy", "onnxruntime", "seq2seq_attn.inference.runtime"),
    "litert": ("numpy", "ai_edge_litert.interpreter", "seq2seq_attn.inference.runtime"),
    "tensorflow": ("numpy", "tensorflow", "tensorflow_text", "keras", "seq2seq_attn.translator"),
}
MEMORY_PROBES = {  # probe -> (package group, decode_latency runtime or None for imports only)
    "onnxruntime_imports": ("onnxruntime", None),
    "onnx_host": ("onnxruntime", "onnx_host"),
    "onnx_host_int8": ("onnxruntime", "onnx_host_int8"),
    "onnx_graph": ("onnxruntime", "onnx_graph"),
    "litert_imports": ("litert", None),
    "litert_fp32": ("litert", "litert_fp32"),
    "litert_fp16": ("litert", "litert_fp16"),
    "litert_int8": ("litert", "litert_int8"),
    "litert_graph": ("litert", "litert_graph"),
    "tensorflow_imports": ("tensorflow", None),
    "keras_eager": ("tensorflow", "keras_eager"),
    "saved_model": ("tensorflow", "saved_model"),
}


def stage_times(run_dir, out_dir, samples):
    """Times every stage of an export (the steps of `export_run`, called one by one)."""
    import absl.logging
    import tensorflow as tf

    from seq2seq_attn.export import convert
    from seq2seq_attn.export.main import _held_out, write_manifest
    from seq2seq_attn.export.signatures import ExportModule
    from seq2seq_attn.export.validate import BEAM_WIDTH, validate_export
    from seq2seq_attn.graph_tokenizer import GraphTokenizerPair
    from seq2seq_attn.translator import TOKENIZER_DIR, Translator

    absl.logging.set_verbosity(absl.logging.ERROR)
    tf.get_logger().setLevel("ERROR")
    times, peaks, stage_peaks, rss_after = {}, {}, {}, {}

    def timed(name, fn, *args):
        resettable = _reset_peak()
        t0 = clock()
        value = fn(*args)
        times[name] = round(clock() - t0, 2)
        if resettable:
            stage_peaks[name] = _status_mb("VmHWM")  # the peak during this stage
        rss_after[name] = _status_mb("VmRSS")
        peaks[name] = max([*peaks.values(), *stage_peaks.values(), _status_mb("VmHWM")])
        return value

    out_dir = Path(out_dir)
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    translator = timed("load_keras_model", Translator.load, run_dir)
    texts, references = timed("held_out_sentences", _held_out, translator, run_dir, samples, None)
    graph_tokenizers = GraphTokenizerPair(translator.tokenizers)
    module = timed(
        "build_export_module", ExportModule, translator.model, graph_tokenizers, BEAM_WIDTH
    )
    convert.export_all(module, out_dir, stage=timed)
    shutil.copytree(Path(run_dir) / TOKENIZER_DIR, out_dir / "tokenizer")
    timed(
        "onnx:translate.onnx",
        convert.to_translate_onnx,
        out_dir,
        translator.tokenizers,
        out_dir / "translate.onnx",
    )
    report = timed(
        "parity",
        validate_export,
        out_dir,
        translator.model,
        translator.tokenizers,
        texts,
        references,
    )
    timed("manifest", write_manifest, out_dir, module, translator.tokenizers, report)
    times["total"] = round(sum(times.values()), 1)
    return {
        "seconds": times,
        "vmhwm_mb_after": peaks,  # the process's peak so far
        "stage_peak_mb": stage_peaks,  # VmHWM reset before the stage (Linux clear_refs)
        "rss_mb_after": rss_after,  # what the stage left behind
        "parity_passed": report["passed"],
        "parity_samples": len(texts),
    }


def _size(path):
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def artifact_sizes(export_dir, run_dir):
    """Bytes of every top-level artifact of the export, the .keras model and the tokenizer."""
    export_dir, run_dir = Path(export_dir), Path(run_dir)
    sizes = {p.name: _size(p) for p in sorted(export_dir.iterdir())}
    saved = export_dir / "saved_model"
    sizes["saved_model/variables"] = _size(saved / "variables")
    sizes["saved_model/saved_model.pb"] = _size(saved / "saved_model.pb")
    return {
        "export_bytes": sizes,
        "export_total_bytes": _size(export_dir),
        "keras_model_bytes": _size(run_dir / "model.keras"),
        "run_tokenizer_bytes": _size(run_dir / "tokenizer"),
        "float32_parameters_bytes": 4
        * json.loads((run_dir / "run.json").read_text())["parameters"],
    }


def memory_probe(name, run_dir, export_dir):
    """In this (fresh) process: import, load, decode batch 32 greedily; returns VmHWM etc."""
    group, runtime = MEMORY_PROBES[name]
    t0 = clock()
    for module in IMPORTS[group]:
        importlib.import_module(module)
    result = {"import_s": round(clock() - t0, 2)}
    if runtime is not None:
        import numpy as np

        ids = np.load(batch32_file(run_dir))  # written by cache_batch32 in the parent
        result["after_imports_mb"] = _status_mb("VmRSS")
        t0 = clock()
        decode = decode_latency.make_runtime(runtime, run_dir, export_dir)
        result["load_s"] = round(clock() - t0, 2)
        result["after_load_mb"] = _status_mb("VmRSS")
        t0 = clock()
        tokens = decode(ids, 1)
        result["decode_s"] = round(clock() - t0, 2)
        result["steps"] = int(tokens.shape[1])
    result["vmhwm_mb"] = _status_mb("VmHWM")
    result["tensorflow_imported"] = "tensorflow" in sys.modules
    return result


def batch32_file(run_dir):
    """Where the batch-32 source ids of a run are cached (beside the run directory)."""
    return Path(run_dir).parent / "bench-batch32.npy"


def cache_batch32(run_dir):
    """Saves the batch-32 source ids of decode_latency, so that probes never read the corpus."""
    import numpy as np

    from seq2seq_attn.tokenizer import TokenizerPair

    tokenizers = TokenizerPair.load(Path(run_dir) / "tokenizer")
    ids = decode_latency.bench_sentences(run_dir, tokenizers, 1)["batch32"]
    np.save(batch32_file(run_dir), ids)


def _reset_peak():
    """Resets this process's VmHWM to its current RSS (Linux >= 4.0); False where it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _status_mb(field):
    kilobytes = status_kb("/proc/self/status", field)
    return None if kilobytes is None else mb(kilobytes)


def _child(argv_tail, log, env=None):
    """Runs this module in a child with `argv_tail`; returns its JSON answer and peak RSS."""
    answer = log.with_suffix(".json")
    args = [sys.executable, "-m", "benchmarks.export_cost", *argv_tail, "--answer", str(answer)]
    code, wall, rss = run_child(args, log, env)
    if code:
        raise SystemExit(f"child {argv_tail} failed ({code}), see {log}")
    result = json.loads(answer.read_text())
    answer.unlink()
    return result, wall, rss


def add_arguments(parser):
    parser.add_argument("--samples", type=int, help=f"parity sentences ({SAMPLES}, small 4)")
    parser.add_argument("--no-stages", action="store_true", help="skip the per-stage export")
    parser.add_argument("--probes", nargs="+", choices=list(MEMORY_PROBES), help="(small: 4)")


def run(args):
    samples = args.samples or (SMALL_SAMPLES if args.small else SAMPLES)
    probes = args.probes or (SMALL_PROBES if args.small else list(MEMORY_PROBES))
    return measure(samples, not args.no_stages, probes, args.small)


def measure(samples, stages, probes, small=False):
    """The export timed whole and stage by stage, the artifact sizes, the memory probes."""
    run_dir = common.bench_run(small)
    logs = work_dir(small, "bench-export-cost")
    logs.mkdir(parents=True, exist_ok=True)
    export_dir = work_dir(small, "bench-export")
    stage_dir = work_dir(small, "bench-export-stages")
    print("timing seq2seq-attn export ...", flush=True)
    export = common.run_export_cli(run_dir, export_dir, samples)
    print(f"  {export['wall_s']} s, peak RSS {export['peak_rss_mb']} MB", flush=True)
    result = {"export": export}
    if stages:
        print("timing the export stage by stage ...", flush=True)
        args = ["--stages", str(run_dir), str(stage_dir), str(samples)]
        staged, wall, rss = _child(args, logs / "stages.log", common.export_env())
        shutil.rmtree(stage_dir, ignore_errors=True)
        staged.update(wall_s=round(wall, 1), peak_rss_mb=rss)
        result["export_stages"] = staged
        print(f"  {staged['seconds']}", flush=True)
    result["sizes"] = artifact_sizes(export_dir, run_dir)
    cache_batch32(run_dir)
    memory = {}
    for name in probes:
        probe, wall, rss = _child(
            ["--probe", name, str(run_dir), str(export_dir)], logs / f"probe-{name}.log"
        )
        probe["wall_s"] = round(wall, 1)
        memory[name] = probe
        print(f"  memory {name:20} VmHWM {probe['vmhwm_mb']:8.1f} MB", flush=True)
    result["memory"] = {
        "what": "fresh process: imports, load artifacts, one greedy decode of the 32 test "
        "sentences of decode_latency.py (padded to "
        f"{decode_latency.SOURCE_LENGTH} tokens, max_length {decode_latency.MAX_LENGTH}); "
        "VmHWM read in the child at its end",
        "threads": decode_latency.THREADS,
        "probes": memory,
    }
    return result


def child_main(argv=None):
    """The children's entry point: `--stages RUN OUT SAMPLES` or `--probe NAME RUN EXPORT`."""
    parser = argparse.ArgumentParser(description="a child of the export_cost benchmark")
    parser.add_argument("--stages", nargs=3, metavar=("RUN", "OUT", "SAMPLES"))
    parser.add_argument("--probe", nargs=3, metavar=("NAME", "RUN", "EXPORT"))
    parser.add_argument("--answer", required=True, help="where to write its JSON")
    args = parser.parse_args(argv)
    if args.stages:
        run_dir, out, samples = args.stages
        answer = stage_times(run_dir, out, int(samples))
    else:
        name, run_dir, export_dir = args.probe
        answer = memory_probe(name, Path(run_dir), Path(export_dir))
    Path(args.answer).write_text(json.dumps(answer))


if __name__ == "__main__":
    child_main()
