"""Training a model on a corpus into a run directory, resumable after an interruption.

A run directory holds:
    model.keras      the best model by `training.select_by` (dev BLEU, chrF or loss; with
                     `training.ema`, the averaged weights)
    tokenizer/       SentencePiece models (source.model, target.model or shared.model) and
                     tokenizer.json (see seq2seq_attn.tokenizer)
    config.yaml      the resolved configuration
    run.json         data spec (or the user's split files), seed, corpus sizes, epochs and
                     optimizer steps run, why training stopped, best dev scores and the
                     epoch, step and training minutes they were reached at, time
    history.csv      per-epoch metrics (dev loss, and dev BLEU/chrF of greedy translations)
                     with the step and training minutes at each epoch's end
    logs/            TensorBoard logs (logs/optimizer: the learning rate of every step)
    backup/          Keras BackupAndRestore state while training is unfinished
    start.json       a fine-tuning run's start, scored on the dev set (seq2seq_attn.warm_start)

Training stops after `training.epochs`, by early stopping on the selection metric, or at
`training.max_steps` / `training.max_minutes`; an epoch cut short by a budget still ends
with a dev evaluation and a checkpoint, so the best model is always saved.

Under `training.strategy: multi-worker` only the chief writes the run directory; every
other worker writes the same files into its own scratch directory
(`distribute.worker_scratch_dir`) and deletes it once training has finished.
"""

import csv
import json
import shutil
import sys
import time
from pathlib import Path

import keras
import tensorflow as tf
from tensorflow.autograph.experimental import do_not_convert

from seq2seq_attn import callbacks as callbacks_lib
from seq2seq_attn import config as config_lib
from seq2seq_attn import distribute, schedules, shortlist, warm_start
from seq2seq_attn.corpora import load_corpus, load_files
from seq2seq_attn.data import (
    candidate_targets,
    make_dataset,
    most_frequent_targets,
    tokenize_pairs,
)
from seq2seq_attn.errors import UserError
from seq2seq_attn.graph_tokenizer import GraphTokenizerPair
from seq2seq_attn.model import Seq2SeqAttention
from seq2seq_attn.optimizers import FusedAdam
from seq2seq_attn.tokenizer import TokenizerPair
from seq2seq_attn.translator import MODEL_FILE, RUN_INFO_FILE, TOKENIZER_DIR


def corpus_for(data, seed, config):
    """The corpus named by `data`, with the config's `data` options (`size`: dates only)."""
    options = {k: v for k, v in config["data"].items() if v is not None}
    if data != "dates":
        options.pop("size", None)
    return load_corpus(data, seed=seed, **options)


def run_corpus(run_dir, run_info, data=None):
    """The corpus (and split) a finished run was trained on, or `data` instead.

    Args:
        run_dir: the run directory (its `config.yaml` holds the data options).
        run_info: the run's `run.json` contents (data spec and seed, or the split files
            of `train --train FILE --dev FILE --test FILE`).
        data: optional corpus spec overriding the run's own.
    """
    if data is None and run_info.get("files"):
        return load_files(**run_info["files"])
    data = data or run_info.get("data")
    if data is None:
        raise UserError(
            f"{run_dir} does not say what data it was trained on (run.json); pass --data"
        )
    config = config_lib.load_config(Path(run_dir) / "config.yaml")
    return corpus_for(data, run_info.get("seed", 0), config)


def _prepare_run_dir(out_dir):
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write_test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise UserError(f"cannot write to run directory {out_dir}: {err.strerror}") from None
    return out_dir


def run_tokenizers(out_dir, corpus, tok_config):
    """The in-graph tokenizers of the SentencePiece models in `out_dir/tokenizer/` (a resumed
    run), else of models trained on the corpus's train split as `tok_config` (the config's
    `tokenizer` section) says and saved there."""
    tok_dir = Path(out_dir) / TOKENIZER_DIR
    if tok_dir.exists():
        return GraphTokenizerPair(TokenizerPair.load(tok_dir))
    pair = TokenizerPair.train(
        [s for s, _ in corpus.train], [t for _, t in corpus.train], **tok_config
    )
    pair.save(tok_dir)
    return GraphTokenizerPair(pair)


