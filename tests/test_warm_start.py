"""Fine-tuning (`train --init-from RUN`): the new run starts from RUN's weights, tokenizers and
architecture, gets further than training from scratch for the same steps, and a config or
directory that does not fit is a one-line user error before any training."""

import copy
import json
import shutil

import keras
import numpy as np
import pytest
import yaml
from conftest import TINY_CONFIG

from seq2seq_attn.cli import _init_from, main
from seq2seq_attn.commands import PRETRAINED_DIR
from seq2seq_attn.config import resolve_config
from seq2seq_attn.errors import UserError
from seq2seq_attn.training import train


def _config(model=None, tokenizer=None, **training):
    raw = copy.deepcopy(TINY_CONFIG)
    raw["model"] = model or {}
    raw["tokenizer"].update(tokenizer or {})
    raw["training"].update(training)
    return resolve_config(raw)


def _weights(run_dir):
    return keras.saving.load_model(run_dir / "model.keras", compile=False).get_weights()


class FirstWeights(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.weights = self.model.get_weights()


def test_the_run_starts_from_the_start_runs_weights_tokenizers_and_architecture(tiny_run, tmp_path):
    out = tmp_path / "ft"
    first = FirstWeights()
    # Other tokenizer sizes and no model sizes in the config: both come from the start.
    config = _config(
        model={"dropout": 0.1},
        tokenizer={"target_vocab_size": 60},
        max_steps=3,
        select_by="bleu",
        dev_sample=12,
    )
    info = train("dates", config, out, verbose=0, callbacks=[first], init_from=tiny_run)

    start = _weights(tiny_run)
    assert len(first.weights) == len(start)
    assert all(np.array_equal(a, b) for a, b in zip(first.weights, start, strict=True))
    for name in ("source.model", "target.model"):
        assert (out / "tokenizer" / name).read_bytes() == (
            tiny_run / "tokenizer" / name
        ).read_bytes()
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["model"]["units"] == TINY_CONFIG["model"]["units"]
    assert saved["model"]["dropout"] == 0.1  # a key that changes no weight is the config's
    assert saved["tokenizer"]["target_vocab_size"] == TINY_CONFIG["tokenizer"]["target_vocab_size"]
    assert info["init_from"] == str(tiny_run)
    assert json.loads((out / "run.json").read_text())["init_from"] == str(tiny_run)
    assert info["steps"] == 3
    kept = json.loads((out / "start.json").read_text())  # the start's dev scores, epoch 0
    assert kept["metric"] == "val_bleu" and kept["epoch"] == 0
    assert {"val_loss", "val_bleu", "val_chrf"} <= set(kept)


def test_fine_tuning_gets_further_than_training_from_scratch_for_the_same_steps(tiny_run, tmp_path):
    config = _config(model=TINY_CONFIG["model"])
    scratch = train("dates", config, tmp_path / "scratch", verbose=0)
    tuned = train("dates", config, tmp_path / "tuned", verbose=0, init_from=tiny_run)
    assert tuned["steps"] == scratch["steps"]
    # The start had one epoch already: the same epoch again from there ends lower.
    assert tuned["best_val_loss"] < scratch["best_val_loss"] - 0.05
    assert tuned["best"]["epoch"] == 1  # it beat the start, so it replaced it


def test_fine_tuning_that_only_makes_the_model_worse_keeps_the_start(tiny_run, tmp_path, capsys):
    out, config = tmp_path / "ft", tmp_path / "ruinous.yaml"
    ruinous = copy.deepcopy(TINY_CONFIG)
    ruinous["training"].update(learning_rate=0.5, clipnorm=None)
    config.write_text(yaml.safe_dump(ruinous))
    argv = ["train", "--data", "dates", "--config", str(config), "--out", str(out)]
    assert main([*argv, "--init-from", str(tiny_run)]) == 0
    assert "kept the start (no epoch beat it) by loss" in capsys.readouterr().out
    history = (out / "history.csv").read_text().splitlines()
    start = json.loads((out / "start.json").read_text())
    assert float(history[1].split(",")[history[0].split(",").index("val_loss")]) > start["value"]
    best = json.loads((out / "run.json").read_text())["best"]
    assert best["epoch"] == 0 and best["start"] is True
    assert all(np.array_equal(a, b) for a, b in zip(_weights(out), _weights(tiny_run), strict=True))


def test_a_model_section_that_changes_a_weight_is_a_user_error_before_training(tiny_run, tmp_path):
    out = tmp_path / "ft"
    with pytest.raises(UserError, match="does not fit the weights"):
        train("dates", _config(model={"units": 32}), out, verbose=0, init_from=tiny_run)
    assert not (out / "model.keras").exists()


def test_an_out_directory_with_other_tokenizers_is_refused(tiny_run, tmp_path):
    out = tmp_path / "ft"
    shutil.copytree(PRETRAINED_DIR / "tokenizer", out / "tokenizer")
    with pytest.raises(UserError, match="other tokenizers"):
        train("dates", _config(), out, verbose=0, init_from=tiny_run)


def test_the_cli_names_a_start_that_is_no_run_in_one_line(tmp_path, capsys):
    argv = ["train", "--data", "dates", "--out", str(tmp_path / "ft")]
    assert main([*argv, "--init-from", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not exist" in err and len(err.splitlines()) == 1
    (tmp_path / "empty").mkdir()
    assert main([*argv, "--init-from", str(tmp_path / "empty")]) == 2
    assert "no model.keras" in capsys.readouterr().err


def test_pretrained_names_the_shipped_model_unless_a_directory_has_that_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _init_from("pretrained") == PRETRAINED_DIR
    (tmp_path / "pretrained").mkdir()
    assert _init_from("pretrained") == "pretrained"
    assert _init_from("runs/x") == "runs/x"
