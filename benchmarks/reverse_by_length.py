"""Figure 2 of Bahdanau et al. (2015) on a task small enough to see it on 2 CPU cores.

Reversing a sequence of random symbols needs the whole source, in order: exactly what a
vanilla encoder-decoder has to squeeze into its one final state, and what attention reads back
position by position. Both models (same sizes, optimizer, data and epochs; the only difference
is `attention="bahdanau"` against `attention=None`) train on sequences of 4 to 30 symbols; the
figure shows exact-match accuracy of greedy decoding by source length on held-out sequences.

    python benchmarks/reverse_by_length.py      # ~5 min on 2 CPU cores

Writes benchmarks/results/reverse_by_length.json and docs/reverse-by-length.png.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

SYMBOLS = 20  # ids 4 .. 23; 0 padding, 2 [START], 3 [END]


def reverse_task(n, rng, low, high):
    """`n` random sequences of `low`..`high` symbols and their reversal, padded.

    Returns:
        `(source, target_in, target_out)` int32 arrays.
    """
    source = np.zeros((n, high), "int32")
    target_in = np.zeros((n, high + 1), "int32")
    target_out = np.zeros((n, high + 1), "int32")
    for i in range(n):
        k = rng.integers(low, high + 1)
        seq = rng.integers(4, 4 + SYMBOLS, size=k)
        source[i, :k] = seq
        target_in[i, 0], target_in[i, 1 : k + 1] = 2, seq[::-1]
        target_out[i, :k], target_out[i, k] = seq[::-1], 3
    return source, target_in, target_out


def exact_by_length(attention, train, test, epochs, seed):
    """Trains one model; returns `{length: exact-match fraction}` on `test`."""
    import keras
    import tensorflow as tf

    from seq2seq_attn import Seq2SeqAttention

    keras.utils.set_random_seed(seed)
    vocab = 4 + SYMBOLS
    model = Seq2SeqAttention(vocab, vocab, embedding_dim=32, units=64, attention=attention)
    model.compile(keras.optimizers.Adam(2e-3, clipnorm=1.0))
    data = tf.data.Dataset.from_tensor_slices(((train[0], train[1]), train[2]))
    model.fit(data.shuffle(10_000, seed=seed).batch(64), epochs=epochs, verbose=0)
    source, _, target_out = test
    tokens = model.generate(source, max_length=target_out.shape[1])["tokens"].numpy()
    lengths = (source != 0).sum(1)
    exact = np.array(
        [np.array_equal(tokens[i, : n + 1], target_out[i, : n + 1]) for i, n in enumerate(lengths)]
    )
    return {int(n): float(exact[lengths == n].mean()) for n in np.unique(lengths)}


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for name, by_length in result["exact_match_by_length"].items():
        lengths = sorted(int(n) for n in by_length)
        ax.plot(lengths, [by_length[str(n)] for n in lengths], marker="o", ms=3, label=name)
    ax.set_xlabel("source length (symbols)")
    ax.set_ylabel("exact match (greedy)")
    ax.set_title(f"Reversing random sequences, {result['epochs']} epochs each")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=8000, help="training sequences")
    parser.add_argument("--test", type=int, default=1500, help="held-out sequences")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--max-length", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    train = reverse_task(args.train, rng, 4, args.max_length)
    test = reverse_task(args.test, rng, 4, args.max_length)
    result = {"machine": common.machine(), **vars(args), "exact_match_by_length": {}}
    for name, attention in (("attention", "bahdanau"), ("vanilla", None)):
        by_length = exact_by_length(attention, train, test, args.epochs, args.seed)
        result["exact_match_by_length"][name] = {str(n): v for n, v in by_length.items()}
        print(name, " ".join(f"{n}:{v:.2f}" for n, v in by_length.items()), flush=True)
    path = common.write_result("reverse_by_length", result)
    plot(result, common.ROOT / "docs" / "reverse-by-length.png")
    print(f"written {path}")


if __name__ == "__main__":
    sys.exit(main())
