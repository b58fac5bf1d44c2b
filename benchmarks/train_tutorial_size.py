"""Training steps/s at the size of TensorFlow's "NMT with attention" tutorial, on short sentences.

The issue's setting: units 256, embedding 256, 5000-piece vocabularies, batch 64, ~17,000
short strings of 5-6 words. Data: `tutorial_size.tutorial_data()` (`runs/tutorial-data.tsv`):
17,000 pairs cut from Bible training verses, 4-8 source words (5.6 on average) and as
large a share of the Spanish verse (the Bible corpus has only ~800 whole verses that
short), split by `seq2seq-attn train`'s own file split; one SentencePiece model of 5000
pieces per side, whose ids both implementations are fed. Implementations:

- `tutorial`: `tutorial_nmt.Translator`, the tutorial's model and `model.fit` step as
  published, on the tutorial's batches (shuffled, 64 a batch, padded to the longest);
- `seq2seq_attn`: `Seq2SeqAttention` as `seq2seq-attn train` builds it
  (`training.build_model`, config `tutorial_size.tutorial_config()`: bidirectional GRU,
  Bahdanau, no dropout) on its own length-bucketed batches padded to the longest;
- `seq2seq_attn_bucket`: the same batches padded to their bucket's boundary
  (`training.pad_to_bucket: true`);
- `seq2seq_attn_bf16_bucket`: the bucket-padded batches with
  `training.mixed_precision: mixed_bfloat16` (matrix products on the CPU's AMX/AVX512-BF16
  units; variables, softmax and loss in float32);
- `seq2seq_attn_xla_bucket`: the bucket-padded batches with `training.jit_compile: true`
  (XLA compiles each of the few bucket shapes once).

Each implementation lives in its own child process (so that its peak RSS, VmHWM, is its
own) and they take turns: pass 1 is one `model.fit` epoch over `--batches` batches that
records every batch's loss (metrics reset before each batch) and is also the warm-up
(tracing, XLA compilation; timed apart); then `--rounds` timed passes each, round robin,
so that the machine's drift hits all alike. Steps/s = batches / median pass time. Our
variants start from the same weights and see the same pairs in the same batches (only the
padding differs), so their loss curves must agree (bfloat16 up to its rounding); the
tutorial's model is another architecture and its curve is comparable only loosely. Also
reported: how many distinct batch shapes one whole epoch of each pipeline has (what XLA
would compile).

    python -m benchmarks train_tutorial_size                 # ~10 min on 2 busy cores
    python -m benchmarks train_tutorial_size --small         # tiny data and model (the tests)

Writes benchmarks/results/train_tutorial_size.json (small: runs/benchmarks/, or `--out`).
"""

import multiprocessing
import os
import pickle
import statistics
import tempfile
from pathlib import Path
from types import SimpleNamespace

from benchmarks import common, train_throughput, tutorial_nmt, tutorial_size
from benchmarks.harness import ROOT, clock

NAME = "train_tutorial_size"
IMPLEMENTATIONS = (
    "tutorial",
    "seq2seq_attn",
    "seq2seq_attn_bucket",
    "seq2seq_attn_bf16_bucket",
    "seq2seq_attn_xla_bucket",
)
BASELINE = "tutorial"
OURS = "seq2seq_attn"
SMALL = dict(pairs=300, vocab=500, units=16, batch_size=8)


def _config(small):
    """`tutorial_size.tutorial_config()` (or a tiny one for `--small`)."""
    config = tutorial_size.tutorial_config()
    if small:
        config["tokenizer"].update(
            source_vocab_size=SMALL["vocab"], target_vocab_size=SMALL["vocab"]
        )
        config["model"].update(
            embedding_dim=SMALL["units"], units=SMALL["units"], attention_units=SMALL["units"]
        )
        config["training"]["batch_size"] = SMALL["batch_size"]
    return config


