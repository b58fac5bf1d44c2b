"""Time to quality: dev BLEU against training minutes, the TF tutorial's code against our recipes.

What a user waits for is quality, not steps: two models that do different arithmetic per
step cannot be compared by steps per second. On the tutorial-size data
(`tutorial_size.tutorial_data()`: short pairs cut from Bible training verses, split once by
`seq2seq-attn train`'s own file split), each implementation trains in its own child process
while a probe (`QualityProbe`) translates the first `--dev-sample` dev sources greedily
every `--every` training minutes and scores them with sacrebleu (BLEU, chrF). The probe's own
time is not training time; everything else `model.fit` does is (ours: each epoch's dev loss
and dev BLEU, checkpointing, as `seq2seq-attn train` does them).

- `tutorial`: `tutorial_nmt.Translator` (the tutorial's model, Adam at 0.001, batches of 64
  padded to the longest, reshuffled each epoch), decoded by the tutorial's own exported greedy
  loop (`tutorial_nmt.Export`), on the same SentencePiece ids;
- a recipe of `RECIPES`: `seq2seq_attn.training.train` as `seq2seq-attn train` runs it with
  only the sizes set (`SIZE`: the tutorial's 256 units, 5000 pieces a side) plus the recipe's
  keys; `default` adds nothing, so it measures what a user gets without a config. The one
  other change: `epochs` is large so that the probe's budget, not the default 10 epochs,
  ends the curve (early stopping stays the default's). A recipe with its own `max_minutes`
  (`default_3min`: what `seq2seq-attn train --max-minutes 3` does), or every recipe with
  `--budgeted` (`max_minutes` = `--minutes`), trains to that budget as `train` does, its
  learning-rate cool-down included, and is probed once more where the budget stops it.

Implementations take turns seed by seed (tutorial, then each recipe), so drift on a shared
machine hits all alike; several `--seeds` show the spread. The summary gives, for each recipe
and seed, its BLEU at every minute, the first minute at which it reached the tutorial's BLEU at
the last minute, and whether it was ahead of the tutorial at every minute after the first.

    python -m benchmarks time_to_quality                                  # ~60 min
    python -m benchmarks time_to_quality --recipes default,lr3e-3_ls --minutes 4 --no-tutorial
    python -m benchmarks time_to_quality --small                          # tiny, seconds
    python -m benchmarks time_to_quality --data bible --no-tutorial --recipes bible_yaml,default \\
        --out runs/time_to_quality_bible.json       # the Bible corpus at the `bible` sizes
    python -m benchmarks time_to_quality --data-file ui-en-es.tsv --recipes default_3min \\
        --out runs/ttq-ui.json                      # your own pairs, never seen here

Writes benchmarks/results/time_to_quality.json and docs/time-to-quality.png (small:
runs/benchmarks/; with `--out FILE`, the plot goes beside FILE).
"""

import copy
import json
import multiprocessing
import os
import shutil
import time
from pathlib import Path

import keras

from benchmarks import common, tutorial_nmt, tutorial_size
from benchmarks.harness import ROOT, clock, fill_defaults, plot_path, work_dir
from seq2seq_attn.evaluation import score

NAME = "time_to_quality"
SIZE = {
    "tokenizer": {"source_vocab_size": 5000, "target_vocab_size": 5000},
    "model": {"embedding_dim": 256, "units": 256, "attention_units": 256},
}
SMALL_SIZE = {
    "tokenizer": {"source_vocab_size": 500, "target_vocab_size": 500},
    "model": {"embedding_dim": 16, "units": 16, "attention_units": 16},
}
# The training keys of the default before decision 0035 (what the recipes below started from).
BEFORE_0035 = {
    "learning_rate": 1e-3,
    "label_smoothing": 0.0,
    "schedule": "constant",
    "warmup_steps": 1000,
    "select_by": "loss",
}


def _before(training=None, **sections):
    """A recipe: the training keys before decision 0035, changed by `training`."""
    return {"training": {**BEFORE_0035, **(training or {})}, **sections}


