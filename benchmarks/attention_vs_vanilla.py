"""The paper's claim at small scale: attention against the vanilla encoder-decoder.

Bahdanau et al. (2015), Figure 2: with the same training budget, the vanilla encoder-decoder
(the source squeezed into one fixed vector) degrades as sentences get longer, while the
attention model holds up. Here both models are trained on the embedded Bible corpus with
`configs/bible.yaml` (same sizes, epochs, batch size, learning rate and seed); the only change
is `model.attention: null` for the vanilla one. BLEU is then computed per source-length bucket
on the test split (995 verses), greedy decoding.

By default the attention side is the shipped pretrained model, which was trained with exactly
that config (see its `run.json`); pass `--train-attention` to train it again here. The config
bounds training by time (`max_minutes: 100`), so the vanilla side gets the same budget.

    python -m benchmarks attention_vs_vanilla            # up to 100 min on 2 CPU cores
    python -m benchmarks attention_vs_vanilla --epochs 1 --workdir /tmp/paper   # quick look
    python -m benchmarks attention_vs_vanilla --small    # both sides on the tiny dates model
    # the vanilla side for as many epochs as the shipped model ran, no early stopping
    python -m benchmarks attention_vs_vanilla --vanilla-epochs 21 --patience 21 \
        --workdir runs/paper-21

`--small` trains both models at the tests' tiny size on the dates task (1 epoch) and scores
100 test pairs: a check that the benchmark runs, not the paper's claim.

Writes benchmarks/results/attention_vs_vanilla.json and docs/bleu-by-length.png.
"""

import json
from pathlib import Path

from benchmarks import common
from benchmarks.harness import plot_path, work_dir

FIGURE = "bleu-by-length.png"
SMALL_CONFIG = common.TINY_CONFIG


def train_side(name, attention, epochs, workdir, seed, small=False, patience=None):
    """Trains `configs/bible.yaml` (small: the tiny dates model) with `model.attention`
    replaced (and `epochs`, `patience`, the early stopping patience, where given); reuses a
    finished run."""
    from seq2seq_attn.config import load_config, resolve_config
    from seq2seq_attn.training import train

    run_dir = workdir / name
    if (run_dir / "run.json").exists():
        print(f"{name}: reusing the finished run in {run_dir}")
        return run_dir
    config = resolve_config(json.loads(json.dumps(SMALL_CONFIG))) if small else load_config("bible")
    config["model"]["attention"] = attention
    if epochs is not None:
        config["training"]["epochs"] = epochs
    if patience is not None:
        config["training"]["early_stopping_patience"] = patience
    print(f"{name}: training {config['training']['epochs']} epochs into {run_dir}")
    train("dates" if small else "bible-en-es", config, run_dir, seed=seed)
    return run_dir


def plot(results, path, data="Bible en→es"):
    from seq2seq_attn.plots import plot_bleu_by_length

    epochs = {r["run"]["epochs_run"] for r in results.values()}
    budget = f"{epochs.pop()} epochs each" if len(epochs) == 1 else "same config"
    title = f"{data} test ({results['attention']['n']} sentences), {budget}, greedy"
    print(f"figure: {plot_bleu_by_length(results, path, title=title)}")


def add_arguments(parser):
    parser.add_argument("--workdir", type=Path, help="default runs/paper (small runs/benchmarks)")
    parser.add_argument("--epochs", type=int, default=None, help="default: the config's (5)")
    parser.add_argument("--train-attention", action="store_true")
    parser.add_argument(
        "--vanilla-epochs",
        type=int,
        help="the vanilla side's epochs, the attention side kept (e.g. the shipped model's 21)",
    )
    parser.add_argument(
        "--patience",
        type=int,
        help="early stopping patience of the trained sides (default: the config's, 4)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="test pairs (small: 100)")


def run(args):
    from seq2seq_attn.commands import PRETRAINED_DIR, evaluate_run

    small = args.small
    workdir = args.workdir or work_dir(small, "paper")
    limit = args.limit or (100 if small else None)
    runs = {
        "attention": (
            train_side(
                "attention", "bahdanau", args.epochs, workdir, args.seed, small, args.patience
            )
            if args.train_attention or args.epochs is not None or small
            else PRETRAINED_DIR
        ),
        "vanilla": train_side(
            "vanilla",
            None,
            args.vanilla_epochs or args.epochs,
            workdir,
            args.seed,
            small,
            args.patience,
        ),  # fmt: skip
    }
    results = {}
    for name, run_dir in runs.items():
        out = workdir / f"eval_{name}.json"
        results[name], _ = evaluate_run(run_dir, "test", limit=limit, out=out)
        run_info = json.loads((Path(run_dir) / "run.json").read_text())
        results[name]["run"] = {
            k: run_info.get(k)
            for k in ("epochs_run", "best_val_loss", "parameters", "train_seconds", "stopped_by")
        }
        print(f"{name}: test BLEU {results[name]['bleu']:.2f}")
    plot(results, plot_path(args, FIGURE), "dates" if small else "Bible en→es")
    for bucket in zip(*(results[n]["buckets"] for n in results), strict=False):
        print(bucket[0]["range"], *(f"{b['bleu']:.2f} (n={b['n']})" for b in bucket))
    return results
