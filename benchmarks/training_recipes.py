"""Training recipes under one wall-clock budget each: what the NMT-toolkit options buy.

On the embedded Bible corpus (en -> es), starting from the bundled `bible` config ("today's
recipe") and adding one option at a time, cumulatively:

    baseline        configs/bible.yaml as shipped: constant rate, checkpoint by dev loss
    +rsqrt          linear warm-up, then inverse square root decay
    +ema            exponential moving average of the weights
    +select_bleu    checkpoint and early stopping by dev BLEU
    +batch_tokens   batches by token count within the length buckets
    +tied           tied target embeddings / output projection

Each recipe trains with `training.max_minutes` set to the budget (so every recipe gets the
same wall-clock time, whatever its steps cost) from the same seed and the same SentencePiece
models, then its kept checkpoint is scored on the test split with greedy decoding (BLEU and
chrF, sacrebleu). The steps each recipe got are recorded: on a shared machine the budget buys
different numbers of steps at different times, and the load average is recorded with them.

    python -m benchmarks training_recipes                  # 20 min per recipe, ~2.5 h
    python -m benchmarks training_recipes --minutes 5 --test-limit 500
    python -m benchmarks training_recipes --small          # seconds: tiny dates model, 2 steps

Writes benchmarks/results/training_recipes.json (small: runs/benchmarks/training_recipes.json);
`--only` fills in the named recipes and keeps the others of that file.
"""

import copy
import inspect
import json
import os
import shutil
from pathlib import Path

from benchmarks import common, harness
from benchmarks.harness import clock

# Each recipe's changes on top of the previous one's (cumulative).
STEPS = (
    ("baseline", {}),
    ("+rsqrt", {"training": {"schedule": "rsqrt"}}),
    ("+ema", {"training": {}}),  # the decay comes from --ema
    ("+select_bleu", {"training": {"select_by": "bleu"}}),
    ("+batch_tokens", {"training": {}}),  # the budget comes from --batch-tokens
    ("+tied", {"model": {"tie_embeddings": True}}),
)
SMALL_STEPS = 2  # --small: each recipe stops after this many steps
SMALL_CONFIG = {
    "data": {"size": 300},
    "tokenizer": {"source_vocab_size": 120, "target_vocab_size": 30, "byte_fallback": False},
    "model": {"embedding_dim": 8, "units": 16, "attention_units": 16, "dropout": 0.0},
    "training": {  # the `bible` recipe's schedule and selection, as the full run starts from
        "batch_size": 32,
        "max_source_length": 40,
        "max_target_length": 16,
        "schedule": "constant",
        "select_by": "loss",
    },
}


def has_tied_embeddings():
    """Whether this version of the model has the `tie_embeddings` argument."""
    from seq2seq_attn.model import Seq2SeqAttention

    return "tie_embeddings" in inspect.signature(Seq2SeqAttention.__init__).parameters


def recipes(base, args):
    """`[(name, config)]`: each recipe adds its step to the previous one."""
    found, config = [], copy.deepcopy(base)
    extra = {
        "+rsqrt": {"warmup_steps": args.warmup_steps, "learning_rate": args.peak_rate},
        "+ema": {"ema": args.ema},
        "+select_bleu": {"dev_sample": args.dev_sample},
        "+batch_tokens": {"batch_tokens": args.batch_tokens},
    }
    for name, change in STEPS:
        config = copy.deepcopy(config)
        for section, values in change.items():
            config[section].update(values)
        config["training"].update(extra.get(name, {}))
        found.append((name, config))
    return found


def base_config(args):
    """The bundled `bible` config (or the small model), with the budget and the dev sample."""
    from seq2seq_attn.config import load_config, resolve_config

    config = resolve_config(copy.deepcopy(SMALL_CONFIG)) if args.small else load_config("bible")
    config["training"].update(
        epochs=1000,  # the budget stops training
        max_minutes=args.minutes,
        max_steps=args.max_steps,
        dev_sample=args.dev_sample,
    )
    return config