_LS3 = {"learning_rate": 3e-3, "label_smoothing": 0.1}
# Each recipe: config keys on top of the defaults and the sizes, named by what they change
# (`default` adds nothing: what `seq2seq-attn train` does without a config today, bfloat16
# on a CPU with AMX since decision 0037).
RECIPES = {
    "default": {},
    "before_0035": _before(),
    "lr2e-3_ls": _before({"learning_rate": 2e-3, "label_smoothing": 0.1}),
    "lr3e-3_ls": _before(_LS3),
    "lr5e-3_ls": _before({"learning_rate": 5e-3, "label_smoothing": 0.1}),
    "lr3e-3_ls_bf16": _before({**_LS3, "mixed_precision": "mixed_bfloat16"}),
    "lr3e-3_ls_b32": _before({**_LS3, "batch_size": 32}),
    "lr3e-3_ls_tied": _before(_LS3, model={"tie_embeddings": True}),
    "lr3e-3_ls_drop": _before(_LS3, model={"dropout": 0.1}),
    "lr3e-3_ls_ema": _before({**_LS3, "ema": 0.999}),
    "rsqrt5e-3_ls": _before(
        {"learning_rate": 5e-3, "label_smoothing": 0.1, "schedule": "rsqrt", "warmup_steps": 200}
    ),
    "default_bf16": {"training": {"mixed_precision": "mixed_bfloat16"}},
    "default_fp32": {"training": {"mixed_precision": False}},  # the default before 0037
    "default_w100": {"training": {"warmup_steps": 100}},
    "default_dev200": {"training": {"dev_sample": 200}},  # train's own dev BLEU on 200 pairs
    "default_drop": {"model": {"dropout": 0.1}},
    "default_b32": {"training": {"batch_size": 32}},
    # Twice the batch: half the updates in a budget, each at a higher peak and a shorter warm-up.
    "default_b128": {"training": {"batch_size": 128, "learning_rate": 7e-3, "warmup_steps": 100}},
    # With a budget (--budgeted, or the recipe's own `max_minutes`) the rate falls to zero over
    # its last 20% / 40% / 60% / all / none of it (decision 0039; 0.4 is the default since).
    "default_cd20": {"training": {"cooldown": 0.2}},
    "default_cd40": {"training": {"cooldown": 0.4}},
    "default_cd60": {"training": {"cooldown": 0.6}},
    "default_cd100": {"training": {"cooldown": 1.0}},  # a straight line from the first update
    "default_cd0": {"training": {"cooldown": 0.0}},
    # Each batch's softmax over its own target pieces and the 500 / 0 most frequent
    # (`candidate_softmax`, decision 0042).
    "default_cs500": {"training": {"candidate_softmax": 500}},
    "default_cs0": {"training": {"candidate_softmax": 0}},
    # ... and with a budget the cool-down too (by default it trains the full softmax).
    "default_cs0_cands": {"training": {"candidate_softmax": 0, "full_softmax_cooldown": False}},
    # What `seq2seq-attn train --max-minutes 3` does without a config (issue 35's check):
    # since decision 0043 the candidate softmax, the full one in the cool-down; before it,
    # the full softmax throughout.
    "default_3min": {"training": {"max_minutes": 3.0}},
    "default_3min_full": {"training": {"max_minutes": 3.0, "candidate_softmax": None}},
    "default_cs0_3min": {"training": {"max_minutes": 3.0, "candidate_softmax": 0}},
    # ... with Luong's input feeding (the output layer reads `units` features, not
    # `units + memory_units`), or with the output layer tied to the target embedding.
    "default_3min_if": {"training": {"max_minutes": 3.0}, "model": {"input_feeding": True}},
    "default_3min_tied": {"training": {"max_minutes": 3.0}, "model": {"tie_embeddings": True}},
    # ... with a higher peak rate (5e-3 is the default's), or half the warm-up (200 updates).
    "default_3min_lr8e-3": {"training": {"max_minutes": 3.0, "learning_rate": 8e-3}},
    "default_3min_lr1.2e-2": {"training": {"max_minutes": 3.0, "learning_rate": 1.2e-2}},
    "default_3min_w100": {"training": {"max_minutes": 3.0, "warmup_steps": 100}},
    # ... in bfloat16 where `auto` keeps float32 (a CPU with AVX512-BF16 but no AMX).
    "default_3min_bf16": {"training": {"max_minutes": 3.0, "mixed_precision": "mixed_bfloat16"}},
    "bible_yaml": None,  # the bundled `bible` config's training section (`recipe_config`)
}
FULL = {
    "minutes": 12.0,
    "every": 1.0,
    "dev_sample": 500,
    "recipes": "default,default_3min",
    "seeds": "0,1",
}
SMALL = {"minutes": 0.15, "every": 0.05, "dev_sample": 20, "recipes": "default", "seeds": "0"}
SMALL_PAIRS = 1500
TUTORIAL = "tutorial"


