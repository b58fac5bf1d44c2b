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

    python benchmarks/export_cost.py        # ~8 min on 2 busy CPU cores

Writes benchmarks/results/export_cost.json.
"""

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import decode_latency  # noqa: E402

SAMPLES = 200  # parity sentences, the CLI's default
STAGE_DIR = common.ROOT / "runs" / "bench-export-stages"
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


def _mb(kilobytes):
    return round(kilobytes / 1024, 1)


def run_child(args, log_path=None, env=None):
    """Runs a child to completion: (exit code, wall seconds, its peak RSS in MB).

    The peak is the child's VmHWM, read from /proc every 0.1 s while it runs: os.wait4's
    ru_maxrss would also count the parent's pages that the forked child held until its exec.
    """
    log = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115
    peak_kb = 0
    try:
        started = time.perf_counter()
        child = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, cwd=common.ROOT, env=env
        )
        while True:
            pid, status, _ = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            peak_kb = max(peak_kb, _status_kb(f"/proc/{child.pid}/status", "VmHWM") or 0)
            time.sleep(0.1)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if log_path:
            log.close()
    return child.returncode, wall, _mb(peak_kb)


def export_env():
    """The environment without the thread pins decode_latency sets: exports get the defaults."""
    return {
        k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
    }


def run_export_cli(run_dir, out, samples=SAMPLES):
    """`seq2seq-attn export RUN --out OUT --samples N --force` timed in a child process."""
    cli = Path(sys.executable).with_name("seq2seq-attn")
    args = [str(cli), "export", str(run_dir), "--out", str(out), "--samples", str(samples)]
    args.append("--force")
    log = Path(out).with_suffix(".log")
    code, wall, rss = run_child(args, log, export_env())
    if code:
        raise SystemExit(f"export failed ({code}), see {log}")
    return {
        "command": " ".join([cli.name] + args[1:]),
        "wall_s": round(wall, 1),
        "peak_rss_mb": rss,  # VmHWM, polled
        "parity_samples": samples,
        "log": str(log.relative_to(common.ROOT)),
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
        t0 = time.perf_counter()
        value = fn(*args)
        times[name] = round(time.perf_counter() - t0, 2)
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
    t0 = time.perf_counter()
    for module in IMPORTS[group]:
        importlib.import_module(module)
    result = {"import_s": round(time.perf_counter() - t0, 2)}
    if runtime is not None:
        import numpy as np

        ids = np.load(BATCH32)  # written by cache_batch32 in the parent
        result["after_imports_mb"] = _status_mb("VmRSS")
        t0 = time.perf_counter()
        decode = decode_latency.make_runtime(runtime, run_dir, export_dir)
        result["load_s"] = round(time.perf_counter() - t0, 2)
        result["after_load_mb"] = _status_mb("VmRSS")
        t0 = time.perf_counter()
        tokens = decode(ids, 1)
        result["decode_s"] = round(time.perf_counter() - t0, 2)
        result["steps"] = int(tokens.shape[1])
    result["vmhwm_mb"] = _status_mb("VmHWM")
    result["tensorflow_imported"] = "tensorflow" in sys.modules
    return result


BATCH32 = common.ROOT / "runs" / "bench-batch32.npy"


def cache_batch32(run_dir):
    """Saves the batch-32 source ids of decode_latency, so that probes never read the corpus."""
    import numpy as np

    from seq2seq_attn.tokenizer import TokenizerPair

    tokenizers = TokenizerPair.load(Path(run_dir) / "tokenizer")
    np.save(BATCH32, decode_latency.bench_sentences(run_dir, tokenizers, 1)["batch32"])


def _status_kb(path, field):
    """A kB field of a /proc status file, or None (also when the process is gone)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak():
    """Resets this process's VmHWM to its current RSS (Linux >= 4.0); False where it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _status_mb(field):
    kilobytes = _status_kb("/proc/self/status", field)
    return None if kilobytes is None else _mb(kilobytes)


def _child(argv_tail, log, env=None):
    """Runs this script in a child with `argv_tail`; returns its JSON answer and peak RSS."""
    answer = log.with_suffix(".json")
    args = [sys.executable, __file__, *argv_tail, "--answer", str(answer)]
    code, wall, rss = run_child(args, log, env)
    if code:
        raise SystemExit(f"child {argv_tail} failed ({code}), see {log}")
    result = json.loads(answer.read_text())
    answer.unlink()
    return result, wall, rss


def run(samples, stages):
    run_dir = common.bench_run()
    logs = common.ROOT / "runs" / "bench-export-cost"
    logs.mkdir(parents=True, exist_ok=True)
    export_dir = decode_latency.EXPORT_DIR
    print("timing seq2seq-attn export ...", flush=True)
    export = run_export_cli(run_dir, export_dir, samples)
    print(f"  {export['wall_s']} s, peak RSS {export['peak_rss_mb']} MB", flush=True)
    result = {"machine": common.machine(), "export": export}
    if stages:
        print("timing the export stage by stage ...", flush=True)
        args = ["--stages", str(run_dir), str(STAGE_DIR), str(samples)]
        staged, wall, rss = _child(args, logs / "stages.log", export_env())
        shutil.rmtree(STAGE_DIR, ignore_errors=True)
        staged.update(wall_s=round(wall, 1), peak_rss_mb=rss)
        result["export_stages"] = staged
        print(f"  {staged['seconds']}", flush=True)
    result["sizes"] = artifact_sizes(export_dir, run_dir)
    cache_batch32(run_dir)
    memory = {}
    for name in MEMORY_PROBES:
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=SAMPLES, help="parity sentences")
    parser.add_argument("--no-stages", action="store_true", help="skip the per-stage export")
    parser.add_argument("--stages", nargs=3, metavar=("RUN", "OUT", "SAMPLES"), help="child")
    parser.add_argument("--probe", nargs=3, metavar=("NAME", "RUN", "EXPORT"), help="child")
    parser.add_argument("--answer", help="child: where to write its JSON")
    args = parser.parse_args(argv)
    if args.stages:
        run_dir, out, samples = args.stages
        Path(args.answer).write_text(json.dumps(stage_times(run_dir, out, int(samples))))
        return
    if args.probe:
        name, run_dir, export_dir = args.probe
        answer = memory_probe(name, Path(run_dir), Path(export_dir))
        Path(args.answer).write_text(json.dumps(answer))
        return
    result = run(args.samples, not args.no_stages)
    print(f"wrote {common.write_result('export_cost', result)}")


if __name__ == "__main__":
    main()
