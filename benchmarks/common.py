"""What the benchmarks share: the benchmark model, its data, its export, child processes.

The benchmark model is the Bahdanau model of `configs/bible.yaml` scaled up to the size the
issue names: embedding 256, 512 GRU units (bidirectional encoder, so a 1024-wide memory),
512 attention units, 8000-piece vocabularies on each side, no dropout (so that two
implementations started from the same weights must give the same loss curve).

`bench_run(small)` makes a run directory in the format `seq2seq-attn export` reads
(model.keras, tokenizer/, config.yaml, run.json) holding that model after a few training
steps, and reuses it when it is already there; `bench_export` exports it. `--small` runs use
`SMALL_SIZE` and their own folders under runs/benchmarks/.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.harness import ROOT, clock, work_dir

DATA = "bible-en-es"
SEED = 0
SIZE = dict(embedding_dim=256, units=512, attention_units=512, vocab=8000)
SMALL_SIZE = dict(embedding_dim=16, units=32, attention_units=32, vocab=500)  # --small
SMALL_TRAIN_STEPS = 5
EXPORT_SAMPLES = 20  # parity sentences when a benchmark has to create the bench export
SMALL_EXPORT_SAMPLES = 4
# The tests' tiny dates model (tests/conftest.py's TINY_CONFIG is this dict), trained by the
# --small runs of attention_vs_vanilla and by startup's `train` command; its training keys pin
# the recipe the tests' expectations were written for (before decision 0035), float32 (the
# default, auto, is bfloat16 on a CPU with AMX) and the full softmax (the default, auto, trains
# a budget's first part over each batch's own target pieces), since one epoch of the default's
# warm-up leaves it untrained.
TINY_CONFIG = {
    "data": {"size": 600},
    "tokenizer": {"source_vocab_size": 200, "target_vocab_size": 30, "byte_fallback": False},
    "model": {"embedding_dim": 8, "units": 16, "attention_units": 16},
    "training": {
        "batch_size": 32,
        "epochs": 1,
        "max_source_length": 40,
        "max_target_length": 16,
        "learning_rate": 1e-3,
        "label_smoothing": 0.0,
        "schedule": "constant",
        "select_by": "loss",
        "mixed_precision": False,
        "candidate_softmax": None,  # the full softmax, budget or not (decision 0043)
    },
}


def size(small):
    """The benchmark model's size, or the small one of `--small` runs."""
    return SMALL_SIZE if small else SIZE


def sized_config(size, batch_size=64, **model):
    """The bundled `bible` config at `size` (a dict like `SIZE`): Bahdanau attention, no
    dropout, `batch_size`, float32 (a benchmark that compares precisions sets its own), and
    any other `model` keys given."""
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
    config["training"].update(batch_size=batch_size, mixed_precision=False)
    return config


def bench_config(batch_size=64, small=False):
    """The bundled `bible` config at the benchmark size (or the small one)."""
    return sized_config(size(small), batch_size)


def tokenizer_cache(config):
    """Where the vocabularies of `config`'s sizes are cached (in its tokenizer/)."""
    vocab = config["tokenizer"]["source_vocab_size"]
    return (
        ROOT
        / "runs"
        / ("bench-tokenizer" if vocab == SIZE["vocab"] else f"bench-tokenizer-{vocab}")
    )


def tokenizers_for(corpus, config):
    """The benchmark vocabularies, learned once from the train split and cached in runs/."""
    from seq2seq_attn.training import run_tokenizers

    return run_tokenizers(tokenizer_cache(config), corpus, config["tokenizer"])


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


def bench_run(small=False, train_steps=None):
    """A run directory with the benchmark model after `train_steps` steps (50, small 5):
    runs/bench-model (small: runs/benchmarks/bench-model); reused if present."""
    import keras

    from seq2seq_attn.training import build_model, corpus_for
    from seq2seq_attn.translator import RUN_INFO_FILE, TOKENIZER_DIR

    out_dir = work_dir(small, "bench-model")
    if train_steps is None:
        train_steps = SMALL_TRAIN_STEPS if small else 50
    if (out_dir / RUN_INFO_FILE).exists():
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    config = bench_config(small=small)
    keras.utils.set_random_seed(SEED)
    corpus = corpus_for(DATA, SEED, config)
    tokenizers = tokenizers_for(corpus, config)
    cache = tokenizer_cache(config) / TOKENIZER_DIR
    shutil.copytree(cache, out_dir / TOKENIZER_DIR, dirs_exist_ok=True)
    model = build_model(config, tokenizers)
    started = clock()
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
        "train_seconds": round(clock() - started, 1),
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


def bench_export(run_dir, small=False, samples=None):
    """The export of the benchmark model (runs/bench-export, small: runs/benchmarks/...);
    `(export_dir, export_cost or None)`: made by `seq2seq-attn export` when missing."""
    export_dir = work_dir(small, "bench-export")
    if (export_dir / "manifest.json").exists():
        return export_dir, None
    if samples is None:
        samples = SMALL_EXPORT_SAMPLES if small else EXPORT_SAMPLES
    return export_dir, run_export_cli(run_dir, export_dir, samples)


def mb(kilobytes):
    """Kilobytes as megabytes, one decimal."""
    return round(kilobytes / 1024, 1)


def status_kb(path, field):
    """A kB field of a /proc status file, or None (also when the process is gone)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def run_child(args, log_path=None, env=None):
    """Runs a child to completion: (exit code, wall seconds, its peak RSS in MB).

    The peak is the child's VmHWM, read from /proc every 0.1 s while it runs: os.wait4's
    ru_maxrss would also count the parent's pages that the forked child held until its exec.
    """
    log = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115
    peak_kb = 0
    try:
        started = clock()
        child = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        while True:
            pid, status, _ = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            peak_kb = max(peak_kb, status_kb(f"/proc/{child.pid}/status", "VmHWM") or 0)
            time.sleep(0.1)
        wall = clock() - started
        child.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if log_path:
            log.close()
    return child.returncode, wall, mb(peak_kb)


def export_env():
    """The environment without the thread pins decode_latency sets: exports get the defaults."""
    pinned = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
    return {k: v for k, v in os.environ.items() if k not in pinned}


def run_export_cli(run_dir, out, samples=200):
    """`seq2seq-attn export RUN --out OUT --samples N --force` timed in a child process."""
    cli = Path(sys.executable).with_name("seq2seq-attn")
    args = [str(cli), "export", str(run_dir), "--out", str(out), "--samples", str(samples)]
    args.append("--force")
    log = Path(out).with_suffix(".log")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    code, wall, rss = run_child(args, log, export_env())
    if code:
        raise SystemExit(f"export failed ({code}), see {log}")
    return {
        "command": " ".join([cli.name] + args[1:]),
        "wall_s": round(wall, 1),
        "peak_rss_mb": rss,  # VmHWM, polled
        "parity_samples": samples,
        "log": str(log.relative_to(ROOT)),
    }