def add_arguments(parser):
    parser.add_argument("--minutes", type=float, help="training minutes per run (default 12)")
    parser.add_argument("--every", type=float, help="minutes between probes (default 1)")
    parser.add_argument("--dev-sample", type=int, help="dev pairs each probe translates")
    parser.add_argument("--recipes", help=f"comma-separated, of: {', '.join(RECIPES)}")
    parser.add_argument("--seeds", help="comma-separated training seeds (default 0)")
    parser.add_argument("--no-tutorial", action="store_true", help="only our recipes")
    parser.add_argument(
        "--budgeted",
        action="store_true",
        help="our recipes train with max_minutes = --minutes, as `train --max-minutes` does",
    )
    parser.add_argument(
        "--data",
        choices=("tutorial", "bible"),
        default="tutorial",
        help="tutorial-size pairs (default), or the Bible corpus at the bundled config's sizes",
    )
    parser.add_argument(
        "--data-file",
        type=Path,
        help="your own pairs (.tsv or .csv, source then target) at the tutorial's sizes, in "
        "place of the tutorial-size pairs: how both compare on data this project has never "
        "seen (needs --out)",
    )


def sizes(data="tutorial", small=False):
    """The `tokenizer` and `model` sizes of the runs: the tutorial's, the bundled `bible`
    config's (`--data bible`), or tiny ones."""
    if small:
        return copy.deepcopy(SMALL_SIZE)
    if data == "bible":
        from seq2seq_attn.config import load_config

        bible = load_config("bible")
        return {"tokenizer": bible["tokenizer"], "model": bible["model"]}
    return copy.deepcopy(SIZE)


def recipe_config(name, small=False, data="tutorial"):
    """The resolved config of recipe `name`: defaults, sizes, the recipe's keys, many epochs.

    `bible_yaml` is the training section of the bundled `bible` config (the recipe the shipped
    model was trained with)."""
    from seq2seq_attn.config import load_config, resolve_config

    raw = sizes(data, small)
    change = copy.deepcopy(RECIPES[name])
    if change is None:
        change = {"training": load_config("bible")["training"]}
    for section, values in change.items():
        raw.setdefault(section, {}).update(values)
    config = resolve_config(raw)
    config["training"]["epochs"] = 1000  # the probe's budget ends the run
    return config


class QualityProbe(keras.callbacks.Callback):
    """Dev BLEU every `every` training minutes; the probe's own time is not training time.

    Training minutes are wall-clock minutes since `fit` began less the probe's own time. After
    the first batch that ends past a multiple of `every` (one probe for the marks a long batch
    passed), `translate(sources)` gives greedy
    translations of the dev sources, scored against their references; once `minutes` have
    passed it stops training. `points`: one dict per probe (minute, trained minutes, optimizer
    step, BLEU, chrF, the probe's seconds).

    Args:
        translate: Callable, list of source strings -> list of translations.
        pairs: `(source, reference)` dev strings.
        minutes: Positive float, the training budget.
        every: Positive float, minutes between probes.
    """

    def __init__(self, translate, pairs, minutes, every, clock=time.monotonic):
        super().__init__()
        self.translate, self.pairs = translate, list(pairs)
        self.minutes, self.every, self.clock = minutes, every, clock
        self.points = []

    def on_train_begin(self, logs=None):
        self._started, self._paused, self._next = self.clock(), 0.0, self.every

    def trained_minutes(self):
        return (self.clock() - self._started - self._paused) / 60

    def on_train_batch_end(self, batch, logs=None):
        trained = self.trained_minutes()
        if trained >= self._next:
            self._probe(trained, self._next)

    def on_train_end(self, logs=None):
        """A run stopped by its own `max_minutes` (which counts the probes' time too) ends a
        little before the last mark: it is probed once more, at that mark."""
        trained = self.trained_minutes()
        last = self.points[-1]["trained_minutes"] if self.points else 0.0
        if trained > last + 0.01 and trained >= self._next - 0.05 * self.every:
            self._probe(trained, self._next)

    def _probe(self, trained, mark):
        began = self.clock()
        sources = [s for s, _ in self.pairs]
        result = score(self.translate(sources), [t for _, t in self.pairs], sources)
        self.points.append(
            {
                "minute": round(mark, 3),
                "trained_minutes": round(trained, 3),
                "step": int(self.model.optimizer.iterations.numpy()),
                "bleu": round(result["bleu"], 2),
                "chrf": round(result["chrf"], 2),
                "probe_seconds": round(self.clock() - began, 1),
            }
        )
        while self._next <= trained + 1e-9:  # a long batch (the first: tracing) skips marks
            self._next += self.every
        self._paused += self.clock() - began
        if trained >= self.minutes - 1e-9:
            self.model.stop_training = True


