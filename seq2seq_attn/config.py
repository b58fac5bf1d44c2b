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
from seq2seq_attn.shortlist import DEFAULTS as SHORTLIST_DEFAULTS
from seq2seq_attn.shortlist import check_options as check_shortlist
from seq2seq_attn.tokenizer import DEFAULTS as TOKENIZER_DEFAULTS
from seq2seq_attn.tokenizer import check_options

CONFIG_DIR = Path(__file__).parent / "configs"

DEFAULTS = {
    "data": {"size": None},
    "tokenizer": dict(TOKENIZER_DEFAULTS),
    # Lexical shortlist built at the end of `train` (seq2seq_attn.shortlist); null: none.
    "shortlist": dict(SHORTLIST_DEFAULTS),
    "model": {},
    "training": {
        # The default recipe was chosen by time to quality (docs/decisions/0035): rsqrt
        # warm-up to a 5e-3 peak, label smoothing 0.1, checkpoints and early stopping by dev
        # BLEU (`select_by: auto`: BLEU with a dev set, the training loss without one).
        "batch_size": 64,
        "epochs": 10,
        "learning_rate": 5e-3,
        "clipnorm": 1.0,
        "label_smoothing": 0.1,
        "early_stopping_patience": 3,
        "max_source_length": 80,
        "max_target_length": 80,
        "jit_compile": False,
        # Pad batches to their length bucket's boundary: few shapes for XLA to compile.
        "pad_to_bucket": False,
        # bfloat16 where the CPU has AMX or AVX512-BF16 and no GPU is visible, else float32
        # (decisions 0037, 0047).
        "mixed_precision": "auto",
        "strategy": None,
        # Learning-rate schedule (seq2seq_attn.schedules) and weight averaging.
        "schedule": "rsqrt",
        "warmup_steps": 200,
        "patience": 2,
        "min_learning_rate": 1e-5,
        "ema": None,
        # Checkpoint selection and early stopping (seq2seq_attn.callbacks).
        "select_by": "auto",
        "dev_sample": None,
        # Batching and budgets.
        "batch_tokens": None,
        "accumulate": 1,
        "max_steps": None,
        "max_minutes": None,
        # With a budget (max_steps or max_minutes) the rate falls linearly to zero over its
        # last 40%: +1.9 and +4.1 dev BLEU after 3 minutes (docs/decisions/0039).
        "cooldown": 0.4,
        # An int N: each batch's softmax covers only its own target pieces and the N most
        # frequent (sampled softmax, Jean et al. 2015); null: the whole vocabulary; auto: 0
        # where a budget's cool-down trains the full softmax, else null (decision 0043).
        "candidate_softmax": "auto",
        # With candidate_softmax and a cool-down, the cool-down trains the full softmax.
        "full_softmax_cooldown": True,
    },
}
# `training.mixed_precision` -> Keras dtype policy.
PRECISION_POLICIES = {
    False: "float32",
    True: "mixed_float16",
    "mixed_float16": "mixed_float16",
    "mixed_bfloat16": "mixed_bfloat16",
    "auto": None,  # resolved from the hardware by `precision_policy`
}
# `training.strategy`, besides null for one device: see seq2seq_attn.distribute.
STRATEGIES = ("mirrored", "multi-worker")
# `training.schedule`: see seq2seq_attn.schedules.
SCHEDULES = ("constant", "plateau", "rsqrt")
# `training.select_by`: the dev metric that picks the checkpoint and stops training early.
SELECT_BY = ("auto", "bleu", "chrf", "loss")
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


def check_precision(mixed_precision):
    """The `PRECISION_POLICIES` entry of a valid `training.mixed_precision` (None for
    "auto"); raises `UserError` for any other value."""
    for value, policy in PRECISION_POLICIES.items():
        if mixed_precision == value and type(mixed_precision) is type(value):
            return policy
    raise UserError(
        f"training.mixed_precision must be false, true, auto, mixed_float16 or mixed_bfloat16, "
        f"got {mixed_precision!r}"
    )


def precision_policy(mixed_precision, gpus=None):
    """The Keras dtype policy for a `training.mixed_precision` value.

    Args:
        mixed_precision: false (float32), true (same as "mixed_float16"), "mixed_float16",
            "mixed_bfloat16", or "auto": "mixed_bfloat16" on a CPU with bfloat16 matrix
            instructions (AMX or AVX512-BF16) when no GPU is visible (decisions 0037 and
            0047: it reached a dev BLEU sooner there), else float32 (set a GPU's policy
            explicitly).
        gpus: for "auto", the number of visible GPUs (default: asks TensorFlow).
    """
    policy = check_precision(mixed_precision)
    if policy is not None:
        return policy
    if gpus is None:
        import tensorflow as tf

        gpus = len(tf.config.list_physical_devices("GPU"))
    return "mixed_bfloat16" if not gpus and cpu_has_bf16_units() else "float32"


BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo: AMX tiles, AVX-512 dot products


