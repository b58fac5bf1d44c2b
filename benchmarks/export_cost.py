"""What exporting costs: export time, artifact sizes, and the peak memory of each runtime.

1. `seq2seq-attn export` on the benchmark model (`common.bench_run()`) in a child process,
   into runs/bench-export: wall time and peak RSS of its process tree (the command runs
   each stage in a process of its own; see `run_child`). Parity runs on `--samples`
   held-out sentences (200 by default, as the CLI).
2. The same export again through `export_run` with every stage timed and measured
   (`stage_times`), into a scratch directory deleted afterwards: with each stage in its own
   process as the command does (`--stage-modes children`) and with all of them in one
   process (`here`), side by side (skip with `--no-stages`).
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


def _tree(pid):
    """`pid` and its descendants that are alive now (Linux /proc children lists)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo += [int(c) for c in children.read_text().split()]
            except OSError:
                pass
    return found


def run_child(args, log_path=None, env=None):
    """Runs a child to completion: (exit code, figures of its whole process tree).

    Every 0.1 s, for the child and every process it started (an export runs each stage in
    its own process): each one's VmHWM so far, and the sum of their current RSS.
    `peak_rss_mb` is the largest sum of the VmHWMs of processes alive at the same poll, an
    upper bound of the tree's memory at any moment (each peak counted as if it lasted);
    `sampled_peak_mb` the largest sum of RSS seen; `largest_process_mb` the largest single
    VmHWM. (os.wait4's ru_maxrss would count the parent's pages that the forked child held
    until its exec, and the largest descendant only, not the sum.)
    """
    log = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115
    bound_kb = sampled_kb = 0
    peaks = {}
    try:
        started = time.perf_counter()
        child = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, cwd=common.ROOT, env=env
        )
        while True:
            pid, status, _ = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            alive = {p: _status_kb(f"/proc/{p}/status", "VmHWM") for p in _tree(child.pid)}
            alive = {p: kb for p, kb in alive.items() if kb}
            for p, kb in alive.items():
                peaks[p] = max(peaks.get(p, 0), kb)
            bound_kb = max(bound_kb, sum(peaks[p] for p in alive))
            rss = [_status_kb(f"/proc/{p}/status", "VmRSS") or 0 for p in alive]
            sampled_kb = max(sampled_kb, sum(rss))
            time.sleep(0.1)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if log_path:
            log.close()
    return child.returncode, {
        "wall_s": round(wall, 1),
        "peak_rss_mb": _mb(bound_kb),
        "sampled_peak_mb": _mb(sampled_kb),
        "largest_process_mb": _mb(max(peaks.values(), default=0)),
        "processes": len(peaks),
    }


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
    code, figures = run_child(args, log, export_env())
    if code:
        raise SystemExit(f"export failed ({code}), see {log}")
    return {
        "command": " ".join([cli.name] + args[1:]),
        **figures,
        "parity_samples": samples,
        "log": str(log.relative_to(common.ROOT)),
    }


def _measured(fn, *args):
    """In a stage's own process: `fn(*args)`, its seconds, the process's peak and RSS after."""
    started = time.perf_counter()
    value = fn(*args)
    seconds = round(time.perf_counter() - started, 2)
    return value, {"seconds": seconds, **_memory_now()}


def _memory_now():
    return {"peak_mb": _status_mb("VmHWM"), "rss_mb_after": _status_mb("VmRSS")}