# ---- the children: one implementation each ----


def _ours(spec):
    """Trains recipe `spec["recipe"]` as `seq2seq-attn train` does, probing as it goes."""
    from seq2seq_attn.callbacks import DevScores, averaged_weights
    from seq2seq_attn.tokenizer import TokenizerPair
    from seq2seq_attn.training import train

    config = recipe_config(spec["recipe"], spec["small"], spec["data"])
    if spec["budgeted"]:  # as `seq2seq-attn train --max-minutes M` does (a cool-down ends there)
        config["training"]["max_minutes"] = spec["minutes"]
    minutes = min(spec["minutes"], config["training"]["max_minutes"] or spec["minutes"])
    run_dir = Path(spec["run_dir"])
    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.copytree(spec["tokenizer_dir"], run_dir / "tokenizer")  # the same pieces for all
    scorer = DevScores(spec["dev"], TokenizerPair.load(run_dir / "tokenizer"))

    def translate(sources):
        scorer.set_model(probe.model)
        with averaged_weights(probe.model):
            return scorer.translate(sources)

    probe = QualityProbe(translate, spec["dev"], minutes, spec["every"])
    files = {"train": spec["files"]["train"], "dev": spec["files"]["dev"]}
    info = train(
        None, config, run_dir, seed=spec["seed"], verbose=0, callbacks=[probe], files=files
    )
    return probe.points, {
        "steps": info["steps"],
        "epochs_run": info["epochs_run"],
        "stopped_by": "probe"
        if info["stopped_by"] == "early_stopping" and _probe_done(probe)
        else info["stopped_by"],
        "parameters": info.get("parameters"),
        "dtype_policy": info.get("dtype_policy"),  # `mixed_precision: auto` as resolved
        "training": {k: config["training"][k] for k in _SHOWN_KEYS},
        "model": config["model"],
    }


_SHOWN_KEYS = (
    "batch_size",
    "batch_tokens",
    "learning_rate",
    "schedule",
    "warmup_steps",
    "label_smoothing",
    "ema",
    "mixed_precision",
    "select_by",
)


def _probe_done(probe):
    return bool(probe.points) and probe.points[-1]["trained_minutes"] >= probe.minutes - 1e-9


def _tutorial(spec):
    """Trains the tutorial's model on its own batches, probing with its exported greedy loop."""
    import numpy as np
    import tensorflow as tf

    from seq2seq_attn.corpora import read_pairs
    from seq2seq_attn.interface import trim_after_end
    from seq2seq_attn.tokenizer import TokenizerPair

    tokenizers = TokenizerPair.load(spec["tokenizer_dir"])
    source, target = tokenizers.source, tokenizers.target
    pairs = [(source.encode(s), target.encode(t)) for s, t in read_pairs(spec["files"]["train"])]
    units = sizes(spec["data"], spec["small"])["model"]["units"]
    keras.utils.set_random_seed(spec["seed"])
    model = tutorial_nmt.build_translator(source.vocab_size, target.vocab_size, units=units)
    per_epoch = len(pairs) // tutorial_nmt.BATCH_SIZE

    def batches():
        for epoch in range(10**6):  # reshuffled each epoch, as the tutorial's shuffle does
            yield from tutorial_nmt.tutorial_batches(pairs, per_epoch, seed=spec["seed"] + epoch)

    ids = tf.TensorSpec([None, None], tf.int32)
    dataset = tf.data.Dataset.from_generator(batches, output_signature=((ids, ids), ids))
    export = tutorial_nmt.Export(model, start_id=2, end_id=3, max_length=80)

    def translate(sources):
        rows = [source.encode(s) for s in sources]
        out = [""] * len(rows)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        for start in range(0, len(order), 64):
            chunk = order[start : start + 64]
            batch = np.zeros((len(chunk), max(len(rows[i]) for i in chunk)), np.int32)
            for row, i in enumerate(chunk):
                batch[row, : len(rows[i])] = rows[i]
            tokens = export.translate_ids(tf.constant(batch))["tokens"].numpy()
            for row, i in enumerate(chunk):
                out[i] = target.decode(trim_after_end(tokens[row], 3))
        return out

    probe = QualityProbe(translate, spec["dev"], spec["minutes"], spec["every"])
    model.fit(dataset, epochs=10**6, steps_per_epoch=per_epoch, callbacks=[probe], verbose=0)
    return probe.points, {
        "steps": int(model.optimizer.iterations.numpy()),
        "epochs_run": int(model.optimizer.iterations.numpy()) // per_epoch,
        "parameters": int(model.count_params()),
        "training": {"batch_size": tutorial_nmt.BATCH_SIZE, "learning_rate": 1e-3},
    }


