"""Training a model on a corpus into a run directory, resumable after an interruption.

A run directory holds:
    model.keras      the best model by dev loss (Keras ModelCheckpoint)
    tokenizer/       SentencePiece models (source.model, target.model or shared.model) and
                     tokenizer.json (see seq2seq_attn.tokenizer)
    config.yaml      the resolved configuration
    run.json         data spec, seed, corpus sizes, epochs run, best dev loss, time
    history.csv      per-epoch metrics
    logs/            TensorBoard logs
    backup/          Keras BackupAndRestore state while training is unfinished

Under `training.strategy: multi-worker` only the chief writes the run directory; every
other worker writes the same files into its own scratch directory
(`distribute.worker_scratch_dir`) and deletes it once training has finished.
"""

import csv
import json
import shutil
import time
from pathlib import Path

import keras
import tensorflow as tf

from seq2seq_attn import config as config_lib
from seq2seq_attn import distribute
from seq2seq_attn.corpora import load_corpus
from seq2seq_attn.data import make_dataset, tokenize_pairs
from seq2seq_attn.errors import UserError
from seq2seq_attn.graph_tokenizer import GraphTokenizerPair
from seq2seq_attn.model import Seq2SeqAttention
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
        run_info: the run's `run.json` contents (data spec and seed).
        data: optional corpus spec overriding the run's own.
    """
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
        adam = distribute.CrossReplicaAdam if several else keras.optimizers.Adam
        optimizer = adam(train_cfg["learning_rate"], clipnorm=train_cfg["clipnorm"])
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


def _callbacks(out_dir, patience):
    return [
        keras.callbacks.BackupAndRestore(str(out_dir / "backup"), delete_checkpoint=True),
        keras.callbacks.ModelCheckpoint(
            str(out_dir / MODEL_FILE), monitor="val_loss", save_best_only=True
        ),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience),
        keras.callbacks.CSVLogger(str(out_dir / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(out_dir / "logs"), write_graph=False),
    ]


def _whole_history(out_dir, history):
    """(epochs run, best dev loss) of the whole run, a resumed part included.

    `history` has only this call's epochs (`history.epoch` continues the numbering after a
    resume); history.csv has them all, after the rows of any earlier run trained into the
    same directory, which start again at epoch 0.
    """
    epochs_run = history.epoch[-1] + 1 if history.epoch else 0
    path = Path(out_dir) / "history.csv"
    rows = list(csv.DictReader(path.open())) if path.exists() else []
    starts = [i for i, row in enumerate(rows) if row.get("epoch") == "0"]
    rows = rows[starts[-1] :] if starts else rows
    losses = [float(row["val_loss"]) for row in rows if row.get("val_loss")]
    return epochs_run, min(losses or history.history.get("val_loss", [float("nan")]))


def train(data, config, out_dir, seed=0, verbose="auto", callbacks=()):
    """Trains on corpus `data` ("dates", "bible-en-es" or a file) into `out_dir`.

    `training.strategy` picks the devices (`seq2seq_attn.distribute`); `training.batch_size`
    is the global batch, split evenly across the replicas.

    Args:
        data: corpus spec for `corpora.load_corpus`.
        config: resolved config dict (`config.load_config`).
        out_dir: run directory; an unfinished run there is resumed. A multi-worker
            non-chief worker leaves it alone.
        seed: int; fixes data splits, shuffling and initialisation.
        verbose: Keras fit verbosity (progress bar in a terminal).
        callbacks: extra Keras callbacks, run after the built-in ones.

    Returns:
        The run info dict also written to `out_dir/run.json`.
    """
    train_cfg = config["training"]
    # First: the multi-worker strategy must start before TensorFlow runs any op.
    strategy = distribute.make_strategy(train_cfg["strategy"])
    task = distribute.current_task(strategy)
    if not task.chief:
        out_dir = distribute.worker_scratch_dir(out_dir, task)
    out_dir = _prepare_run_dir(out_dir)
    keras.utils.set_random_seed(seed)
    corpus = corpus_for(data, seed, config)
    tokenizers = run_tokenizers(out_dir, corpus, config["tokenizer"])
    config_lib.save_config(config, out_dir / "config.yaml")
    limits = dict(
        max_source_length=train_cfg["max_source_length"],
        max_target_length=train_cfg["max_target_length"],
    )
    train_ds = make_dataset(
        tokenize_pairs(corpus.train, tokenizers, **limits),
        train_cfg["batch_size"],
        shuffle=True,
        seed=seed,
    )
    dev_ds = make_dataset(tokenize_pairs(corpus.dev, tokenizers), train_cfg["batch_size"])
    train_ds, dev_ds = shard_by_data(train_ds), shard_by_data(dev_ds)
    model = build_model(config, tokenizers, strategy)
    distribute.prepare_fit(model, strategy)
    started = time.time()
    with strategy.scope():
        history = model.fit(
            train_ds,
            validation_data=dev_ds,
            epochs=train_cfg["epochs"],
            callbacks=_callbacks(out_dir, train_cfg["early_stopping_patience"]) + list(callbacks),
            verbose=verbose,
        )
    epochs_run, best_val_loss = _whole_history(out_dir, history)
    info = {
        "data": str(data),
        "seed": seed,
        "sizes": {"train": len(corpus.train), "dev": len(corpus.dev), "test": len(corpus.test)},
        "epochs_run": epochs_run,
        "best_val_loss": best_val_loss,
        "train_seconds": round(time.time() - started, 1),
        "parameters": int(model.count_params()),
        "strategy": train_cfg["strategy"] or "default",
        "num_replicas": strategy.num_replicas_in_sync,
        "workers": task.workers,
        "dtype_policy": config_lib.precision_policy(train_cfg["mixed_precision"]),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    if task.chief:
        (out_dir / RUN_INFO_FILE).write_text(json.dumps(info, indent=2))
    else:
        shutil.rmtree(out_dir)
    return info
