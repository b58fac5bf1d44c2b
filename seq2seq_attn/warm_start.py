"""Starting a training run from a trained run's weights: fine-tuning.

`seq2seq-attn train --init-from RUN` (OpenNMT's `-train_from` with `-reset_optim all`,
JoeyNMT's `load_model`, Marian's `--pretrained-model`) trains a new run whose tokenizers
and architecture are those of `RUN` and whose weights start as `RUN`'s kept model. The
optimizer, its schedule and the weight average start afresh from the new config, so a
fine-tuning recipe (a lower rate, `schedule: constant` or `plateau`, `ema`) is the config's
`training` section. The new run's config records the architecture it trained; its
`tokenizer` section is `RUN`'s, since the pieces are.

The `model` keys a config sets itself win over `RUN`'s where they change no weight
(`dropout`); any other difference that changes a weight's shape is a user error naming
the first weight that does not fit.

As JoeyNMT keeps a loaded checkpoint's best score (`reset_best_ckpt: false`), the start is
the new run's first checkpoint: its dev score is the one an epoch must beat to replace it
(`keep_start`), so fine-tuning that only makes the model worse leaves `RUN`'s weights.
"""

import dataclasses
import json
from pathlib import Path

import keras

from seq2seq_attn import config as config_lib
from seq2seq_attn._compat import moving_averages
from seq2seq_attn.callbacks import ema_optimizer
from seq2seq_attn.errors import UserError
from seq2seq_attn.tokenizer import TokenizerPair
from seq2seq_attn.translator import MODEL_FILE, TOKENIZER_DIR, check_run_dir

CONFIG_FILE = "config.yaml"
START_FILE = "start.json"  # the start's dev scores, in a fine-tuning run's directory


@dataclasses.dataclass(frozen=True)
class Start:
    """A trained run to start from.

    Attributes:
        run_dir: its directory.
        architecture: the `model` config keys of its model (every constructor argument a
            config may set, as the saved model has them).
        tokenizer_options: its config's `tokenizer` section.
        weights: its kept model's weights, in `Seq2SeqAttention.get_weights()` order.
        shapes: their shapes, with the weights' paths.
    """

    run_dir: Path
    architecture: dict
    tokenizer_options: dict
    weights: list
    shapes: list


def read_start(run_dir):
    """Reads the run `--init-from` names.

    Raises:
        UserError: not a finished training run (no `model.keras` or tokenizer), or a
            damaged one.
    """
    run_dir = check_run_dir(run_dir)
    try:
        trained = keras.saving.load_model(run_dir / MODEL_FILE, compile=False)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot load {run_dir / MODEL_FILE}: {err}") from None
    saved = trained.get_config()
    architecture = {key: saved[key] for key in config_lib.model_keys() if key in saved}
    tokenizer_options = {}
    if (run_dir / CONFIG_FILE).is_file():
        tokenizer_options = config_lib.load_config(run_dir / CONFIG_FILE)["tokenizer"]
    return Start(
        run_dir=run_dir,
        architecture=architecture,
        tokenizer_options=tokenizer_options,
        weights=trained.get_weights(),
        shapes=[(v.path, tuple(v.shape)) for v in trained.weights],
    )


def prepare(start, out_dir, config):
    """Copies `start`'s tokenizers into `out_dir` and returns `config` with its architecture.

    A run directory that already has tokenizers (a fine-tuning run resumed) must have
    `start`'s. Returns a new config dict: `model` is `start`'s architecture updated with the
    keys `config` sets itself, `tokenizer` is `start`'s.
    """
    source = TokenizerPair.load(start.run_dir / TOKENIZER_DIR)
    tok_dir = Path(out_dir) / TOKENIZER_DIR
    if tok_dir.exists():
        if _digests(TokenizerPair.load(tok_dir)) != _digests(source):
            raise UserError(
                f"{out_dir} already holds a run with other tokenizers than {start.run_dir}: "
                "give --init-from a new --out directory"
            )
    else:
        source.save(tok_dir)
    return {
        **config,
        "tokenizer": {**config["tokenizer"], **start.tokenizer_options},
        "model": {**start.architecture, **config["model"]},
    }


def _digests(pair):
    return {side: getattr(pair, side).sha256 for side in ("source", "target")}


def load_weights(model, start):
    """Sets the built `model`'s weights to `start`'s.

    Raises:
        UserError: the config's `model` section gives a weight another shape than
            `start`'s (e.g. other `units`); names the first such weight.
    """
    ours = [(v.path, tuple(v.shape)) for v in model.weights]
    if len(ours) != len(start.shapes):
        raise UserError(
            f"the model config does not fit the weights of {start.run_dir}: {len(ours)} "
            f"weights here, {len(start.shapes)} there (leave the model section to --init-from)"
        )
    for (path, shape), (_, theirs) in zip(ours, start.shapes, strict=True):
        if shape != theirs:
            raise UserError(
                f"the model config does not fit the weights of {start.run_dir}: {path} has "
                f"shape {shape} here and {theirs} there (leave the model section to "
                "--init-from, or change only dropout)"
            )
    model.set_weights(start.weights)
    optimizer = ema_optimizer(model)
    if optimizer is not None:
        # The averages were made from the random initial weights: start them at the start's.
        for average, variable in zip(
            moving_averages(optimizer), model.trainable_variables, strict=True
        ):
            if average is not None:
                average.assign(variable)


def start_scores(model, monitor, dev_scores, dev_ds):
    """The start's dev scores: `{monitor: value, ...}`, or None without a dev set.

    Args:
        model: the compiled model holding the start's weights.
        monitor: the selection metric (`val_bleu`, `val_chrf`, `val_loss` or `loss`).
        dev_scores: the run's `callbacks.DevScores`, or None.
        dev_ds: the dev dataset, or None.
    """
    if dev_ds is None or monitor == "loss":
        return None
    scores = {"val_loss": float(model.evaluate(dev_ds, verbose=0, return_dict=True)["loss"])}
    if dev_scores is not None:
        dev_scores.set_model(model)
        scores.update(dev_scores.scores())
    return scores


def keep_start(model, out_dir, monitor, dev_scores, dev_ds):
    """Saves the start as `out_dir`'s first checkpoint with its dev scores (`START_FILE`).

    Returns:
        The start's `monitor` value, the one a checkpoint must beat; None (and nothing
        saved) without a dev set.
    """
    scores = start_scores(model, monitor, dev_scores, dev_ds)
    if scores is None:
        return None
    model.save(Path(out_dir) / MODEL_FILE)
    record = {"metric": monitor, "value": scores[monitor], "epoch": 0, "start": True, **scores}
    (Path(out_dir) / START_FILE).write_text(json.dumps(record, indent=2))
    return scores[monitor]


def read_kept_start(out_dir, monitor):
    """The record `keep_start` wrote in `out_dir` for `monitor`, or None."""
    path = Path(out_dir) / START_FILE
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    return record if record.get("metric") == monitor else None
