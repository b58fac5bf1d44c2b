"""Training throughput by numeric precision and by tf.distribute strategy, side by side.

The bundled `bible` config (the shipped model's size) trains on the embedded English-Spanish
Bible corpus for a fixed number of steps after a few warm-up steps (tracing included there),
in each mode:

    precision     float32 | mixed_float16 | mixed_bfloat16              (one device)
    distributed   one device | mirrored over 2 logical CPU devices | 2 worker processes

Every mode runs in a fresh interpreter (logical devices and the multi-worker runtime must be
set before TensorFlow starts) on the same global batches: the same seed gives the same
shuffle, and the distributed modes split each global batch across replicas. Reported: target
tokens (non-padding) per second over the measured steps, the ratio to float32 on one device,
and the loss of the trained model on the first dev batches (dropout draws differ between
one device and two replicas, so the losses differ slightly).

    python -m benchmarks training_modes                     # both groups, ~10 min on 2 cores
    python -m benchmarks training_modes --group precision --steps 10 --rounds 1
    python -m benchmarks training_modes --small             # a tiny model, 2 steps, 1 round

The modes take turns, `--rounds` times, and each reports its fastest run: other jobs on a
shared machine slow runs down unevenly (the load average is recorded around every run).
Writes benchmarks/results/training_modes.json (a group run replaces only its own section).
Each mode's worker is `python -m benchmarks.training_modes --worker MODE ...`.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks import harness
from benchmarks.harness import ROOT, clock

SMALL_MODEL = {"embedding_dim": 16, "units": 32, "attention_units": 32}  # --small
MODES = {  # name -> the worker's settings; float32 on one device is the baseline of both groups
    "float32, one device": {},
    "mixed_float16": {"mixed_precision": "mixed_float16"},
    "mixed_bfloat16": {"mixed_precision": "mixed_bfloat16"},
    "mirrored, 2 CPU devices": {"strategy": "mirrored", "cpu_devices": 2},
    "multi-worker, 2 processes": {"strategy": "multi-worker", "workers": 2},
}
BASELINE = "float32, one device"
GROUPS = {
    "precision": [BASELINE, "mixed_float16", "mixed_bfloat16"],
    "distributed": [BASELINE, "mirrored, 2 CPU devices", "multi-worker, 2 processes"],
}
WORKER_TIMEOUT_S = 600
EXIT_GRACE_S = 120  # multi-worker processes can take a while to shut down after training
DEV_BATCHES = 4  # the loss after training is measured on these first dev batches


def measure(mode, steps, warmup, seed):
    """Runs in the worker process: trains `warmup + steps` batches, returns the numbers
    (`mode["small"]`: the model at `SMALL_MODEL` sizes)."""
    from seq2seq_attn import distribute

    if mode.get("cpu_devices"):
        distribute.split_cpu(mode["cpu_devices"])
    strategy = distribute.make_strategy(mode.get("strategy"))  # before any TensorFlow op

    import keras
    import numpy as np
    import tensorflow as tf

    from seq2seq_attn.commands import PRETRAINED_DIR
    from seq2seq_attn.config import load_config
    from seq2seq_attn.data import make_dataset, tokenize_pairs
    from seq2seq_attn.graph_tokenizer import GraphTokenizerPair
    from seq2seq_attn.tokenizer import TokenizerPair
    from seq2seq_attn.training import build_model, corpus_for, shard_by_data

    config = load_config("bible")
    if mode.get("small"):
        config["model"].update(SMALL_MODEL)
    train_cfg = config["training"]
    train_cfg["mixed_precision"] = mode.get("mixed_precision", False)
    keras.utils.set_random_seed(seed)
    corpus = corpus_for("bible-en-es", seed, config)
    tokenizers = GraphTokenizerPair(TokenizerPair.load(PRETRAINED_DIR / "tokenizer"))
    limits = dict(
        max_source_length=train_cfg["max_source_length"],
        max_target_length=train_cfg["max_target_length"],
    )
    tokenized = tokenize_pairs(corpus.train, tokenizers, **limits)

    def batches():  # a new dataset object: its first shuffle is the same every time
        ds = make_dataset(tokenized, train_cfg["batch_size"], shuffle=True, seed=seed)
        return shard_by_data(ds.take(warmup + steps))

    tokens = [int(np.count_nonzero(y)) for _, y in batches().as_numpy_iterator()]
    dev = shard_by_data(
        make_dataset(tokenize_pairs(corpus.dev, tokenizers), train_cfg["batch_size"]).take(
            DEV_BATCHES
        )
    )

    class StepClock(keras.callbacks.Callback):
        ends = []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(clock())

    steps_clock = StepClock()
    model = build_model(config, tokenizers, strategy)
    distribute.prepare_fit(model, strategy)
    with strategy.scope():
        model.fit(batches(), epochs=1, verbose=0, callbacks=[steps_clock])
        dev_loss = model.evaluate(dev, verbose=0)[0]
    step_ms = 1000 * np.diff(steps_clock.ends[warmup - 1 :])  # the measured steps
    seconds = steps_clock.ends[-1] - steps_clock.ends[warmup - 1]
    measured_tokens = sum(tokens[warmup:])
    return {
        "target_tokens_per_s": round(measured_tokens / seconds, 1),
        "step_ms": round(1000 * seconds / steps, 1),
        "median_step_ms": round(float(np.median(step_ms)), 1),
        "max_step_ms": round(float(step_ms.max()), 1),  # far above the median: a retrace
        "measured_steps": steps,
        "measured_target_tokens": measured_tokens,
        "dev_loss_after": round(float(dev_loss), 4),
        "num_replicas": strategy.num_replicas_in_sync,
        "dtype_policy": keras.mixed_precision.global_policy().name,
        "chief": distribute.current_task(strategy).chief,
        "tensorflow": tf.__version__,
    }


def run_mode(name, steps, warmup, seed, log_dir, small=False):
    """Starts the mode's worker process(es); returns the chief's numbers plus wall times."""
    from seq2seq_attn.distribute import loopback_workers

    mode = dict(MODES[name], small=small)
    command = [sys.executable, "-m", "benchmarks.training_modes", "--worker", json.dumps(mode)]
    command += ["--steps", str(steps), "--warmup", str(warmup), "--seed", str(seed)]
    n = mode.get("workers", 1)
    cluster = loopback_workers(n)
    procs, logs = [], []
    load_before = os.getloadavg()
    started = clock()
    for index in range(n):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        if n > 1:
            tf_config = {"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}}
            env["TF_CONFIG"] = json.dumps(tf_config)
        slug = "".join(c if c.isalnum() else "_" for c in name)
        logs.append(open(log_dir / f"{slug}-{index}.log", "w"))
        procs.append(
            subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=logs[-1], text=True, cwd=ROOT
            )
        )
    try:
        out = procs[0].communicate(timeout=WORKER_TIMEOUT_S)[0]
        finished = clock()
        for p in procs[1:]:
            p.communicate(timeout=EXIT_GRACE_S)
    finally:
        for p in procs:
            p.kill()
        for f in logs:
            f.close()
    if any(p.returncode != 0 for p in procs):
        raise RuntimeError(f"{name} failed; see the logs in {log_dir}")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(
        wall_seconds=round(finished - started, 1),
        load_average_before=[round(x, 2) for x in load_before],
        load_average_after=[round(x, 2) for x in os.getloadavg()],
    )
    return result


def add_arguments(parser):
    parser.add_argument("--group", choices=[*GROUPS, "all"], default="all")
    parser.add_argument("--steps", type=int, help="measured steps per run (20, small 2)")
    parser.add_argument("--warmup", type=int, help="unmeasured first steps (5, small 1)")
    parser.add_argument("--rounds", type=int, help="runs per mode, in turns (2, small 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-dir", type=Path, default=Path("/tmp/training_modes_logs"))


def run(args):
    small = args.small
    steps, warmup = args.steps or (2 if small else 20), args.warmup or (1 if small else 5)
    rounds = args.rounds or (1 if small else 2)
    groups = list(GROUPS) if args.group == "all" else [args.group]
    names = [name for name in MODES if any(name in GROUPS[g] for g in groups)]
    args.log_dir.mkdir(parents=True, exist_ok=True)
    runs = {name: [] for name in names}
    for round_ in range(rounds):  # the modes take turns, so drifting load hits them all
        for name in names:
            print(f"round {round_ + 1}: {name} ...", flush=True)
            runs[name].append(run_mode(name, steps, warmup, args.seed, args.log_dir, small))
            print(f"  {json.dumps(runs[name][-1])}", flush=True)
    best = fastest(runs)
    results = {}
    previous = harness.result_path("training_modes", small)
    if args.group != "all" and previous.exists():  # a group run keeps the other group
        results = harness.read_result("training_modes", previous.parent)["figures"]
    results["settings"] = {
        "config": "bible (configs/bible.yaml)" + (f", model {SMALL_MODEL}" if small else ""),
        "data": "bible-en-es train split, length-bucketed, seed-shuffled",
        "global_batch_size": 64,
        "warmup_steps": warmup,
        "measured_steps": steps,
        "rounds": rounds,
        "reported_run": "the fastest of the rounds",
        "seed": args.seed,
        "dev_batches_for_loss": DEV_BATCHES,
    }
    for group in groups:
        results[group] = {name: best[name] for name in GROUPS[group]}
        print(f"\n{group}:")
        for name, row in results[group].items():
            print(
                f"  {name:28} {row['target_tokens_per_s']:8.1f} target tokens/s  "
                f"x{row['ratio_to_float32_one_device']:.2f}  dev loss {row['dev_loss_after']}"
            )
    return results


def fastest(runs):
    """Per mode the fastest run (the least disturbed by other jobs), every run's speed, and
    the ratio to float32 on one device."""
    best = {}
    for name, rs in runs.items():
        best[name] = max(rs, key=lambda r: r["target_tokens_per_s"])
        best[name]["target_tokens_per_s_each_run"] = [r["target_tokens_per_s"] for r in rs]
        # the 1-minute load average when each run started
        best[name]["load_average_each_run"] = [r["load_average_before"][0] for r in rs]
    baseline = best[BASELINE]["target_tokens_per_s"]
    for row in best.values():
        row["ratio_to_float32_one_device"] = round(row["target_tokens_per_s"] / baseline, 3)
    return best


def worker_main(argv=None):
    """A mode's worker process: `--worker MODE_JSON --steps N --warmup N --seed N`."""
    parser = argparse.ArgumentParser(description="a worker of the training_modes benchmark")
    parser.add_argument("--worker", required=True)
    for option in ("--steps", "--warmup", "--seed"):
        parser.add_argument(option, type=int, required=True)
    args = parser.parse_args(argv)
    print(json.dumps(measure(json.loads(args.worker), args.steps, args.warmup, args.seed)))


if __name__ == "__main__":
    worker_main()
