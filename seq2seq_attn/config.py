"""Experiment configuration: one YAML file with `data`, `tokenizer`, `model`, `training` sections.

The `model` keys are the keyword arguments of `Seq2SeqAttention` (JoeyNMT style); a misspelt
key is a user error that names the key and the closest valid one.
"""

import copy
import difflib
import inspect
from pathlib import Path

import yaml

from seq2seq_attn.errors import UserError
from seq2seq_attn.tokenizer import DEFAULTS as TOKENIZER_DEFAULTS
from seq2seq_attn.tokenizer import check_options

CONFIG_DIR = Path(__file__).parent / "configs"

DEFAULTS = {
    "data": {"size": None},
    "tokenizer": dict(TOKENIZER_DEFAULTS),
    "model": {},
    "training": {
        "batch_size": 64,
        "epochs": 10,
        "learning_rate": 1e-3,
        "clipnorm": 1.0,
        "label_smoothing": 0.0,
        "early_stopping_patience": 3,
        "max_source_length": 80,
        "max_target_length": 80,
        "jit_compile": False,
        "mixed_precision": False,
        "strategy": None,
    },
}
# `training.mixed_precision` -> Keras dtype policy.
PRECISION_POLICIES = {
    False: "float32",
    True: "mixed_float16",
    "mixed_float16": "mixed_float16",
    "mixed_bfloat16": "mixed_bfloat16",
}
# `training.strategy`, besides null for one device: see seq2seq_attn.distribute.
STRATEGIES = ("mirrored", "multi-worker")
# Set from the data, never from the config file.
DERIVED_MODEL_KEYS = ("source_vocab_size", "target_vocab_size", "start_id", "end_id")


def model_keys():
    """The constructor arguments of `Seq2SeqAttention` a config may set."""
    from seq2seq_attn.model import Seq2SeqAttention

    params = inspect.signature(Seq2SeqAttention.__init__).parameters
    return [p for p in params if p not in ("self", "kwargs", *DERIVED_MODEL_KEYS)]


def _check_keys(section, given, allowed):
    for key in given:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UserError(
                f"unknown config key {section}.{key}{hint}; valid keys: {', '.join(allowed)}"
            )


def precision_policy(mixed_precision):
    """The Keras dtype policy for a `training.mixed_precision` value.

    Args:
        mixed_precision: false (float32), true (same as "mixed_float16"),
            "mixed_float16" or "mixed_bfloat16".
    """
    for value, policy in PRECISION_POLICIES.items():
        if mixed_precision == value and type(mixed_precision) is type(value):
            return policy
    raise UserError(
        f"training.mixed_precision must be false, true, mixed_float16 or mixed_bfloat16, "
        f"got {mixed_precision!r}"
    )


def _check_training_values(training):
    precision_policy(training["mixed_precision"])
    if training["strategy"] is not None and training["strategy"] not in STRATEGIES:
        raise UserError(
            f"training.strategy must be null (one device), mirrored or multi-worker, "
            f"got {training['strategy']!r}"
        )


def resolve_config(raw):
    """Checks a config dict and fills in defaults; returns a new dict."""
    raw = raw or {}
    if not isinstance(raw, dict):
        raise UserError("config must be a mapping with sections data/tokenizer/model/training")
    _check_keys("", raw, list(DEFAULTS))
    config = copy.deepcopy(DEFAULTS)
    for section, values in raw.items():
        values = values or {}
        if not isinstance(values, dict):
            raise UserError(f"config section {section!r} must be a mapping, got {values!r}")
        allowed = model_keys() if section == "model" else list(DEFAULTS[section])
        _check_keys(section, values, allowed)
        config[section].update(values)
    _check_training_values(config["training"])
    check_options(config["tokenizer"])
    return config


def load_config(path):
    """Reads a YAML config file (a path, or a bundled name such as "dates" or "bible")."""
    path = Path(path)
    if not path.exists() and (CONFIG_DIR / f"{path}.yaml").exists():
        path = CONFIG_DIR / f"{path}.yaml"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read config file {path}: {err}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise UserError(f"config file {path} is not valid YAML: {err}".replace("\n", " ")) from None
    return resolve_config(raw)


def save_config(config, path):
    """Writes the resolved config as YAML."""
    Path(path).write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
