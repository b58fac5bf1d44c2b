#!/usr/bin/env python3
"""Bootstrap and run the project's two main jobs with nothing but Python 3.11 and pip.

    python3 tasks.py demo     # create .venv if needed, install, train/evaluate/plot the dates demo
    python3 tasks.py test     # create .venv if needed, install, run the whole test suite

The virtual environment is (re)installed whenever pyproject.toml changes.
"""

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed"


def ensure_env():
    """Creates .venv and installs the package with its test extras, once per pyproject."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == digest:
        return
    if not (BIN / "python").exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("installing seq2seq-attn and its dependencies (first run only)", flush=True)
    subprocess.run([BIN / "python", "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run(
        [BIN / "python", "-m", "pip", "install", "-q", "-e", f"{ROOT}[train,serve,test,docs]"],
        check=True,
    )
    STAMP.write_text(digest)


def main(argv):
    if len(argv) < 1 or argv[0] not in ("demo", "test"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    ensure_env()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if argv[0] == "demo":
        cmd = [BIN / "seq2seq-attn", "demo", *argv[1:]]
    else:
        # One worker per core, at most 4 (each holds a TensorFlow runtime); whole test files
        # go to one worker, so a module's fixtures are built once, longest files first
        # (tests/conftest.py's order, not xdist's by number of tests).
        xdist = ["-n", "auto", "--maxprocesses=4", "--dist", "loadfile", "--no-loadscope-reorder"]
        cmd = [BIN / "python", "-m", "pytest", "-q", "--durations=10", *xdist, *argv[1:]]
    # pytest exits 5 when it collected no test: that is a failure here too.
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
