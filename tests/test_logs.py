"""What the CLI writes when its output goes to a log, to a terminal, and with --quiet.

Each test runs `seq2seq-attn` in a fresh process, as a user or a CI job does: stdout and
stderr are pipes (no terminal) unless a test gives it a pseudo-terminal.
"""

import json
import os
import pty
import re
import subprocess
import sys

import pytest

from seq2seq_attn.export.main import StageClock

EPOCH_LINE = re.compile(
    r"epoch (\d+)/3: loss \d+\.\d{4}, dev loss \d+\.\d{4}, dev BLEU \d+\.\d\d, "
    r"dev chrF \d+\.\d\d, lr [0-9.e-]+, \d+\.\d min"
)
# Keras' progress bar: its redraws (carriage return, backspaces) and its colours.
PROGRESS_BAR_BYTES = re.compile(r"[\r\x08]|\x1b\[")


def _command(*args):
    return [sys.executable, "-m", "seq2seq_attn.cli", *map(str, args)]


def _environment():
    """The user's environment without our test defaults: what the CLI sets itself counts."""
    env = dict(os.environ)
    for name in ("TF_CPP_MIN_LOG_LEVEL", "SEQ2SEQ_ATTN_NATIVE_LOGS", "PYTHONWARNINGS"):
        env.pop(name, None)
    return env


def _run(*args):
    result = subprocess.run(
        _command(*args), capture_output=True, text=True, env=_environment(), timeout=600
    )
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def three_epochs(tiny_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("logs") / "run"
    result = _run("train", "--data", "dates", "--config", tiny_config, "--epochs", 3, "--out", out)
    return result, out


def test_a_training_log_has_one_line_per_epoch_and_no_warning(three_epochs):
    result, out = three_epochs
    lines = result.stdout.splitlines()
    assert result.stderr == ""  # no shuffle warning, no "ran out of data", no C++ notice
    assert not PROGRESS_BAR_BYTES.search(result.stdout)
    assert len(lines) <= 3 * 2 + 3 and len(result.stdout.encode()) < 1500, result.stdout
    epochs = [EPOCH_LINE.fullmatch(line) for line in lines[:3]]
    assert all(epochs), lines
    assert [int(m.group(1)) for m in epochs] == [1, 2, 3]
    assert lines[3].startswith("trained 3 epochs") and lines[4] == f"run directory: {out}"


def test_the_epoch_lines_carry_the_logged_scores(three_epochs):
    result, out = three_epochs
    history = (out / "history.csv").read_text().splitlines()
    header = history[0].split(",")
    for line, row in zip(result.stdout.splitlines()[:3], history[1:], strict=True):
        logged = dict(zip(header, row.split(","), strict=True))
        assert f"loss {float(logged['loss']):.4f}," in line
        assert f"dev loss {float(logged['val_loss']):.4f}," in line
        assert f"dev chrF {float(logged['val_chrf']):.2f}," in line
    steps = json.loads((out / "run.json").read_text())["steps"]
    assert steps % 3 == 0  # as many updates every epoch: no update after the data ran out


def test_quiet_prints_only_the_result(tiny_config, tmp_path):
    result = _run(
        "train", "--data", "dates", "--config", tiny_config, "--epochs", 1, "--out", tmp_path, "-q"
    )
    assert result.stderr == ""
    assert result.stdout.splitlines() == [result.stdout.strip()]
    assert result.stdout.startswith("trained 1 epochs")


def _on_a_terminal(args):
    """Runs `args` with stdout on a pseudo-terminal; returns (stdout bytes, stderr text)."""
    parent, child = pty.openpty()
    process = subprocess.Popen(
        args, stdout=child, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=_environment()
    )
    os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(parent, 65536)
        except OSError:  # EIO: every writer closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(parent)
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0, stderr
    return b"".join(chunks), stderr


def test_a_terminal_gets_keras_progress_bar_with_its_total(tiny_config, tmp_path):
    shown, stderr = _on_a_terminal(
        _command(
            "train", "--data", "dates", "--config", tiny_config, "--epochs", 1, "--out", tmp_path
        )
    )
    text = shown.decode()
    assert stderr == ""
    assert "━" in text  # Keras' bar (it writes "Epoch 1/N" only when N > 1)
    assert re.search(r"\b1/\d+\b", text)  # batch 1 of a known number of batches, with an ETA
    assert "/Unknown" not in text
    assert "epoch 1/1:" not in text  # not our log line as well


def test_evaluate_quiet_prints_the_scores_only(tiny_run):
    quiet = _run("evaluate", tiny_run, "--limit", 8, "--quiet").stdout.splitlines()
    normal = _run("evaluate", tiny_run, "--limit", 8).stdout.splitlines()
    assert normal[:-1] == quiet and normal[-1].startswith("written to ")


def test_stage_lines_name_each_stage_once_it_ends():
    lines, ticks = [], iter([0.0, 1.5, 2.0, 4.0, 4.0, 9.0])
    clock = StageClock(lines.append, clock=lambda: next(ticks))
    clock.start("export: saved_model")
    clock.end()
    clock.start("parity: the Keras reference")
    clock.start("parity: model.tflite/litert")  # ends the one before
    clock.end()
    clock.end()  # nothing left to end
    assert lines == [
        "export: saved_model 1.5 s",
        "parity: the Keras reference 2.0 s",
        "parity: model.tflite/litert 5.0 s",
    ]


@pytest.mark.export
def test_export_writes_one_line_per_stage(tiny_run, tmp_path):
    out = tmp_path / "export"
    lines = _run("export", tiny_run, "--out", out, "--samples", 4).stdout.splitlines()
    stages = [
        line for line in lines if re.fullmatch(r"(export|parity \(4 sentences\)): .+ s", line)
    ]
    names = [line.rsplit(" ", 2)[0] for line in stages]
    assert "export: saved_model" in names and "export: onnx:translate.onnx" in names
    assert "parity (4 sentences): the Keras reference" in names
    assert len(names) == len(set(names))  # each stage once
    assert lines[-1] == f"parity passed; artifacts in {out}"