def child(spec, out_path):
    """One implementation in this (spawned) process; writes its points and facts as JSON."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    load_before = os.getloadavg()
    began = clock()
    points, facts = (_tutorial if spec["impl"] == TUTORIAL else _ours)(spec)
    result = {
        "impl": spec["impl"],
        "seed": spec["seed"],
        "points": points,
        **facts,
        "wall_seconds": round(clock() - began, 1),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    Path(out_path).write_text(json.dumps(result))


def _in_child(spec, folder):
    out_path = Path(folder) / f"{spec['impl']}-{spec['seed']}.json"
    out_path.unlink(missing_ok=True)
    process = multiprocessing.get_context("spawn").Process(target=child, args=(spec, out_path))
    process.start()
    process.join()
    if process.exitcode:
        raise SystemExit(f"{spec['impl']} (seed {spec['seed']}) failed: exit {process.exitcode}")
    return json.loads(out_path.read_text())


# ---- the parent ----


def prepare(folder, small, data="tutorial", data_file=None):
    """Splits the data once (train/dev files) and trains the shared SentencePiece models."""
    from seq2seq_attn.training import corpus_for, run_tokenizers

    config = recipe_config("default", small, data)
    own = data_file is not None
    if own:
        data_file = Path(data_file)
    elif small:
        data_file = tutorial_size.tutorial_data(folder / "short.tsv", SMALL_PAIRS)
    elif data == "bible":
        data_file = Path(common.DATA)
    else:
        data_file = tutorial_size.DATA_FILE
        if not data_file.exists():
            tutorial_size.tutorial_data()
    corpus = corpus_for(str(data_file), common.SEED, config)
    files = {}
    for split in ("train", "dev"):
        files[split] = str(folder / f"{split}.tsv")
        rows = getattr(corpus, split)
        Path(files[split]).write_text("".join(f"{s}\t{t}\n" for s, t in rows))
    shutil.rmtree(folder / "shared", ignore_errors=True)
    run_tokenizers(folder / "shared", corpus, config["tokenizer"])
    shown = data_file.relative_to(ROOT) if data_file.is_relative_to(ROOT) else data_file
    data = {
        "file": data_file.name if (small or data == "bible") and not own else str(shown),
        "train_pairs": len(corpus.train),
        "dev_pairs": len(corpus.dev),
    }
    return files, corpus.dev, str(folder / "shared" / "tokenizer"), data


def run(args):
    fill_defaults(args, FULL, SMALL)
    recipes = [name.strip() for name in args.recipes.split(",") if name.strip()]
    unknown = [name for name in recipes if name not in RECIPES]
    if unknown:
        raise SystemExit(f"unknown recipe(s) {', '.join(unknown)}; known: {', '.join(RECIPES)}")
    seeds = [int(seed) for seed in args.seeds.split(",")]
    suffix = "" if args.data == "tutorial" else f"-{args.data}"
    if args.data_file is not None:
        if args.out is None or args.data != "tutorial":
            raise SystemExit("--data-file needs --out (the result file) and the tutorial sizes")
        if not args.data_file.is_file():
            raise SystemExit(f"--data-file {args.data_file}: no such file")
        suffix = f"-{args.data_file.stem}"
    folder = work_dir(args.small, NAME + suffix)
    folder.mkdir(parents=True, exist_ok=True)
    files, dev, tokenizer_dir, data = prepare(folder, args.small, args.data, args.data_file)
    impls = ([] if args.no_tutorial else [TUTORIAL]) + recipes
    runs = []
    for seed in seeds:
        for impl in impls:
            spec = {
                "impl": impl,
                "recipe": impl,
                "seed": seed,
                "small": args.small,
                "data": args.data,
                "minutes": args.minutes,
                "budgeted": args.budgeted,
                "every": args.every,
                "files": files,
                "dev": dev[: args.dev_sample],
                "tokenizer_dir": tokenizer_dir,
                "run_dir": str(folder / f"run-{impl}-{seed}"),
            }
            result = _in_child(spec, folder)
            curve = ", ".join(f"{p['bleu']:.1f}" for p in result["points"])
            print(f"{impl} seed {seed}: BLEU by minute {curve}", flush=True)
            runs.append(result)
    figures = summarize(runs, args, data)
    # An exploration with its own --out keeps its plot beside it, not over docs/'s.
    name = "time-to-quality.png"
    path = Path(args.out).with_suffix(".png") if args.out else plot_path(args, name)
    figures["plot"] = plot(runs, path, args)
    return figures


def _by_minute(result):
    return {p["minute"]: p["bleu"] for p in result["points"]}


def _mean_curve(runs, impl):
    """`{minute: mean BLEU over the seeds}` of one implementation."""
    curves = [_by_minute(r) for r in runs if r["impl"] == impl]
    minutes = sorted(set().union(*curves)) if curves else []
    return {
        m: round(sum(c[m] for c in curves if m in c) / sum(m in c for c in curves), 2)
        for m in minutes
    }


def _against_tutorial(result, tutorial):
    """How run `result` compares with the tutorial's run of the same seed."""
    ours, theirs = _by_minute(result), _by_minute(tutorial)
    final = theirs[max(theirs)]
    reached = [m for m in sorted(ours) if ours[m] >= final]
    shared = [m for m in sorted(ours) if m in theirs and m > min(theirs)]
    return {
        "tutorial_final_bleu": final,
        "minutes_to_tutorial_final": reached[0] if reached else None,
        "ahead_after_first_minute": all(ours[m] > theirs[m] for m in shared),
    }