def build_model(config, tokenizers, strategy=None):
    """A compiled `Seq2SeqAttention` as the config describes.

    Sets the global Keras dtype policy from `training.mixed_precision`.

    Args:
        config: resolved config dict.
        tokenizers: a `TokenizerPair` (gives the vocabulary sizes).
        strategy: optional `tf.distribute.Strategy` to create the variables under.
    """
    train_cfg = config["training"]
    accumulate = train_cfg["accumulate"]
    keras.mixed_precision.set_global_policy(
        config_lib.precision_policy(train_cfg["mixed_precision"])
    )
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        try:
            model = Seq2SeqAttention(
                source_vocab_size=tokenizers.source.vocab_size,
                target_vocab_size=tokenizers.target.vocab_size,
                **config["model"],
            )
        except (ValueError, TypeError) as err:
            raise UserError(f"bad model config: {err}") from None
        model.build()  # BackupAndRestore needs the weights before fit
        # With several replicas, gradient clipping and the float16 overflow check must
        # see all replicas' gradients (see CrossReplicaAdam and
        # CrossReplicaLossScaleOptimizer); compile wraps a plain float16 optimizer itself.
        several = strategy.num_replicas_in_sync > 1
        adam = distribute.CrossReplicaAdam if several else FusedAdam
        optimizer = adam(
            schedules.optimizer_rate(train_cfg),
            clipnorm=train_cfg["clipnorm"],
            use_ema=train_cfg["ema"] is not None,
            # TensorFlow's warm-up, counted in updates, not batches (optimizers.WarmUpAverage).
            ema_momentum=train_cfg["ema"] or 0.99,
            gradient_accumulation_steps=accumulate if accumulate > 1 else None,
        )
        if several and keras.mixed_precision.global_policy().name == "mixed_float16":
            optimizer = distribute.CrossReplicaLossScaleOptimizer(optimizer)
        model.compile(
            optimizer,
            label_smoothing=train_cfg["label_smoothing"],
            jit_compile=train_cfg["jit_compile"],
        )
        model.optimizer.build(model.trainable_variables)  # its slots, under the scope too
    return model


def shard_by_data(dataset):
    """Multi-worker sharding by element: the in-memory, bucketed pipeline has no files
    to shard by, so every worker builds it whole and keeps its share of the batches."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def resolved_select_by(select_by, has_dev):
    """`training.select_by` with `auto` (the default) made concrete: `bleu` with a dev set,
    `loss` (the training loss) without one."""
    if select_by == "auto":
        return "bleu" if has_dev else "loss"
    return select_by


def selection(select_by, has_dev):
    """`(monitor, mode)`: the epoch-log key and direction that pick the checkpoint.

    Without a dev set only `select_by: loss` (or `auto`) is possible, on the training loss.
    """
    select_by = resolved_select_by(select_by, has_dev)
    if select_by != "loss" and not has_dev:
        raise UserError(
            f"training.select_by: {select_by} needs a dev set (train --dev FILE, or --data)"
        )
    if select_by == "loss":
        return ("val_loss" if has_dev else "loss"), "min"
    return f"val_{select_by}", "max"


def _resumed_best(out_dir, monitor, mode):
    """The value a checkpoint must beat: the best `monitor` value of the epochs before an
    interruption and a fine-tuning run's start (`warm_start.keep_start`); None if neither."""
    values = []
    if (Path(out_dir) / "backup").exists():
        values = [float(row[monitor]) for row in _this_run_rows(out_dir) if row.get(monitor)]
    kept = warm_start.read_kept_start(out_dir, monitor)
    if kept is not None:
        values.append(kept["value"])
    if not values:
        return None
    return min(values) if mode == "min" else max(values)


def _minutes_before(out_dir):
    """The training minutes of the epochs before an interruption (0 if not resuming)."""
    if not (Path(out_dir) / "backup").exists():
        return 0.0
    minutes = [float(row["minutes"]) for row in _this_run_rows(out_dir) if row.get("minutes")]
    return minutes[-1] if minutes else 0.0