def prepare(work_dir, batches, small=False):
    """Data for every implementation: our batches (tight and bucket-padded), the
    tutorial's, vocabulary sizes and the shapes of one whole epoch of each pipeline."""
    import numpy as np

    from seq2seq_attn.data import make_dataset, tokenize_pairs
    from seq2seq_attn.training import corpus_for, run_tokenizers

    config = _config(small)
    data_file = tutorial_size.DATA_FILE
    if small:
        data_file = tutorial_size.tutorial_data(Path(work_dir) / "short.tsv", SMALL["pairs"])
    elif not data_file.exists():
        tutorial_size.tutorial_data()
    corpus = corpus_for(str(data_file), common.SEED, config)
    tok_dir = Path(work_dir) / "tokenizer-cache" if small else ROOT / "runs" / NAME
    tokenizers = run_tokenizers(tok_dir, corpus, config["tokenizer"])
    train_cfg = config["training"]
    limits = dict(
        max_source_length=train_cfg["max_source_length"],
        max_target_length=train_cfg["max_target_length"],
    )
    tokenized = tokenize_pairs(corpus.train, tokenizers, **limits)
    max_length = max(limits.values())

    def pipeline(pad):
        return make_dataset(
            tokenized,
            train_cfg["batch_size"],
            shuffle=True,
            seed=common.SEED,
            max_length=max_length,
            pad_to_bucket=pad,
        )

    tight = list(pipeline(False).take(batches).as_numpy_iterator())
    padded = list(pipeline(True).take(batches).as_numpy_iterator())
    _check_same_pairs(tight, padded)
    pairs = [(s.tolist(), t.tolist()) for s, t in tokenized.as_numpy_iterator()]
    words = [len(s.split()) for s, _ in corpus.train]
    return {
        "config": config,
        "vocab": (tokenizers.source.vocab_size, tokenizers.target.vocab_size),
        "batches": {
            "tight": tight,
            "padded": padded,
            "tutorial": tutorial_nmt.tutorial_batches(
                pairs, batches, train_cfg["batch_size"], seed=common.SEED
            ),
        },
        "data": {
            "file": str(data_file.relative_to(ROOT) if not small else data_file.name),
            "train_pairs": len(corpus.train),
            "source_words_mean": round(float(np.mean(words)), 2),
            "source_tokens_mean": round(float(np.mean([len(s) for s, _ in pairs])), 2),
            "epoch_shapes": {
                "padded_to_longest": _epoch_shapes(pipeline(False)),
                "pad_to_bucket": _epoch_shapes(pipeline(True)),
            },
        },
    }


def _check_same_pairs(tight, padded):
    """Both pipelines batch the same pairs in the same order; only the padding differs."""
    import numpy as np

    for ((s1, t1), y1), ((s2, t2), y2) in zip(tight, padded, strict=True):
        for a, b in ((s1, s2), (t1, t2), (y1, y2)):
            if a.shape[0] != b.shape[0] or not np.array_equal(b[:, : a.shape[1]], a):
                raise RuntimeError("pad_to_bucket changed the contents of a batch")
            if np.any(b[:, a.shape[1] :]):
                raise RuntimeError("pad_to_bucket padded with something other than 0")


def _epoch_shapes(dataset):
    """Distinct `(source, target)` batch shapes in one whole epoch, and the batch count."""
    shapes = [(x[0].shape, x[1].shape) for x, _ in dataset.as_numpy_iterator()]
    return {"batches": len(shapes), "distinct_shapes": len(set(shapes))}


def _build(name, config, vocab):
    """The implementation `name`, from `common.SEED`."""
    import keras

    keras.utils.set_random_seed(common.SEED)
    if name == "tutorial":
        return tutorial_nmt.build_translator(*vocab, units=config["model"]["units"])
    from seq2seq_attn.training import build_model

    config["training"]["jit_compile"] = name == "seq2seq_attn_xla_bucket"
    config["training"]["mixed_precision"] = "mixed_bfloat16" if "bf16" in name else False
    sizes = SimpleNamespace(
        source=SimpleNamespace(vocab_size=vocab[0]), target=SimpleNamespace(vocab_size=vocab[1])
    )
    return build_model(config, sizes)


def _batches_for(name, batches):
    if name == "tutorial":
        return batches["tutorial"]
    return batches["tight"] if name == OURS else batches["padded"]


def peak_rss_mb():
    """This process's peak resident set size (VmHWM) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def worker(name, data_path, conn):
    """A child process holding one implementation; runs the parent's commands in turn."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    data = pickle.loads(Path(data_path).read_bytes())
    model = _build(name, data["config"], data["vocab"])
    batches = _batches_for(name, data["batches"])
    checksum = float(sum(np.sum(np.abs(w)) for w in model.get_weights()))
    conn.send({"ready": name, "weights_checksum": checksum})
    while True:
        command = conn.recv()
        if command == "curve":
            recorder = train_throughput.PerBatchLoss()
            seconds = train_throughput.fit_pass(model, batches, [recorder])
            conn.send({"seconds": seconds, "losses": recorder.losses})
        elif command == "pass":
            conn.send({"seconds": train_throughput.fit_pass(model, batches)})
        elif command == "rss":
            conn.send({"peak_rss_mb": peak_rss_mb()})
        else:
            conn.send({"stopped": name})
            conn.close()
            os._exit(0)  # skips TensorFlow's slow (sometimes stuck) interpreter teardown


