"""Figure 2 of Bahdanau et al. (2015) on a task small enough to see it on 2 CPU cores.

Reversing a sequence of random symbols needs the whole source, in order: exactly what a
vanilla encoder-decoder has to squeeze into its one final state, and what attention reads back
position by position. Both models (same sizes, optimizer, data and epochs; the only difference
is `attention="bahdanau"` against `attention=None`) train on sequences of 4 to 30 symbols; the
figure shows exact-match accuracy of greedy decoding by source length on held-out sequences.

    python -m benchmarks reverse_by_length          # ~5 min on 2 CPU cores
    python -m benchmarks reverse_by_length --small  # 500 sequences of 4-10 symbols, 1 epoch

Writes benchmarks/results/reverse_by_length.json and docs/reverse-by-length.png.
"""

import numpy as np

from benchmarks.harness import fill_defaults, plot_path

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


def add_arguments(parser):
    parser.add_argument("--train", type=int, help="training sequences (8000, small 500)")
    parser.add_argument("--test", type=int, help="held-out sequences (1500, small 200)")
    parser.add_argument("--epochs", type=int, help="(6, small 1)")
    parser.add_argument("--max-length", type=int, help="(30, small 10)")
    parser.add_argument("--seed", type=int, default=0)


def run(args):
    full = {"train": 8000, "test": 1500, "epochs": 6, "max_length": 30}
    fill_defaults(args, full, {"train": 500, "test": 200, "epochs": 1, "max_length": 10})
    rng = np.random.default_rng(args.seed)
    train = reverse_task(args.train, rng, 4, args.max_length)
    test = reverse_task(args.test, rng, 4, args.max_length)
    result = {key: getattr(args, key) for key in ("train", "test", "epochs", "max_length", "seed")}
    result["exact_match_by_length"] = {}
    for name, attention in (("attention", "bahdanau"), ("vanilla", None)):
        by_length = exact_by_length(attention, train, test, args.epochs, args.seed)
        result["exact_match_by_length"][name] = {str(n): v for n, v in by_length.items()}
        print(name, " ".join(f"{n}:{v:.2f}" for n, v in by_length.items()), flush=True)
    plot(result, plot_path(args, "reverse-by-length.png"))
    return result