def cpu_has_bf16_units(cpuinfo="/proc/cpuinfo"):
    """Whether the CPU multiplies bfloat16 matrices in hardware: AMX tiles or AVX512-BF16
    (Linux: the `amx_bf16` or `avx512_bf16` flag of `cpuinfo`); False where the file
    cannot be read. Without them bfloat16 is emulated, slower than float32."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(
        line.startswith("flags") and set(BF16_FLAGS) & set(line.split())
        for line in text.splitlines()
    )


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _check_choice(key, value, choices):
    if value not in choices:
        raise UserError(f"training.{key} must be one of {', '.join(choices)}, got {value!r}")


def _check_positive(key, value, kind="integer", optional=False):
    """UserError unless `value` is a positive int (or number), or None when `optional`."""
    if optional and value is None:
        return
    valid = _is_int(value) if kind == "integer" else _is_number(value)
    if not valid or value <= 0:
        null = " or null" if optional else ""
        raise UserError(f"training.{key} must be a positive {kind}{null}, got {value!r}")


def _check_pad_to_bucket(training):
    """`pad_to_bucket` is a bool and, when true, both length limits are set (the last
    bucket is padded to the longer of them)."""
    if not isinstance(training["pad_to_bucket"], bool):
        raise UserError(
            f"training.pad_to_bucket must be true or false, got {training['pad_to_bucket']!r}"
        )
    if not training["pad_to_bucket"]:
        return
    for key in ("max_source_length", "max_target_length"):
        if not _is_int(training[key]) or training[key] <= 0:
            raise UserError(
                f"training.pad_to_bucket needs training.{key} to be a positive integer, "
                f"got {training[key]!r}"
            )


def _check_training_values(training):
    check_precision(training["mixed_precision"])
    if training["strategy"] is not None and training["strategy"] not in STRATEGIES:
        raise UserError(
            f"training.strategy must be null (one device), mirrored or multi-worker, "
            f"got {training['strategy']!r}"
        )
    _check_positive("learning_rate", training["learning_rate"], "number")
    _check_choice("schedule", training["schedule"], SCHEDULES)
    warmup = training["warmup_steps"]
    if not _is_int(warmup) or warmup < 0:
        raise UserError(f"training.warmup_steps must be an integer >= 0, got {warmup!r}")
    if training["schedule"] == "rsqrt" and warmup == 0:
        raise UserError("training.warmup_steps must be at least 1 with schedule rsqrt, got 0")
    _check_positive("patience", training["patience"])
    min_rate = training["min_learning_rate"]
    if not _is_number(min_rate) or min_rate < 0:
        raise UserError(f"training.min_learning_rate must be a number >= 0, got {min_rate!r}")
    ema = training["ema"]
    if ema is not None and not (_is_number(ema) and 0 < ema < 1):
        raise UserError(
            f"training.ema must be a decay between 0 and 1 (exclusive) or null, got {ema!r}"
        )
    _check_choice("select_by", training["select_by"], SELECT_BY)
    _check_positive("dev_sample", training["dev_sample"], optional=True)
    _check_positive("batch_tokens", training["batch_tokens"], optional=True)
    _check_pad_to_bucket(training)
    _check_positive("accumulate", training["accumulate"])
    _check_positive("max_steps", training["max_steps"], optional=True)
    _check_positive("max_minutes", training["max_minutes"], "number", optional=True)
    if training["strategy"] is not None and training["accumulate"] > 1:
        raise UserError(
            "training.accumulate above 1 is only supported with strategy null (one device)"
        )
    if training["strategy"] == "multi-worker" and training["max_minutes"] is not None:
        raise UserError(
            "training.max_minutes cannot stop multi-worker training in step on every worker "
            "(their clocks differ); use training.max_steps"
        )


def _check_candidate_softmax(training):
    """Null, auto or an int >= 0, on one device and without XLA (each batch's candidate
    count differs, a shape XLA would compile again for every batch); auto gives way to a
    strategy or XLA (`training.candidate_softmax`)."""
    if not isinstance(training["full_softmax_cooldown"], bool):
        raise UserError(
            "training.full_softmax_cooldown must be true or false, "
            f"got {training['full_softmax_cooldown']!r}"
        )
    frequent = training["candidate_softmax"]
    if frequent is None or frequent == "auto":
        return
    if not _is_int(frequent) or frequent < 0:
        raise UserError(
            "training.candidate_softmax must be null, auto or the number of most frequent "
            f"target pieces every batch's softmax includes (an integer >= 0), got {frequent!r}"
        )
    for key, off, shown in (("strategy", None, "null"), ("jit_compile", False, "false")):
        if training[key] != off:
            raise UserError(
                f"training.candidate_softmax works with {key}: {shown} only, "
                f"got {key}: {training[key]!r}"
            )


def _check_cooldown(training, explicit):
    """A share in [0, 1]; set by hand with `plateau` it is an error (the default's share is
    left unused there: `schedules.cools`)."""
    cooldown = training["cooldown"]
    if not _is_number(cooldown) or not 0 <= cooldown <= 1:
        raise UserError(
            f"training.cooldown must be a share of the budget between 0 and 1, got {cooldown!r}"
        )
    if explicit and cooldown and training["schedule"] == "plateau":
        raise UserError(
            "training.cooldown works with schedule constant or rsqrt, not plateau (which lowers "
            "the rate itself); set cooldown: 0 or another schedule"
        )


def resolve_config(raw):
    """Checks a config dict and fills in defaults; returns a new dict."""
    raw = raw or {}
    if not isinstance(raw, dict):
        raise UserError("config must be a mapping with sections data/tokenizer/model/training")
    _check_keys("", raw, list(DEFAULTS))
    config = copy.deepcopy(DEFAULTS)
    for section, values in raw.items():
        if section == "shortlist" and values is None:  # `shortlist: null` builds none
            config[section] = None
            continue
        values = values or {}
        if not isinstance(values, dict):
            raise UserError(f"config section {section!r} must be a mapping, got {values!r}")
        allowed = model_keys() if section == "model" else list(DEFAULTS[section])
        _check_keys(section, values, allowed)
        config[section].update(values)
    _check_training_values(config["training"])
    _check_cooldown(config["training"], explicit="cooldown" in (raw.get("training") or {}))
    _check_candidate_softmax(config["training"])
    check_options(config["tokenizer"])
    config["shortlist"] = check_shortlist(config["shortlist"])
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
