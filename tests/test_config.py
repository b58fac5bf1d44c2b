"""Config resolution: the training options' defaults and a one-line UserError per bad value."""

import pytest
import yaml

from seq2seq_attn.config import DEFAULTS, load_config, resolve_config
from seq2seq_attn.errors import UserError


def _training(**values):
    return resolve_config({"training": values})["training"]


def test_the_default_recipe_is_decision_0035s():
    training = _training()
    assert training["schedule"] == "rsqrt" and training["warmup_steps"] == 200
    assert training["learning_rate"] == 5e-3 and training["label_smoothing"] == 0.1
    assert training["select_by"] == "auto" and training["ema"] is None
    assert training["accumulate"] == 1 and training["batch_size"] == 64
    for key in ("batch_tokens", "max_steps", "max_minutes", "dev_sample"):
        assert training[key] is None, key


def test_the_default_precision_is_auto():
    # bfloat16 on a CPU with AMX and no GPU, else float32 (decision 0037; the rule's own
    # tests are in test_distribute.py).
    assert _training()["mixed_precision"] == "auto"


def test_good_values_pass():
    training = _training(
        schedule="rsqrt",
        warmup_steps=10,
        ema=0.999,
        select_by="chrf",
        dev_sample=50,
        batch_tokens=2000,
        accumulate=4,
        max_steps=100,
        max_minutes=0.5,
        patience=1,
        min_learning_rate=0,
    )
    assert training["ema"] == 0.999 and training["max_minutes"] == 0.5


@pytest.mark.parametrize(
    "values, fragments",
    [
        ({"warmup_steps": -1}, ["training.warmup_steps", "-1"]),
        ({"warmup_steps": 1.5}, ["training.warmup_steps"]),
        ({"schedule": "rsqrt", "warmup_steps": 0}, ["warmup_steps", "rsqrt"]),
        ({"schedule": "cosine"}, ["training.schedule", "constant, plateau, rsqrt", "cosine"]),
        ({"ema": 0}, ["training.ema", "between 0 and 1"]),
        ({"ema": 1}, ["training.ema"]),
        ({"ema": 1.5}, ["training.ema"]),
        ({"ema": -0.1}, ["training.ema"]),
        ({"ema": True}, ["training.ema"]),
        ({"ema": "0.9"}, ["training.ema"]),
        ({"select_by": "accuracy"}, ["training.select_by", "auto, bleu, chrf, loss"]),
        ({"batch_tokens": 0}, ["training.batch_tokens", "positive integer"]),
        ({"accumulate": 0}, ["training.accumulate"]),
        ({"accumulate": None}, ["training.accumulate"]),
        ({"max_steps": -3}, ["training.max_steps"]),
        ({"max_minutes": 0}, ["training.max_minutes", "positive number"]),
        ({"dev_sample": 2.5}, ["training.dev_sample"]),
        ({"patience": 0}, ["training.patience"]),
        ({"min_learning_rate": -1e-4}, ["training.min_learning_rate"]),
        ({"learning_rate": 0}, ["training.learning_rate"]),
        ({"accumulate": 2, "strategy": "mirrored"}, ["training.accumulate", "one device"]),
        ({"max_minutes": 5, "strategy": "multi-worker"}, ["max_minutes", "max_steps"]),
        ({"cooldown": 1.5}, ["training.cooldown", "between 0 and 1"]),
        ({"cooldown": "0.2"}, ["training.cooldown"]),
        ({"cooldown": 0.2, "schedule": "plateau"}, ["training.cooldown", "plateau"]),
    ],
)
def test_bad_training_values_are_one_line_user_errors(values, fragments):
    with pytest.raises(UserError) as info:
        _training(**values)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_a_misspelt_training_key_gets_a_suggestion():
    with pytest.raises(UserError, match="did you mean 'warmup_steps'"):
        _training(warmup_step=100)


def test_every_training_key_is_documented_in_the_bundled_configs():
    for name in ("dates", "bible"):
        text = (load_config.__globals__["CONFIG_DIR"] / f"{name}.yaml").read_text()
        for key in DEFAULTS["training"]:
            assert f"  {key}:" in text, (name, key)
        load_config(name)  # and they resolve


def test_the_finetune_config_sets_only_the_recipe():
    # The tokenizers and the model section of a fine-tuning run come from --init-from.
    path = load_config.__globals__["CONFIG_DIR"] / "finetune.yaml"
    assert list(yaml.safe_load(path.read_text())) == ["training"]
    assert load_config("finetune")["training"]["schedule"] == "plateau"
