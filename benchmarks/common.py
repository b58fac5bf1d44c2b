"""What the benchmarks share: the benchmark model size, its data, machine facts, timing.

The benchmark model is the Bahdanau model of `configs/bible.yaml` scaled up to the size the
issue names: embedding 256, 512 GRU units (bidirectional encoder, so a 1024-wide memory),
512 attention units, 8000-piece vocabularies on each side, no dropout (so that two
implementations started from the same weights must give the same loss curve).

`bench_run(out_dir)` makes a run directory in the format `seq2seq-attn export` reads
(model.keras, tokenizer/, config.yaml, run.json) holding that model after a few training
steps, and reuses it when it is already there.
"""

import json
import os
import platform
import shutil
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
DATA = "bible-en-es"
SEED = 0
TOKENIZER_CACHE = ROOT / "runs" / "bench-tokenizer"  # vocabularies in its tokenizer/
SIZE = dict(embedding_dim=256, units=512, attention_units=512, vocab=8000)


def sized_config(size, batch_size=64, **model):
    """The bundled `bible` config at `size` (a dict like `SIZE`): Bahdanau attention, no
    dropout, `batch_size`, and any other `model` keys given."""
    from seq2seq_attn.config import load_config

    config = load_config("bible")
    config["tokenizer"].update(source_vocab_size=size["vocab"], target_vocab_size=size["vocab"])
    config["model"].update(
        embedding_dim=size["embedding_dim"],
        units=size["units"],
        attention_units=size["attention_units"],
        attention="bahdanau",
        dropout=0.0,
        **model,
    )
    config["training"]["batch_size"] = batch_size
    return config


def bench_config(batch_size=64):
    """The bundled `bible` config at the benchmark size."""
    return sized_config(SIZE, batch_size)


def machine():
    """Facts that go with every result: the numbers mean little without them."""
    import keras
    import tensorflow as tf

    return {
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "load_average": list(os.getloadavg()),
    }


def cpu_model():
    """The processor's model name, for the results."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def write_result(name, result):
    """Writes `benchmarks/results/NAME.json` and returns its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def tokenizers_for(corpus, config):
    """The benchmark vocabularies, learned once from the train split and cached in runs/."""
    from seq2seq_attn.training import run_tokenizers

    return run_tokenizers(TOKENIZER_CACHE, corpus, config["tokenizer"])


def train_batches(corpus, tokenizers, config, count, seed=SEED):
    """`count` shuffled, length-bucketed training batches as a list (identical every call)."""
    from seq2seq_attn.data import make_dataset, tokenize_pairs

    train_cfg = config["training"]
    tokenized = tokenize_pairs(
        corpus.train,
        tokenizers,
        max_source_length=train_cfg["max_source_length"],
        max_target_length=train_cfg["max_target_length"],
    )
    ds = make_dataset(tokenized, train_cfg["batch_size"], shuffle=True, seed=seed)
    return list(ds.take(count).as_numpy_iterator())


def bench_run(out_dir=ROOT / "runs" / "bench-model", train_steps=50):
    """A run directory with the benchmark model after `train_steps` steps; reused if present."""
    import keras

    from seq2seq_attn.training import build_model, corpus_for
    from seq2seq_attn.translator import RUN_INFO_FILE, TOKENIZER_DIR

    out_dir = Path(out_dir)
    if (out_dir / RUN_INFO_FILE).exists():
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    config = bench_config()
    keras.utils.set_random_seed(SEED)
    corpus = corpus_for(DATA, SEED, config)
    tokenizers = tokenizers_for(corpus, config)
    shutil.copytree(TOKENIZER_CACHE / TOKENIZER_DIR, out_dir / TOKENIZER_DIR, dirs_exist_ok=True)
    model = build_model(config, tokenizers)
    started = time.perf_counter()
    if train_steps:
        batches = train_batches(corpus, tokenizers, config, train_steps)
        model.fit(as_dataset(batches), epochs=1, verbose=0)
    note = "benchmark model: sized for speed measurements, barely trained"
    return save_run(out_dir, model, config, corpus, DATA, train_steps, started, note)


def save_run(out_dir, model, config, corpus, data, train_steps, started, note):
    """Writes a benchmark model as a run directory (model, config, run.json); returns it."""
    from seq2seq_attn import config as config_lib
    from seq2seq_attn.translator import MODEL_FILE, RUN_INFO_FILE

    model.save(out_dir / MODEL_FILE)
    config_lib.save_config(config, out_dir / "config.yaml")
    info = {
        "data": data,
        "seed": SEED,
        "sizes": {"train": len(corpus.train), "dev": len(corpus.dev), "test": len(corpus.test)},
        "epochs_run": 0,
        "train_steps": train_steps,
        "train_seconds": round(time.perf_counter() - started, 1),
        "parameters": int(model.count_params()),
        "note": note,
    }
    (out_dir / RUN_INFO_FILE).write_text(json.dumps(info, indent=2))
    return out_dir


def as_dataset(batches):
    """A tf.data pipeline over a list of `((source, target_in), target_out)` numpy batches."""
    import tensorflow as tf

    return tf.data.Dataset.from_generator(
        lambda: iter(batches),
        output_signature=(
            (
                tf.TensorSpec((None, None), tf.int32),
                tf.TensorSpec((None, None), tf.int32),
            ),
            tf.TensorSpec((None, None), tf.int32),
        ),
    )
