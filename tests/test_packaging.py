"""The install surface: the serve extra pulls no TensorFlow, the entry point exists."""

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TF_STACK = ("tensorflow", "keras", "tf2onnx", "tensorboard", "tensorflow-text", "tf-keras")


def requirement_name(requirement):
    for sep in "<>=!~[; ":
        requirement = requirement.split(sep)[0]
    return requirement.strip().lower()


def test_base_and_serve_dependencies_are_tensorflow_free():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [requirement_name(r) for r in project["dependencies"]]
    names += [requirement_name(r) for r in project["optional-dependencies"]["serve"]]
    assert not set(names) & set(TF_STACK), names
    assert "tensorflow" in {requirement_name(r) for r in project["optional-dependencies"]["train"]}


def test_server_side_imports_no_tensorflow():
    code = (
        "import sys, serving.app, serving.runtime, serving.search, seq2seq_attn.wordpiece;"
        "bad = [m for m in ('tensorflow', 'keras', 'tf2onnx') if m in sys.modules];"
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_console_script_help():
    result = subprocess.run(
        [sys.executable, "-m", "seq2seq_attn.cli", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    for command in ("train", "evaluate", "translate", "export", "serve", "demo"):
        assert command in result.stdout