def summarize(runs, args, data):
    """Curves, the comparison with the tutorial seed by seed, and one markdown table."""
    impls = list(dict.fromkeys(r["impl"] for r in runs))
    curves = {impl: _mean_curve(runs, impl) for impl in impls}
    tutorial = {r["seed"]: r for r in runs if r["impl"] == TUTORIAL}
    compared = {}
    for result in runs:
        if result["impl"] != TUTORIAL and result["seed"] in tutorial:
            row = _against_tutorial(result, tutorial[result["seed"]])
            compared.setdefault(result["impl"], {})[str(result["seed"])] = row
    minutes = sorted(set().union(*curves.values())) if curves else []
    header = "| minutes | " + " | ".join(impls) + " |\n|---:|" + "---:|" * len(impls) + "\n"
    body = "".join(
        f"| {m:g} | " + " | ".join(f"{curves[i].get(m, float('nan')):.2f}" for i in impls) + " |\n"
        for m in minutes
    )
    goal = {}
    for impl, by_seed in compared.items():
        reached = [row["minutes_to_tutorial_final"] for row in by_seed.values()]
        goal[impl] = {
            "reached_tutorial_final_within_3_minutes": all(
                m is not None and m <= 3 for m in reached
            ),
            "ahead_at_every_minute_after_the_first": all(
                row["ahead_after_first_minute"] for row in by_seed.values()
            ),
        }
    return {
        "data": data,
        "minutes": args.minutes,
        "budgeted": args.budgeted,
        "every": args.every,
        "dev_sample": min(args.dev_sample, data["dev_pairs"]),
        "seeds": sorted({r["seed"] for r in runs}),
        "runs": runs,
        "mean_bleu_by_minute": {
            impl: {f"{m:g}": b for m, b in c.items()} for impl, c in curves.items()
        },
        "against_tutorial": compared,
        "goal": goal,
        "table": header + body,
    }


def plot(runs, path, args):
    """Dev BLEU against training minutes, one line per run (a colour per implementation)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    colours = {}
    for result in runs:
        impl = result["impl"]
        colour = colours.setdefault(impl, f"C{len(colours)}")
        xs = [p["minute"] for p in result["points"]]
        ys = [p["bleu"] for p in result["points"]]
        label = impl if impl not in [line.get_label() for line in ax.lines] else None
        style = "--" if impl == TUTORIAL else "-"
        ax.plot(xs, ys, style, marker="o", markersize=3, color=colour, label=label)
    ax.set_xlabel("training minutes (the probe's own time excluded)")
    ax.set_ylabel("dev BLEU (greedy)")
    ax.set_title(f"Time to quality, tutorial-size data, seeds {args.seeds}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