class Children:
    """One child process per implementation, each asked in turn."""

    def __init__(self, names, data_path):
        context = multiprocessing.get_context("spawn")
        self.conns, self.procs = {}, {}
        for name in names:
            parent, child = context.Pipe()
            proc = context.Process(target=worker, args=(name, data_path, child), daemon=True)
            proc.start()
            self.conns[name], self.procs[name] = parent, proc
        self.ready = {name: self.ask(name, None) for name in names}

    def ask(self, name, command):
        if command is not None:
            self.conns[name].send(command)
        return self.conns[name].recv()

    def close(self):
        for name, conn in self.conns.items():
            conn.send("stop")
            conn.recv()
            self.procs[name].join(timeout=60)


def _median_steps(seconds, batches):
    return batches / statistics.median(seconds)


def summarize(times, curves, first, batches, rss):
    """Per-implementation rows: steps/s, ratios to the tutorial and to `seq2seq_attn`,
    loss-curve agreement with `seq2seq_attn`, peak RSS."""
    import numpy as np

    rows = {}
    for name, seconds in times.items():
        steps = _median_steps(seconds, batches)
        row = {
            "steps_per_second": round(steps, 3),
            "pass_seconds": [round(t, 3) for t in seconds],
            "first_pass_seconds": round(first[name], 2),
            "peak_rss_mb": rss[name],
            "loss_curve": [round(v, 5) for v in curves[name]],
        }
        if BASELINE in times:
            row["x_tutorial"] = round(steps / _median_steps(times[BASELINE], batches), 2)
        if OURS in times:
            row["x_seq2seq_attn"] = round(steps / _median_steps(times[OURS], batches), 2)
            if name != BASELINE:
                diff = np.abs(np.subtract(curves[name], curves[OURS]))
                row["max_abs_loss_diff_vs_seq2seq_attn"] = float(diff.max())
        rows[name] = row
    return rows


def table(rows, batch_size):
    """The README's markdown table."""
    lines = [
        f"| implementation | steps/s (batch {batch_size}) | x tutorial | x seq2seq_attn "
        "| peak RSS MiB | loss, first -> last batch | max abs loss diff vs seq2seq_attn |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        curve = r["loss_curve"]
        diff = r.get("max_abs_loss_diff_vs_seq2seq_attn")
        lines.append(
            f"| {name} | {r['steps_per_second']:.2f} | {r.get('x_tutorial', '-')} "
            f"| {r.get('x_seq2seq_attn', '-')} | {r['peak_rss_mb']:.0f} "
            f"| {curve[0]:.3f} -> {curve[-1]:.3f} | {'-' if diff is None else f'{diff:.1e}'} |"
        )
    return "\n".join(lines)


def measure(names, data_path, batches, rounds):
    """Pass 1 (loss curves, warm-up), then `rounds` timed passes, round robin."""
    children = Children(names, data_path)
    try:
        curves, first = {}, {}
        for name in names:
            reply = children.ask(name, "curve")
            curves[name], first[name] = reply["losses"], reply["seconds"]
            print(f"{name}: pass 1 {reply['seconds']:.1f} s", flush=True)
        times = {name: [] for name in names}
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                times[name].append(children.ask(name, "pass")["seconds"])
                print(f"round {r + 1} {name}: {times[name][-1]:.2f} s", flush=True)
        rss = {name: children.ask(name, "rss")["peak_rss_mb"] for name in names}
        checksums = {name: children.ready[name]["weights_checksum"] for name in names}
    finally:
        children.close()
    return summarize(times, curves, first, batches, rss), checksums


def add_arguments(parser):
    parser.add_argument("--batches", type=int, help="batches per pass (30, small 3)")
    parser.add_argument("--rounds", type=int, help="timed passes per implementation (5, small 1)")
    parser.add_argument("--only", nargs="+", choices=IMPLEMENTATIONS, default=IMPLEMENTATIONS)


def run(args):
    n_batches = args.batches or (3 if args.small else 30)
    rounds = args.rounds or (1 if args.small else 5)
    names = [n for n in IMPLEMENTATIONS if n in args.only]
    load_before = list(os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        data = prepare(tmp, n_batches, args.small)
        data_path = Path(tmp) / "data.pkl"
        data_path.write_bytes(pickle.dumps(data))
        started = clock()
        rows, checksums = measure(names, str(data_path), n_batches, rounds)
    ours = [checksums[n] for n in names if n != BASELINE]
    config = data["config"]
    result = {
        "size": {
            "embedding_dim": config["model"]["embedding_dim"],
            "units": config["model"]["units"],
            "vocab": list(data["vocab"]),
            "batch_size": config["training"]["batch_size"],
        },
        "data": data["data"],
        "settings": {
            "batches_per_pass": n_batches,
            "rounds": rounds,
            "small": args.small,
            "same_initial_weights": len(set(ours)) <= 1,
            "wall_seconds": round(clock() - started, 1),
            "load_average_before": load_before,
            "load_average_after": list(os.getloadavg()),
        },
        "implementations": rows,
    }
    result["table"] = table(rows, config["training"]["batch_size"])
    print(result["table"])
    return result