def _callbacks(out_dir, train_cfg, dev_scores, budget, has_dev, switch=None):
    """The built-in callbacks in the order they must run at each epoch end."""
    monitor, mode = selection(train_cfg["select_by"], has_dev)
    found = [keras.callbacks.BackupAndRestore(str(out_dir / "backup"), delete_checkpoint=True)]
    if train_cfg["ema"] is not None:
        found.append(callbacks_lib.AveragedEvaluation())
    if dev_scores is not None:
        found.append(dev_scores)  # adds val_bleu/val_chrf before anything reads them
    found += [
        callbacks_lib.RunClock(_minutes_before(out_dir)),  # before the loggers
        budget,
        *_cooldown(train_cfg, budget, switch),
        callbacks_lib.AveragedCheckpoint(
            str(out_dir / MODEL_FILE),
            monitor=monitor,
            mode=mode,
            save_best_only=True,
            initial_value_threshold=_resumed_best(out_dir, monitor, mode),
        ),
        keras.callbacks.EarlyStopping(
            monitor=monitor, mode=mode, patience=train_cfg["early_stopping_patience"]
        ),
    ]
    if train_cfg["schedule"] == "plateau":
        found.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=monitor,
                mode=mode,
                factor=0.5,
                patience=train_cfg["patience"],
                min_lr=train_cfg["min_learning_rate"],
            )
        )
    return found + [
        keras.callbacks.CSVLogger(str(out_dir / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(out_dir / "logs"), write_graph=False),
        callbacks_lib.LearningRateLogger(out_dir / "logs" / "optimizer"),
    ]


def _cooldown(train_cfg, budget, switch=None):
    """`[callbacks.Cooldown]` when `training.cooldown` applies (`schedules.cools`), else [];
    with the candidate softmax's `switch`, also the callback that sets it in the cool-down."""
    if not schedules.cools(train_cfg):
        return []
    rate = schedules.learning_rate(train_cfg)
    cooldown = callbacks_lib.Cooldown(budget, train_cfg["cooldown"], rate)
    if switch is None:
        return [cooldown]
    return [cooldown, callbacks_lib.FullSoftmaxCooldown(cooldown, switch)]


def candidate_softmax(train_cfg):
    """`training.candidate_softmax` as this run uses it: an int, or None (the full softmax).

    `auto` is 0 (each batch's own target pieces) where a budget's cool-down will train the
    full softmax (`full_softmax_cooldown`, `schedules.cools`) on one device without XLA,
    else None: a run without a budget, or one on several devices, keeps the full softmax.
    """
    frequent = train_cfg["candidate_softmax"]
    if frequent != "auto":
        return frequent
    single = train_cfg["strategy"] is None and not train_cfg["jit_compile"]
    return 0 if single and _cools_to_full_softmax(train_cfg) else None


def _cools_to_full_softmax(train_cfg):
    """Whether the run has a cool-down and `full_softmax_cooldown` trains it over all ids."""
    return train_cfg["full_softmax_cooldown"] and schedules.cools(train_cfg)


def full_softmax_switch(train_cfg):
    """The bool variable that turns a `candidate_softmax` pipeline to the full softmax in
    the cool-down (`training.full_softmax_cooldown`), or None where there is none."""
    if candidate_softmax(train_cfg) is None or not _cools_to_full_softmax(train_cfg):
        return None
    return tf.Variable(False, trainable=False, name="full_softmax")


# `train(verbose=1)` without a terminal: at most one batch line per this many seconds.
BATCH_LINE_SECONDS = 5.0


def progress(verbose, stream=None):
    """`(keras_verbose, callbacks)`: `fit`'s verbosity and our progress callbacks.

    Args:
        verbose: 0 prints nothing; "auto" gives Keras' progress bar (one per epoch, with
            its ETA) when `stream` is a terminal, else one `callbacks.ProgressLog` line per
            epoch and nothing per batch; 1 is "auto" plus, without a terminal, a batch
            line every `BATCH_LINE_SECONDS`; 2 is one line per epoch even on a terminal.
        stream: where progress goes (default `sys.stdout`), asked whether it is a terminal.
    """
    if verbose not in ("auto", 0, 1, 2):
        raise ValueError(f"`verbose` must be 'auto', 0, 1 or 2, received: verbose={verbose!r}")
    if verbose == 0:
        return 0, []
    stream = stream or sys.stdout
    terminal = getattr(stream, "isatty", lambda: False)()
    if terminal and verbose != 2:
        return 1, []
    interval = BATCH_LINE_SECONDS if verbose == 1 else None
    return 0, [callbacks_lib.ProgressLog(batch_interval=interval)]


def _this_run_rows(out_dir):
    """The rows of history.csv written by the latest run trained into `out_dir`.

    A finished run trained again into the same directory appends a new run, starting
    again at epoch 0. Values Keras' CSVLogger wrote as "NA" (the `val_` columns it adds
    for a run without a dev set) are left out of the rows.
    """
    path = Path(out_dir) / "history.csv"
    rows = list(csv.DictReader(path.open())) if path.exists() else []
    rows = [{key: value for key, value in row.items() if value != "NA"} for row in rows]
    starts = [i for i, row in enumerate(rows) if row.get("epoch") == "0"]
    return rows[starts[-1] :] if starts else rows


def _whole_history(out_dir, history, monitor, mode):
    """Epochs run and the best scores of the whole run, a resumed part included.

    `history` has only this call's epochs (`history.epoch` continues the numbering after a
    resume); history.csv has them all.

    Returns:
        `(epochs_run, best_val_loss, best)`: `best` holds the epoch (from 1) that the
        checkpoint kept, the `metric` (`monitor`) and its `value`, the optimizer `step` and
        the training `minutes` (`callbacks.RunClock`) at that epoch's end, and its scores.
    """
    epochs_run = history.epoch[-1] + 1 if history.epoch else 0
    rows = _this_run_rows(out_dir)
    losses = [float(row["val_loss"]) for row in rows if row.get("val_loss")]
    best_val_loss = min(losses or history.history.get("val_loss", [None]))
    scored = [row for row in rows if row.get(monitor)]
    kept = warm_start.read_kept_start(out_dir, monitor)  # a fine-tuning run's start, epoch 0
    if not scored:
        return epochs_run, best_val_loss, kept or {}
    pick = (min if mode == "min" else max)(scored, key=lambda row: float(row[monitor]))
    value = float(pick[monitor])
    if kept is not None and not (value < kept["value"] if mode == "min" else value > kept["value"]):
        return epochs_run, best_val_loss, kept  # no epoch beat it, so the checkpoint is the start
    best = {"metric": monitor, "value": value, "epoch": int(pick["epoch"]) + 1}
    if pick.get("step"):
        best["step"] = int(float(pick["step"]))
    if pick.get("minutes"):
        best["minutes"] = round(float(pick["minutes"]), 2)
    for key in ("loss", "val_loss", "val_bleu", "val_chrf"):
        if pick.get(key):
            best[key] = float(pick[key])
    return epochs_run, best_val_loss, best


def _load_data(data, files, seed, config):
    """The corpus of `train --data SPEC`, or of `train --train FILE [--dev ..] [--test ..]`."""
    if (data is None) == (files is None):
        raise UserError("give either a corpus (--data) or split files (--train), not both")
    if data is not None:
        return corpus_for(data, seed, config), None
    if not files.get("train"):
        raise UserError("split files need a training file (--train FILE)")
    files = {k: str(Path(v).resolve()) for k, v in files.items() if v is not None}
    return load_files(**files), files


def with_batch_count(dataset, counted=None):
    """`dataset` with its number of batches (its cardinality) stated, counted in one pass.

    Length bucketing leaves a dataset's cardinality unknown, so Keras read the first epoch
    (and the first dev evaluation) until the data ran out, then warned "Your input ran out
    of data; interrupting training", and counted one optimizer update too many per epoch
    (the update of the step that found no batch). Knowing the count, it stops after the
    last batch, and its progress bar shows a total and an ETA from the first epoch on.

    Args:
        dataset: a finite `tf.data.Dataset` of batches.
        counted: the same pipeline without shuffling, to count instead (default
            `dataset`): the count is the same every epoch, since shuffling changes which
            pairs share a batch, not how many pairs each length bucket holds, and counting
            `dataset` itself would spend one of its reshuffles.
    """
    counted = dataset if counted is None else counted
    count = counted.reduce(tf.constant(0, tf.int64), do_not_convert(lambda n, _: n + 1))
    return dataset.apply(tf.data.experimental.assert_cardinality(count))


def _datasets(corpus, tokenizers, train_cfg, seed, count=True, switch=None):
    """(train, dev or None) tf.data pipelines, sharded by data for multi-worker.

    With `count`, each states its number of batches (`with_batch_count`); not across
    workers, where each worker reads only its share of the batches. `switch`: the
    candidate softmax's turn to the full one (`full_softmax_switch`).
    """
    limits = dict(
        max_source_length=train_cfg["max_source_length"],
        max_target_length=train_cfg["max_target_length"],
    )
    batching = dict(
        batch_size=train_cfg["batch_size"],
        batch_tokens=train_cfg["batch_tokens"],
        max_length=max(limits["max_source_length"] or 0, limits["max_target_length"] or 0) or None,
    )
    pairs = tokenize_pairs(corpus.train, tokenizers, **limits)
    padding = dict(pad_to_bucket=train_cfg["pad_to_bucket"])
    train_ds = make_dataset(pairs, shuffle=True, seed=seed, **padding, **batching)
    if count:
        train_ds = with_batch_count(train_ds, make_dataset(pairs, **padding, **batching))
    frequent = candidate_softmax(train_cfg)
    if frequent is not None:  # each batch's own softmax vocabulary
        vocab = tokenizers.target.vocab_size
        frequent = most_frequent_targets(pairs, vocab, frequent)
        remap = candidate_targets(frequent, full=switch, vocab_size=vocab)
        train_ds = train_ds.map(do_not_convert(remap), num_parallel_calls=tf.data.AUTOTUNE)
    dev_ds = None
    if corpus.dev:
        dev_ds = make_dataset(tokenize_pairs(corpus.dev, tokenizers), **batching)
        dev_ds = shard_by_data(with_batch_count(dev_ds) if count else dev_ds)
    return shard_by_data(train_ds), dev_ds


def _dev_scores(corpus, out_dir, train_cfg):
    """The callback translating the dev set (`training.dev_sample` first pairs), or None."""
    if not corpus.dev:
        return None
    return callbacks_lib.DevScores(
        corpus.dev[: train_cfg["dev_sample"]],
        TokenizerPair.load(out_dir / TOKENIZER_DIR),
        batch_size=train_cfg["batch_size"],
        max_length=train_cfg["max_target_length"],
    )


def save_float32(path):
    """Rewrites a model file saved under mixed precision as a float32 model, same weights.

    The variables of a mixed-precision model already are float32; only the saved dtype
    policy differs, and a model loaded with it would compute in a mix of 16 and 32 bits.
    Afterwards translation, evaluation and every export compute in float32 whatever the
    training precision was. A float32 file is left as it is.

    Args:
        path: a `model.keras` file of a `Seq2SeqAttention`.

    Returns:
        True if the file was rewritten.
    """
    trained = keras.saving.load_model(path, compile=False)
    if trained.dtype_policy.name == "float32":
        return False
    keras.mixed_precision.set_global_policy("float32")
    model = Seq2SeqAttention.from_config({**trained.get_config(), "dtype": "float32"})
    model.build()
    model.set_weights(trained.get_weights())
    model.save(path)
    return True


def train(data, config, out_dir, seed=0, verbose="auto", callbacks=(), files=None, init_from=None):
    """Trains on corpus `data` ("dates", "bible-en-es" or a file), or on split `files`.

    `training.strategy` picks the devices (`seq2seq_attn.distribute`); `training.batch_size`
    is the global batch, split evenly across the replicas.

    Args:
        data: corpus spec for `corpora.load_corpus` (a file is split deterministically),
            or None with `files`.
        config: resolved config dict (`config.load_config`).
        out_dir: run directory; an unfinished run there is resumed. A multi-worker
            non-chief worker leaves it alone.
        seed: int; fixes data splits, shuffling and initialisation.
        verbose: "auto" (Keras' progress bar on a terminal, else one line per epoch),
            0 (nothing), 1 (also batch lines without a terminal) or 2 (one line per
            epoch even on a terminal); see `progress`.
        callbacks: extra Keras callbacks, run after the built-in ones.
        files: dict of the user's own splits, used as given: `train` (required), `dev`
            and `test` (optional) file paths; run.json records them.
        init_from: optional trained run directory to fine-tune: its tokenizers,
            architecture and weights start this run (`seq2seq_attn.warm_start`); run.json
            records it.

    Returns:
        The run info dict also written to `out_dir/run.json`.
    """
    train_cfg = config["training"]
    # First: the multi-worker strategy must start before TensorFlow runs any op.
    strategy = distribute.make_strategy(train_cfg["strategy"])
    task = distribute.current_task(strategy)
    if not task.chief:
        out_dir = distribute.worker_scratch_dir(out_dir, task)
    start = None if init_from is None else warm_start.read_start(init_from)
    corpus, files = _load_data(data, files, seed, config)
    monitor, mode = selection(train_cfg["select_by"], bool(corpus.dev))
    out_dir = _prepare_run_dir(out_dir)
    if start is not None:
        config = warm_start.prepare(start, out_dir, config)
    keras.utils.set_random_seed(seed)
    tokenizers = run_tokenizers(out_dir, corpus, config["tokenizer"])
    config_lib.save_config(config, out_dir / "config.yaml")
    switch = full_softmax_switch(train_cfg)
    train_ds, dev_ds = _datasets(corpus, tokenizers, train_cfg, seed, task.workers == 1, switch)
    model = build_model(config, tokenizers, strategy)
    distribute.prepare_fit(model, strategy)
    budget = callbacks_lib.Budget(train_cfg["max_steps"], train_cfg["max_minutes"])
    dev_scores = _dev_scores(corpus, out_dir, train_cfg)
    fresh = not (out_dir / "backup").exists()
    if fresh:
        (out_dir / warm_start.START_FILE).unlink(missing_ok=True)  # an earlier run's
    if start is not None:
        warm_start.load_weights(model, start)  # a resumed run's backup overrides them in fit
        if fresh:  # the start is the first checkpoint, to be beaten
            warm_start.keep_start(model, out_dir, monitor, dev_scores, dev_ds)
    keras_verbose, shown = progress(verbose)
    started = time.time()
    with strategy.scope():
        history = model.fit(
            train_ds,
            validation_data=dev_ds,
            epochs=train_cfg["epochs"],
            callbacks=_callbacks(out_dir, train_cfg, dev_scores, budget, bool(corpus.dev), switch)
            + shown
            + list(callbacks),
            verbose=keras_verbose,
            # `make_dataset` shuffles the pairs itself (each epoch anew); Keras' default
            # `shuffle=True` only warns that it is ignored for a tf.data.Dataset.
            shuffle=False,
        )
    epochs_run, best_val_loss, best = _whole_history(out_dir, history, monitor, mode)
    info = {
        "data": None if data is None else str(data),
        **({"files": files} if files else {}),
        **({"init_from": str(start.run_dir)} if start else {}),
        "seed": seed,
        "sizes": {"train": len(corpus.train), "dev": len(corpus.dev), "test": len(corpus.test)},
        "epochs_run": epochs_run,
        "steps": callbacks_lib.optimizer_steps(model.optimizer),
        "stopped_by": budget.stopped_by or ("early_stopping" if model.stop_training else "epochs"),
        "select_by": resolved_select_by(train_cfg["select_by"], bool(corpus.dev)),
        "candidate_softmax": candidate_softmax(train_cfg),  # `auto` resolved
        "best_val_loss": best_val_loss,
        "best": best,
        "train_seconds": round(time.time() - started, 1),
        "parameters": int(model.count_params()),
        "strategy": train_cfg["strategy"] or "default",
        "num_replicas": strategy.num_replicas_in_sync,
        "workers": task.workers,
        "dtype_policy": model.dtype_policy.name,  # `auto` as build_model resolved it
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    if task.chief:
        if info["dtype_policy"] != "float32" and (out_dir / MODEL_FILE).exists():
            save_float32(out_dir / MODEL_FILE)  # inference and export run in float32
        if config.get("shortlist"):  # candidate target pieces for decoding (shortlist.py)
            info["shortlist"] = shortlist.build_for_run(
                out_dir, corpus.train, **config["shortlist"]
            )
        (out_dir / RUN_INFO_FILE).write_text(json.dumps(info, indent=2))
    else:
        shutil.rmtree(out_dir)
    return info
