"""The benchmark harness: the one timer, the machine facts and the one result writer.

Every benchmark is a module `benchmarks/NAME.py` whose docstring's first line says what it
measures, with `add_arguments(parser)` (its own options) and `run(args) -> dict` (the
figures). The harness adds the options every benchmark has (`--small`, `--out`), runs it,
and writes one result file:

    {"benchmark", "date", "commit", "machine", "versions", "args", "figures"}

A full run replaces `benchmarks/results/NAME.json` (history lives in git); a `--small` run
writes `runs/benchmarks/NAME.json` (git-ignored), so a quick check never replaces a result.

    python -m benchmarks --list
    python -m benchmarks decode_latency --small
    python -m benchmarks headline [--write README.md]   (benchmarks/report.py)
"""

import argparse
import ast
import datetime
import importlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = ROOT / "benchmarks"
RESULTS_DIR = PACKAGE_DIR / "results"
SMALL_DIR = ROOT / "runs" / "benchmarks"  # small runs: results, plots, models, exports
DOCS_DIR = ROOT / "docs"
RESULT_KEYS = ("benchmark", "date", "commit", "machine", "versions", "args", "figures")
BENCHMARKS = (
    "alignment_error",
    "attention_vs_vanilla",
    "bulk_translate",
    "decode_latency",
    "export_cost",
    "load_test",
    "parity_profile",
    "reverse_by_length",
    "shortlist_coverage",
    "shortlist_paths",
    "startup",
    "time_to_quality",
    "train_throughput",
    "train_tutorial_size",
    "training_modes",
    "training_recipes",
    "tutorial_size",
    "web_page",
)
# Distributions whose versions go with every result (read from metadata, nothing imported).
PACKAGES = (
    "seq2seq-attn",
    "tensorflow",
    "keras",
    "tensorflow-text",
    "numpy",
    "onnxruntime",
    "onnx",
    "tf2onnx",
    "ai-edge-litert",
    "sentencepiece",
)
CPU_FLAG_PREFIXES = ("avx", "amx", "fma", "f16c")


# ---- the timer ----


def clock():
    """The one clock of every benchmark: seconds, monotonic, high resolution."""
    return time.perf_counter()


class Timer:
    """Times a `with` block: `with Timer() as t: ...` then `t.seconds`."""

    def __enter__(self):
        self.seconds = None
        self.started = clock()
        return self

    def __exit__(self, *exc):
        self.seconds = clock() - self.started


# ---- the machine, the versions, the code ----


def cpu_info(path="/proc/cpuinfo"):
    """`(model name, sorted AVX/AMX/FMA flags)` of the first processor in `path`."""
    model, flags = None, []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model is None:
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = sorted(f for f in value.split() if f.startswith(CPU_FLAG_PREFIXES))
    return model or platform.processor() or platform.machine(), flags


def cpu_model():
    """The processor's model name."""
    return cpu_info()[0]


def machine():
    """Facts that go with every result: the numbers mean little without them."""
    model, flags = cpu_info()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_model": model,
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "cpu_flags": flags,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def versions(packages=PACKAGES):
    """`{distribution: version}` of the packages that shape the figures (None: absent)."""
    found = {}
    for name in packages:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def git_commit(root=ROOT):
    """`{"commit", "uncommitted_changes"}` of the checkout, or None outside git."""
    try:
        run = lambda *a: subprocess.run(  # noqa: E731
            ["git", *a], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        commit = run("rev-parse", "HEAD")
        dirty = bool(run("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"commit": commit, "uncommitted_changes": dirty}


# ---- where things go ----


def result_path(name, small):
    """Where a run's result goes: the current result file, or runs/benchmarks/ when small."""
    return (SMALL_DIR if small else RESULTS_DIR) / f"{name}.json"


def plot_path(args, file_name):
    """Where a run's plot goes: `docs/FILE` for a full run, runs/benchmarks/ when small."""
    folder = SMALL_DIR if args.small else DOCS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return folder / file_name


def fill_defaults(args, full, small):
    """Sets each option of `full` that the user left at None to its full-size value, or to
    its value in `small` for a `--small` run (an option missing from `small` keeps `full`)."""
    for key, value in full.items():
        if getattr(args, key) is None:
            setattr(args, key, small.get(key, value) if args.small else value)


def work_dir(small, name):
    """`runs/NAME` for a full run, `runs/benchmarks/NAME` for a small one."""
    return (SMALL_DIR if small else ROOT / "runs") / name


# ---- the result writer ----


def record(name, figures, args):
    """The result record of one run (every key of `RESULT_KEYS`)."""
    options = {k: _plain(v) for k, v in vars(args).items() if k not in ("out", "benchmark")}
    return {
        "benchmark": name,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": machine(),
        "versions": versions(),
        "args": options,
        "figures": figures,
    }


def write_result(name, figures, args, path=None):
    """Writes the result record of one run as JSON and returns its path."""
    path = Path(path) if path else result_path(name, args.small)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record(name, figures, args), indent=2) + "\n")
    return path


def read_result(name, folder=RESULTS_DIR):
    """The current result record of a benchmark."""
    return json.loads((Path(folder) / f"{name}.json").read_text())


def _plain(value):
    return str(value) if isinstance(value, Path) else value


# ---- the command line ----


def description(name):
    """The first line of a benchmark module's docstring (read without importing it)."""
    tree = ast.parse((PACKAGE_DIR / f"{name}.py").read_text())
    return (ast.get_docstring(tree) or "").splitlines()[0]


def parser_for(name, module):
    """The benchmark's argument parser: its own options and the harness's."""
    parser = argparse.ArgumentParser(
        prog=f"python -m benchmarks {name}",
        description=module.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--small", action="store_true", help="small size: a quick check")
    parser.add_argument(
        "--out", type=Path, help="result file (default: results/NAME.json, small runs/benchmarks)"
    )
    module.add_arguments(parser)
    return parser


def run_benchmark(name, argv):
    """Parses `argv` for benchmark `name`, runs it, writes the result; returns an exit code."""
    module = importlib.import_module(f"benchmarks.{name}")
    args = parser_for(name, module).parse_args(argv)
    args.benchmark = name
    with Timer() as timer:
        figures = module.run(args)
    path = write_result(name, figures, args, args.out)
    print(f"{name}: {timer.seconds:.1f} s, wrote {path}", flush=True)
    exit_code = getattr(module, "exit_code", None)
    return exit_code(figures) if exit_code else 0


def main(argv=None):
    """`python -m benchmarks --list | NAME [--small] [options]` (`headline` is __main__'s)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    if argv[0] == "--list":
        width = max(map(len, BENCHMARKS))
        for name in BENCHMARKS:
            print(f"{name:{width}}  {description(name)}")
        return 0
    if argv[0] not in BENCHMARKS:
        print(f"unknown benchmark {argv[0]!r}; `python -m benchmarks --list` names them")
        return 2
    return run_benchmark(argv[0], argv[1:])
