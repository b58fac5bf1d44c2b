"""Training throughput of `model.fit`: this package against the obvious Keras implementation.

Three implementations of the same Bahdanau model (benchmark size, see `common.py`) start from
the same weights and train on the same list of length-bucketed Bible batches:

- `seq2seq_attn`: `Seq2SeqAttention` as `seq2seq-attn train` builds it (keys projected once per
  sentence, the train step a `tf.function`);
- `seq2seq_attn_xla`: the same with `jit_compile=True`;
- `naive`: `naive_seq2seq.NaiveSeq2Seq`, keys projected again at every step, step not compiled.

Pass 1 is one `model.fit` epoch that records each batch's loss (the metrics are reset before
every batch); it is also the warm-up (tracing, XLA compilation for each batch shape, which is
timed apart). The loss curves of the three must agree. Then
`--rounds` timed passes of `model.fit` over the same batches, the implementations taking
turns, so that drift in the machine's speed hits all of them alike. Throughput is target tokens
(non-padding) per second of the median pass; ratios are to the naive one.

    python -m benchmarks train_throughput                # ~15 min on 2 CPU cores
    python -m benchmarks train_throughput --batches 4 --rounds 1   # quick look
    python -m benchmarks train_throughput --small        # the small model, 3 batches, 1 round

Writes benchmarks/results/train_throughput.json.
"""

import os
import statistics

import keras

from benchmarks import common
from benchmarks.harness import clock, plot_path


def build(config, tokenizers):
    """The three implementations, all holding the same initial weights."""
    from benchmarks.naive_seq2seq import naive_like
    from seq2seq_attn.losses import MaskedCrossEntropy
    from seq2seq_attn.training import build_model

    keras.utils.set_random_seed(common.SEED)
    ours = build_model(config, tokenizers)
    config["training"]["jit_compile"] = True
    xla = build_model(config, tokenizers)
    config["training"]["jit_compile"] = False
    xla.set_weights(ours.get_weights())
    naive = naive_like(ours)
    train_cfg = config["training"]
    naive.compile(
        keras.optimizers.Adam(train_cfg["learning_rate"], clipnorm=train_cfg["clipnorm"]),
        loss=MaskedCrossEntropy(label_smoothing=train_cfg["label_smoothing"]),
        run_eagerly=True,
    )
    return {"seq2seq_attn": ours, "seq2seq_attn_xla": xla, "naive": naive}


class PerBatchLoss(keras.callbacks.Callback):
    """Resets the metrics before every batch, so `logs["loss"]` at the end of a batch is that
    batch's loss rather than the running mean; collects them in `losses`."""

    def __init__(self):
        super().__init__()
        self.losses = []

    def on_train_batch_begin(self, batch, logs=None):
        self.model.reset_metrics()

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float(logs["loss"]))


def fit_pass(model, batches, callbacks=()):
    """One `model.fit` epoch over `batches`; returns its wall time in seconds."""
    dataset = common.as_dataset(batches)
    started = clock()
    model.fit(dataset, epochs=1, verbose=0, callbacks=list(callbacks))
    return clock() - started


def plot(result, path):
    """Throughput bars and the loss curves side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["implementations"]
    fig, (bars, curves) = plt.subplots(1, 2, figsize=(10, 3.6))
    bars.barh(list(rows), [r["tokens_per_second"] for r in rows.values()], color="tab:blue")
    for i, r in enumerate(rows.values()):
        bars.text(r["tokens_per_second"], i, f" x{r['speedup_vs_naive']:.2f}", va="center")
    bars.set_xlim(0, 1.25 * max(r["tokens_per_second"] for r in rows.values()))
    bars.set_xlabel("target tokens / s (model.fit)")
    bars.set_title(f"{os.cpu_count()} CPU cores, same batches")
    for (name, r), style in zip(rows.items(), ("-", "--", ":"), strict=False):
        curves.plot(range(1, len(r["loss_curve"]) + 1), r["loss_curve"], style, label=name)
    curves.set_xlabel("batch (same weights at start)")
    curves.set_ylabel("training loss")
    curves.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def add_arguments(parser):
    parser.add_argument("--batches", type=int, help="batches per pass (10, small 3)")
    parser.add_argument("--rounds", type=int, help="timed passes per implementation (2, small 1)")
    parser.add_argument("--batch-size", type=int, help="(64, small 16)")


def run(args):
    import numpy as np

    from seq2seq_attn.training import corpus_for

    small = args.small
    n_batches = args.batches or (3 if small else 10)
    rounds = args.rounds or (1 if small else 2)
    config = common.bench_config(args.batch_size or (16 if small else 64), small=small)
    corpus = corpus_for(common.DATA, common.SEED, config)
    tokenizers = common.tokenizers_for(corpus, config)
    batches = common.train_batches(corpus, tokenizers, config, n_batches)
    tokens = int(sum(np.count_nonzero(y) for _, y in batches))
    models = build(config, tokenizers)
    result = {"size": common.size(small), "batches": n_batches}
    result["batch_shapes"] = [[list(x[0].shape), list(x[1].shape)] for x, _ in batches]
    result["target_tokens_per_pass"] = tokens
    curves, first_pass = {}, {}
    for name, model in models.items():
        print(f"{name}: pass 1 (loss curve, warm-up)", flush=True)
        recorder = PerBatchLoss()
        first_pass[name] = fit_pass(model, batches, [recorder])
        curves[name] = recorder.losses
    times = {name: [] for name in models}
    for r in range(rounds):
        for name, model in models.items():
            times[name].append(fit_pass(model, batches))
            print(f"round {r + 1} {name}: {times[name][-1]:.1f} s", flush=True)
    result["implementations"] = rows(models, times, first_pass, curves, tokens)
    result["load_average_after"] = list(os.getloadavg())
    plot(result, plot_path(args, "train-throughput.png"))
    for name, row in result["implementations"].items():
        print(
            f"{name:18} {row['tokens_per_second']:8.0f} tok/s  x{row['speedup_vs_naive']:.2f}"
            f"  max |loss diff| {row['max_abs_loss_diff_vs_naive']:.2e}"
        )
    return result


def rows(models, times, first_pass, curves, tokens):
    """Per implementation: pass times, tokens/s, speed-up over naive, loss-curve agreement."""
    import numpy as np

    found = {}
    for name in models:
        median = statistics.median(times[name])
        found[name] = {
            "pass_seconds": [round(t, 3) for t in times[name]],
            "first_pass_seconds": round(first_pass[name], 3),
            "tokens_per_second": round(tokens / median, 1),
            "speedup_vs_naive": round(statistics.median(times["naive"]) / median, 2),
            "loss_curve": [round(v, 5) for v in curves[name]],
            "max_abs_loss_diff_vs_naive": float(
                np.max(np.abs(np.subtract(curves[name], curves["naive"])))
            ),
        }
    return found
