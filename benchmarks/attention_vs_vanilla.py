"""The paper's claim at small scale: attention against the vanilla encoder-decoder.

Bahdanau et al. (2015), Figure 2: with the same training budget, the vanilla encoder-decoder
(the source squeezed into one fixed vector) degrades as sentences get longer, while the
attention model holds up. Here both models are trained on the embedded Bible corpus with
`configs/bible.yaml` (same sizes, epochs, batch size, learning rate and seed); the only change
is `model.attention: null` for the vanilla one. BLEU is then computed per source-length bucket
on the test split (995 verses), greedy decoding.

By default the attention side is the shipped pretrained model, which was trained with exactly
that config (see its `run.json`); pass `--train-attention` to train it again here.

    python benchmarks/attention_vs_vanilla.py            # ~40 min on 2 CPU cores
    python benchmarks/attention_vs_vanilla.py --epochs 1 --workdir /tmp/paper   # quick look

Writes benchmarks/results/attention_vs_vanilla.json and docs/bleu-by-length.png.
"""

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "attention_vs_vanilla.json"
FIGURE = ROOT / "docs" / "bleu-by-length.png"


def _train(name, attention, epochs, workdir, seed):
    """Trains `configs/bible.yaml` with `model.attention` replaced; reuses a finished run."""
    from seq2seq_attn.config import load_config
    from seq2seq_attn.training import train

    run_dir = workdir / name
    if (run_dir / "run.json").exists():
        print(f"{name}: reusing the finished run in {run_dir}")
        return run_dir
    config = load_config("bible")
    config["model"]["attention"] = attention
    if epochs is not None:
        config["training"]["epochs"] = epochs
    print(f"{name}: training {config['training']['epochs']} epochs into {run_dir}")
    train("bible-en-es", config, run_dir, seed=seed)
    return run_dir


def plot(results, path):
    from seq2seq_attn.plots import plot_bleu_by_length

    epochs = {r["run"]["epochs_run"] for r in results.values()}
    budget = f"{epochs.pop()} epochs each" if len(epochs) == 1 else "same config"
    title = f"Bible en→es test ({results['attention']['n']} verses), {budget}, greedy"
    print(f"figure: {plot_bleu_by_length(results, path, title=title)}")


def main(argv=None):
    from seq2seq_attn.commands import PRETRAINED_DIR, evaluate_run

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "paper")
    parser.add_argument("--epochs", type=int, default=None, help="default: the config's (5)")
    parser.add_argument("--train-attention", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="test pairs to score")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--figure", type=Path, default=FIGURE)
    parser.add_argument("--plot-only", action="store_true", help="redraw from --results")
    args = parser.parse_args(argv)
    if args.plot_only:
        return plot(json.loads(args.results.read_text()), args.figure)

    runs = {
        "attention": (
            _train("attention", "bahdanau", args.epochs, args.workdir, args.seed)
            if args.train_attention or args.epochs is not None
            else PRETRAINED_DIR
        ),
        "vanilla": _train("vanilla", None, args.epochs, args.workdir, args.seed),
    }
    results = {}
    for name, run_dir in runs.items():
        out = args.workdir / f"eval_{name}.json"
        results[name], _ = evaluate_run(run_dir, "test", limit=args.limit, out=out)
        run_info = json.loads((Path(run_dir) / "run.json").read_text())
        results[name]["run"] = {
            k: run_info[k] for k in ("epochs_run", "best_val_loss", "parameters", "train_seconds")
        }
        print(f"{name}: test BLEU {results[name]['bleu']:.2f}")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2))
    plot(results, args.figure)
    for bucket in zip(*(results[n]["buckets"] for n in results), strict=False):
        print(bucket[0]["range"], *(f"{b['bleu']:.2f} (n={b['n']})" for b in bucket))
    print(f"written {args.results}")


if __name__ == "__main__":
    sys.exit(main())