def run_recipe(name, config, data, run_dir, tokenizer_dir, test_limit):
    """Trains one recipe into `run_dir` from scratch and scores it on the test split."""
    from seq2seq_attn.commands import evaluate_run
    from seq2seq_attn.training import train

    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    shutil.copytree(tokenizer_dir, run_dir / "tokenizer")  # the same vocabularies for all
    load_before = os.getloadavg()
    info = train(data, config, run_dir, seed=common.SEED, verbose=0)
    started = clock()
    result, _ = evaluate_run(run_dir, "test", limit=test_limit)
    row = {
        "changes": {k: v for k, v in config["training"].items() if k in _CHANGED_KEYS},
        "tie_embeddings": bool(config["model"].get("tie_embeddings", False)),
        "steps": info["steps"],
        "epochs_run": info["epochs_run"],
        "stopped_by": info["stopped_by"],
        "train_seconds": info["train_seconds"],
        "kept": info["best"],
        "test_bleu": round(result["bleu"], 2),
        "test_chrf": round(result["chrf"], 2),
        "test_exact_match": result["exact_match"],
        "test_n": result["n"],
        "eval_seconds": round(clock() - started, 1),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(
        f"{name:14} {row['steps']:6d} steps  {row['epochs_run']:3d} epochs  "
        f"test BLEU {row['test_bleu']:6.2f}  chrF {row['test_chrf']:6.2f}",
        flush=True,
    )
    return row


_CHANGED_KEYS = (
    "schedule",
    "learning_rate",
    "warmup_steps",
    "ema",
    "select_by",
    "dev_sample",
    "batch_tokens",
    "batch_size",
)


def markdown_table(result):
    """The README table of a result."""
    lines = [
        "| recipe | steps | epochs | test BLEU | test chrF |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in result["recipes"].items():
        lines.append(
            f"| {name} | {row['steps']} | {row['epochs_run']} | {row['test_bleu']:.2f} "
            f"| {row['test_chrf']:.2f} |"
        )
    return "\n".join(lines)


def add_arguments(parser):
    parser.add_argument("--minutes", type=float, default=20.0, help="budget per recipe")
    parser.add_argument("--max-steps", type=int, help="also stop each recipe after N steps")
    parser.add_argument("--warmup-steps", type=int, default=400, help="rsqrt warm-up")
    parser.add_argument("--peak-rate", type=float, default=0.003, help="rsqrt peak rate")
    parser.add_argument("--ema", type=float, default=0.998, help="EMA decay")
    parser.add_argument("--batch-tokens", type=int, default=3000, help="tokens per batch")
    parser.add_argument("--dev-sample", type=int, default=300, help="dev pairs decoded")
    parser.add_argument("--test-limit", type=int, help="score the first N test pairs only")
    parser.add_argument("--only", nargs="+", help="run only these recipes (names as above)")
    parser.add_argument("--workdir", type=Path, help="the runs (default runs/recipes)")


def run(args):
    from seq2seq_attn.training import corpus_for, run_tokenizers

    if args.small and args.max_steps is None:
        args.max_steps = SMALL_STEPS
    data = "dates" if args.small else common.DATA
    base = base_config(args)
    out = args.workdir or harness.work_dir(args.small, "recipes")
    tokenizer_cache = out / "tokenizer-cache"
    if not (tokenizer_cache / "tokenizer").exists():
        run_tokenizers(tokenizer_cache, corpus_for(data, common.SEED, base), base["tokenizer"])
    result = {
        "data": data,
        "minutes_per_recipe": args.minutes,
        "max_steps": args.max_steps,
        "test_limit": args.test_limit,
        "recipes": {},
    }
    previous = args.out or harness.result_path("training_recipes", args.small)
    if args.only and previous.exists():  # fill in the named recipes, keep the others
        result["recipes"] = json.loads(previous.read_text())["figures"].get("recipes", {})
    for recipe, config in recipes(base, args):
        if args.only and recipe not in args.only:
            continue
        if config["model"].get("tie_embeddings") and not has_tied_embeddings():
            print(f"{recipe}: skipped, this model has no tie_embeddings argument", flush=True)
            continue
        run_dir = out / recipe.strip("+")
        try:
            result["recipes"][recipe] = run_recipe(
                recipe, config, data, run_dir, tokenizer_cache / "tokenizer", args.test_limit
            )
        except Exception as err:  # recorded in the results; the other recipes still run
            print(f"{recipe}: failed: {err!r}", flush=True)
            result.setdefault("failed", {})[recipe] = repr(err)
            continue
        harness.write_result("training_recipes", result, args, previous)  # a long run can stop
    best = max(result["recipes"], key=lambda r: result["recipes"][r]["test_bleu"], default=None)
    result["best_by_test_bleu"] = best
    result["table"] = markdown_table(result)
    print(result["table"])
    print(f"best: {best}")
    return result
