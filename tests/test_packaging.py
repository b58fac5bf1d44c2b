"""The install surface: the serve extra pulls no TensorFlow; the wheel, built and installed
outside the checkout, holds one top-level package with everything the commands need, and
nothing else (no tools, tests, benchmarks or caches); every test file has its layer."""

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

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


def test_console_script_help():
    result = subprocess.run(
        [sys.executable, "-m", "seq2seq_attn.cli", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    for command in ("train", "evaluate", "translate", "export", "serve", "demo"):
        assert command in result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel, built offline from the checkout as `pip wheel` builds it."""
    out = tmp_path_factory.mktemp("wheel")
    # a copy without build outputs: setuptools would pack stale files from an old build/
    source = tmp_path_factory.mktemp("source") / "seq2seq-attn"
    skip = shutil.ignore_patterns(".*", "runs", "build", "*.egg-info", "__pycache__")
    shutil.copytree(ROOT, source, ignore=skip)
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*command, str(source), "-w", str(out)], check=True, timeout=600)
    (path,) = out.glob("seq2seq_attn-*.whl")
    return path


def package_folders():
    """`{installed path: checkout folder}`: seq2seq_attn and the folders pyproject.toml maps."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped = {
        name.replace(".", "/"): ROOT / folder for name, folder in setuptools["package-dir"].items()
    }
    return {"seq2seq_attn": ROOT / "seq2seq_attn", **mapped}


def checkout_files():
    """Every file of the package's folders in the checkout (as the wheel fixture copies them:
    no hidden files, no __pycache__), at its installed path."""
    files = set()
    for installed, folder in package_folders().items():
        for path in folder.rglob("*"):
            hidden = any(part.startswith(".") for part in path.relative_to(folder).parts)
            if path.is_file() and "__pycache__" not in path.parts and not hidden:
                files.add(f"{installed}/{path.relative_to(folder).as_posix()}")
    return files


def test_wheel_holds_the_package_folders_and_nothing_else(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    dist_info = wheel.name.split("-py")[0] + ".dist-info"
    top = {name.split("/")[0] for name in names}
    assert top == {"seq2seq_attn", dist_info}, top
    shipped = {name for name in names if not name.startswith(dist_info)}
    expected = checkout_files()
    assert not expected - shipped, f"missing from the wheel: {sorted(expected - shipped)}"
    assert not shipped - expected, f"not in the checkout's package: {sorted(shipped - expected)}"
    for needed in (
        "seq2seq_attn/corpus/bible-en-es.tsv.gz",
        "seq2seq_attn/corpus/README.md",
        "seq2seq_attn/configs/bible.yaml",
        "seq2seq_attn/pretrained/bible-en-es/model.keras",
        "seq2seq_attn/pretrained/bible-en-es/tokenizer/tokenizer.json",
        "seq2seq_attn/serving/static/index.html",
        "seq2seq_attn/serving/app.py",
        "seq2seq_attn/export/main.py",
        "seq2seq_attn/inference/runtime.py",
    ):
        assert needed in shipped, needed
    unwanted = ("tools/", "tests/", "benchmarks/", "build_bible", "__pycache__", ".pyc", "conftest")
    assert not [name for name in names if any(part in name for part in unwanted)], names
    assert not [n for n in names if "wordpiece" in n], "a stale module from an old build"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert (
        "seq2seq-attn = seq2seq_attn.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    )


INSTALLED_CHECK = """
import sys
import seq2seq_attn, seq2seq_attn.serving.app, seq2seq_attn.export.main
from seq2seq_attn.corpora import bible_path, load_bible
site = sys.argv[1]
for module in (seq2seq_attn, seq2seq_attn.serving.app, seq2seq_attn.export.main):
    assert module.__file__.startswith(site), module.__file__
assert str(bible_path()).startswith(site), bible_path()
corpus = load_bible("en", "es")
print("corpus", len(corpus.train), len(corpus.dev), len(corpus.test))
"""


def test_installed_wheel_works_outside_the_checkout(wheel, tmp_path):
    """Installed into a directory outside the checkout: the corpus loads from the package, and
    `evaluate` scores the pretrained model on a few test verses."""
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), wheel],
        check=True,
        timeout=600,
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site), TF_CPP_MIN_LOG_LEVEL="2")
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, *args], cwd=work, env=env, capture_output=True, text=True, timeout=600
    )
    loaded = run("-c", INSTALLED_CHECK, str(site))
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert "corpus 28753 999 995" in loaded.stdout
    pretrained = site / "seq2seq_attn" / "pretrained" / "bible-en-es"
    evaluated = run("-m", "seq2seq_attn.cli", "evaluate", str(pretrained), "--limit", "8")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert "BLEU" in evaluated.stdout and "exact match" in evaluated.stdout
    result = json.loads((pretrained / "eval_test.json").read_text())
    assert result["n"] == 8 and result["bleu"] > 0, result


def test_every_test_file_has_one_layer_and_a_new_file_must_get_one(tmp_path):
    """tests/conftest.py's LAYERS lists every test file with a declared layer marker; a file
    it does not list stops the collection with one line that says what to do."""
    import conftest

    ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    declared = {marker.split(":")[0] for marker in ini["markers"]}
    assert set(conftest.LAYERS.values()) <= set(conftest.LAYER_MARKERS) <= declared
    assert {"canary", "slow", "fast"} <= declared
    files = {path.name for path in (ROOT / "tests").glob("test_*.py")}
    assert set(conftest.LAYERS) == files
    assert {key.split("::")[0] for key in conftest.NOT_FAST} <= files
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path)
    (tmp_path / "test_new.py").write_text("def test_one():\n    pass\n")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider"]
    # conftest imports `benchmarks.common`: the repository root goes first on the path
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    result = subprocess.run(
        [*command, str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 2, result.stdout[-2000:]
    assert "test_new.py has no layer: add it to LAYERS in tests/conftest.py" in result.stdout
