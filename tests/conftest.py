import json
import os
import shutil

import pytest
import yaml
from filelock import FileLock

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# Under pytest-xdist the workers split the cores: TensorFlow's default of one op thread per
# core in every worker oversubscribes them (on 2 cores, 2 workers: test_model, test_training
# and test_optimizers took 284 s with the default, 173 s with one thread each, one after the
# other; the whole suite: 850 s before, 840 s after, on a noisy day, so the gain is unproven).
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    _share = (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(max(1, _share)))

# Under pytest-xdist's `--dist loadfile` each file goes whole to one worker, in this order
# (`tasks.py` turns xdist's own reordering, by number of tests, off): the longest files first,
# so that none of them starts last while the other worker idles, and the first two are one
# that builds the shared tiny model and one that does not need it, so that the other worker
# does not wait for the build. Seconds summed over a file's tests, 2 cores, 2026-12-03:
# cli 224 (and the tiny model's build), model 341, distribute 417, serving_concurrency 125
# (and the pretrained export, 76), benchmarks 132, training 111, export 106.
LONGEST_FIRST = (
    "test_cli.py",
    "test_model.py",
    "test_distribute.py",
    "test_serving_concurrency.py",
    "test_benchmarks.py",
    "test_training.py",
    "test_export.py",
)


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the other files, and every file's tests, keep their order


# A dates model small enough to train in seconds; shared by the CLI, export and serving tests.
TINY_CONFIG = {
    "data": {"size": 600},
    "tokenizer": {"source_vocab_size": 200, "target_vocab_size": 30, "byte_fallback": False},
    "model": {"embedding_dim": 8, "units": 16, "attention_units": 16},
    "training": {"batch_size": 32, "epochs": 1, "max_source_length": 40, "max_target_length": 16},
}


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_CONFIG))
    return path


def _built_once(tmp_path_factory, config, name, build):
    """`build(path)` once per test session, shared by every xdist worker; returns `path`.

    pytest-xdist's recipe for session fixtures: the first worker builds under a file lock in
    the directory all workers share, the others wait for it and reuse the result. Without
    xdist (`-p no:xdist`, or not installed) the session builds it alone.
    """
    if not hasattr(config, "workerinput"):  # not an xdist worker
        path = tmp_path_factory.getbasetemp() / name
    else:
        path = tmp_path_factory.getbasetemp().parent / name
    with FileLock(f"{path}.lock"):
        if not (path / ".built").exists():
            shutil.rmtree(path, ignore_errors=True)  # a worker that failed half way
            path.mkdir()
            build(path)
            (path / ".built").touch()
    return path


def _train_and_export(path, config):
    from seq2seq_attn.export.main import export_run

    from seq2seq_attn.cli import main

    run = path / "dates"
    assert main(["train", "--data", "dates", "--config", str(config), "--out", str(run)]) == 0
    export_run(run, path / "exported", samples=12, echo=lambda *_: None)


@pytest.fixture(scope="session")
def tiny_dates(tiny_config, tmp_path_factory, pytestconfig):
    """The tiny dates model trained and exported once for the whole session."""
    return _built_once(
        tmp_path_factory, pytestconfig, "tiny", lambda path: _train_and_export(path, tiny_config)
    )


@pytest.fixture(scope="session")
def tiny_run(tiny_dates):
    """A trained run directory of the tiny dates model."""
    return tiny_dates / "dates"


@pytest.fixture(scope="session")
def tiny_export(tiny_dates):
    """`(export_dir, parity_report)` of the tiny run: every artifact, parity passed."""
    out = tiny_dates / "exported"
    return out, json.loads((out / "parity.json").read_text())


@pytest.fixture(scope="session")
def pretrained_export(tmp_path_factory):
    """The shipped pretrained en-es model, exported (every artifact, parity on 8 verses)."""
    from seq2seq_attn.export.main import export_run

    from seq2seq_attn.commands import PRETRAINED_DIR

    out = tmp_path_factory.mktemp("pretrained") / "bible-export"
    export_run(PRETRAINED_DIR, out, samples=8, echo=lambda *_: None)
    return out


@pytest.fixture(scope="session")
def load_test():
    """benchmarks/load_test.py as a module: the realistic request mix and the loopback server."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "load_test.py"
    spec = importlib.util.spec_from_file_location("load_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
