"""Imports run one way: library <- inference <- export, serving <- cli (checked on the source).

    library    seq2seq_attn.* (layers, model, graph search, data, training, interface, ...)
    inference  seq2seq_attn.inference (TensorFlow-free runtimes and host-side search)
    export     seq2seq_attn.export (repository folder export/)
    serving    seq2seq_attn.serving (repository folder serving/)
    cli        seq2seq_attn.cli and seq2seq_attn.commands (the subcommands' plain functions)

A module may import its own layer and the layers below it, never one above; export and
serving never import each other. Imports inside functions count too.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {
    "seq2seq_attn": ROOT / "seq2seq_attn",
    "export": ROOT / "export",
    "serving": ROOT / "serving",
}
CLI = {"seq2seq_attn.cli", "seq2seq_attn.commands"}
# what each layer may import from this package
ALLOWED = {
    "library": {"library"},
    "inference": {"library", "inference"},
    "export": {"library", "inference", "export"},
    "serving": {"library", "inference", "serving"},
    "cli": {"library", "inference", "export", "serving", "cli"},
}


def layer(module):
    if module in CLI:
        return "cli"
    for name in ("inference", "export", "serving"):
        if module == f"seq2seq_attn.{name}" or module.startswith(f"seq2seq_attn.{name}."):
            return name
    return "library"


def modules():
    """(dotted name, path) of every module the wheel installs."""
    for folder, path in FOLDERS.items():
        prefix = "seq2seq_attn" if folder == "seq2seq_attn" else f"seq2seq_attn.{folder}"
        for file in sorted(path.rglob("*.py")):
            parts = file.relative_to(path).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join((prefix, *parts)), file


def imported(path, module):
    """The seq2seq_attn modules that `path` imports, absolute, wherever the import is."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                base = ".".join(module.split(".")[: -node.level] + ([base] if base else []))
            found |= {f"{base}.{alias.name}" for alias in node.names} | {base}
    return {name for name in found if name.split(".")[0] in ("seq2seq_attn", "serving", "export")}


def test_no_generic_top_level_imports():
    """Neither the package nor its tests and benchmarks import `serving` or `export`."""
    files = [(module, path) for module, path in modules()]
    files += [
        (p.stem, p)
        for folder in ("tests", "benchmarks", "docs")
        for p in (ROOT / folder).glob("*.py")
    ]
    bad = [
        (module, name)
        for module, path in files
        for name in imported(path, module)
        if name.split(".")[0] in ("serving", "export")
    ]
    assert not bad, bad


def test_imports_run_one_way():
    bad = []
    for module, path in modules():
        for name in imported(path, module):
            if layer(name) not in ALLOWED[layer(module)]:
                bad.append(f"{module} ({layer(module)}) imports {name} ({layer(name)})")
    assert not bad, "\n".join(bad)


def test_the_layer_rule_catches_a_violation(tmp_path):
    """The checker itself: an upward import is reported."""
    path = tmp_path / "bad.py"
    path.write_text("def f():\n    from seq2seq_attn.serving.app import create_app\n")
    names = imported(path, "seq2seq_attn.inference.bad")
    assert [n for n in names if layer(n) not in ALLOWED["inference"]]


@pytest.mark.parametrize(
    "module",
    ["seq2seq_attn.inference.runtime", "seq2seq_attn.inference.search", "seq2seq_attn.interface"],
)
def test_inference_layer_imports_no_tensorflow(module):
    code = (
        f"import sys, {module}\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_no_two_classes_share_a_name():
    seen = {}
    for module, path in modules():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef):
                seen.setdefault(node.name, []).append(module)
    assert not {name: where for name, where in seen.items() if len(where) > 1}