def stage_times(run_dir, out_dir, samples, mode):
    """`export_run` with every stage timed and measured; returns {stage: figures}.

    mode "children" (what `seq2seq-attn export` does): each stage in its own process, whose
    whole-life VmHWM is the stage's peak. mode "here": every stage in this process, VmHWM
    reset before each (Linux clear_refs), as exports ran before the stages were isolated.
    """
    from seq2seq_attn.export.isolation import run_here, run_in_child
    from seq2seq_attn.export.main import export_run

    stages = {}

    def in_children(name, fn, *args):
        started = time.perf_counter()
        value, figures = run_in_child(name, _measured, fn, *args)
        stages[name] = {"wall_s": round(time.perf_counter() - started, 2), **figures}
        return value

    def here(name, fn, *args):
        resettable = _reset_peak()
        started = time.perf_counter()
        value = run_here(name, fn, *args)
        stages[name] = {"wall_s": round(time.perf_counter() - started, 2), **_memory_now()}
        if not resettable:
            stages[name]["peak_mb"] = None
        return value

    run = {"children": in_children, "here": here}[mode]
    started = time.perf_counter()
    report = export_run(run_dir, out_dir, samples=samples, force=True, echo=print, run=run)
    result = {
        "mode": mode,
        "stages": stages,
        "total_s": round(time.perf_counter() - started, 1),
        "parity_passed": report["passed"],
        "parity_samples": report["samples"],
    }
    if mode == "children":  # (here, VmHWM was reset before each stage)
        result["parent_peak_mb"] = _status_mb("VmHWM")
    return result


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
    """Runs this script in a child with `argv_tail`; returns its JSON answer and the
    `run_child` figures of its process tree."""
    answer = log.with_suffix(".json")
    args = [sys.executable, __file__, *argv_tail, "--answer", str(answer)]
    code, figures = run_child(args, log, env)
    if code:
        raise SystemExit(f"child {argv_tail} failed ({code}), see {log}")
    result = json.loads(answer.read_text())
    answer.unlink()
    return result, figures


def run(samples, stage_modes):
    run_dir = common.bench_run()
    logs = common.ROOT / "runs" / "bench-export-cost"
    logs.mkdir(parents=True, exist_ok=True)
    export_dir = decode_latency.EXPORT_DIR
    print("timing seq2seq-attn export ...", flush=True)
    export = run_export_cli(run_dir, export_dir, samples)
    print(f"  {export['wall_s']} s, peak RSS {export['peak_rss_mb']} MB", flush=True)
    result = {"machine": common.machine(), "export": export}
    for mode in stage_modes:
        print(f"timing the export stage by stage, {mode} ...", flush=True)
        args = ["--stages", str(run_dir), str(STAGE_DIR), str(samples), mode]
        staged, figures = _child(args, logs / f"stages-{mode}.log", export_env())
        shutil.rmtree(STAGE_DIR, ignore_errors=True)
        staged.update(figures)
        result[f"export_stages_{mode}"] = staged
        print(f"  {staged['total_s']} s, peak {figures['peak_rss_mb']} MB", flush=True)
    result["sizes"] = artifact_sizes(export_dir, run_dir)
    cache_batch32(run_dir)
    memory = {}
    for name in MEMORY_PROBES:
        probe, figures = _child(
            ["--probe", name, str(run_dir), str(export_dir)], logs / f"probe-{name}.log"
        )
        probe["wall_s"] = figures["wall_s"]
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
    parser.add_argument(
        "--stages", nargs=4, metavar=("RUN", "OUT", "SAMPLES", "MODE"), help="child"
    )
    parser.add_argument(
        "--stage-modes",
        default="children,here",
        help="stage by stage: each stage in its own process (children, as the CLI does) "
        "and/or all in one (here)",
    )
    parser.add_argument("--probe", nargs=3, metavar=("NAME", "RUN", "EXPORT"), help="child")
    parser.add_argument("--answer", help="child: where to write its JSON")
    args = parser.parse_args(argv)
    if args.stages:
        run_dir, out, samples, mode = args.stages
        result = stage_times(run_dir, out, int(samples), mode)
        Path(args.answer).write_text(json.dumps(result))
        return
    if args.probe:
        name, run_dir, export_dir = args.probe
        answer = memory_probe(name, Path(run_dir), Path(export_dir))
        Path(args.answer).write_text(json.dumps(answer))
        return
    modes = [] if args.no_stages else args.stage_modes.split(",")
    result = run(args.samples, modes)
    print(f"wrote {common.write_result('export_cost', result)}")


if __name__ == "__main__":
    main()
