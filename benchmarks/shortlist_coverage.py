"""Lexical shortlist sizes: reference coverage and candidate-set size, and the build time.

For each `top_k` x `frequent`, the share of the test split's reference target pieces that lie
inside their own sentence's candidate set (the union of its source pieces' top-k targets by
IBM model 1, the `frequent` most frequent target pieces and the special ids;
`seq2seq_attn.shortlist`) and the average candidate-set size against the full target
vocabulary. Two data sets:

- `bible`: the shipped pretrained run `seq2seq_attn/pretrained/bible-en-es` (its tokenizers,
  its training split, its test split); also the time `seq2seq_attn.shortlist.build_for_run`
  takes at the default sizes, against the training time its run.json records;
- `tutorial`: the tutorial-size short pairs (`benchmarks.tutorial_size.tutorial_data`, 17,000
  pairs) with 5000-piece tokenizers trained on their training split as that benchmark does.

One EM run per data set; every size is read off the same translation table.

    python -m benchmarks shortlist_coverage          # ~2 min on 2 CPU cores
    python -m benchmarks shortlist_coverage --small  # 2000 training pairs, 200 test pairs

Writes benchmarks/results/shortlist_coverage.json.
"""

import json
import tempfile
from pathlib import Path

from benchmarks import common, tutorial_size
from benchmarks.harness import ROOT, Timer, fill_defaults

PRETRAINED = ROOT / "seq2seq_attn" / "pretrained" / "bible-en-es"
TOP_K = (5, 10, 20, 50, 100, 200)
FREQUENT = (100, 250, 500, 1000)


def size_table(source, target, prob, train, test, vocab, top_ks, frequents):
    """Coverage and mean candidate-set size of the test pairs for every size."""
    from seq2seq_attn import shortlist as sl

    top = sl.top_targets(source, target, prob, vocab[0], max(top_ks))
    rows = []
    for k in top_ks:
        for n in frequents:
            common_ids = sl.most_frequent(train[1], vocab[1], n)
            short = sl.Shortlist(top[:, :k], common_ids, vocab[1])
            measured = sl.coverage(short, *test)
            rows.append({"top_k": k, "frequent": n, **_rounded(measured)})
            print(
                f"top_k {k:3} frequent {n:4}: coverage {measured['coverage']:.4f}, "
                f"{measured['mean_candidates']:.0f} candidates",
                flush=True,
            )
    return rows


def _rounded(measured):
    return {key: round(value, 4) for key, value in measured.items()}


def measure(name, tokenizers, corpus, args):
    """The size table of one data set, plus its EM time."""
    from seq2seq_attn import shortlist as sl

    train_pairs, test_pairs = corpus.train[: args.pairs], corpus.test[: args.test]
    train = sl.encode_pairs(train_pairs, tokenizers)
    test = sl.encode_pairs(test_pairs, tokenizers)
    vocab = (tokenizers.source.vocab_size, tokenizers.target.vocab_size)
    print(
        f"{name}: {len(train_pairs)} training pairs, {len(test_pairs)} test pairs, "
        f"vocabularies {vocab}",
        flush=True,
    )
    with Timer() as timer:
        table = sl.ibm1(*train, *vocab)
    rows = size_table(*table, train, test, vocab, args.top_k, args.frequent)
    return {
        "train_pairs": len(train_pairs),
        "test_pairs": len(test_pairs),
        "vocab": list(vocab),
        "em_seconds": round(timer.seconds, 2),
        "sizes": rows,
    }


def bible(args):
    from seq2seq_attn import shortlist as sl
    from seq2seq_attn.corpora import load_corpus
    from seq2seq_attn.tokenizer import TokenizerPair

    info = json.loads((PRETRAINED / "run.json").read_text())
    corpus = load_corpus(info["data"], seed=info["seed"])
    result = measure("bible", TokenizerPair.load(PRETRAINED / "tokenizer"), corpus, args)
    with tempfile.TemporaryDirectory() as tmp:  # the build as `train` runs it, timed whole
        (Path(tmp) / "tokenizer").symlink_to(PRETRAINED / "tokenizer")
        built = sl.build_for_run(tmp, corpus.train[: args.pairs], **sl.DEFAULTS)
    result["build"] = {key: built[key] for key in ("top_k", "frequent", "seconds", "pairs")}
    result["build"]["train_seconds"] = info["train_seconds"]
    result["build"]["ratio_to_training"] = round(built["seconds"] / info["train_seconds"], 4)
    print(
        f"bible: build {built['seconds']:.1f} s = "
        f"{result['build']['ratio_to_training']:.1%} of the recorded training time",
        flush=True,
    )
    return result


def tutorial(args):
    from seq2seq_attn.corpora import load_corpus
    from seq2seq_attn.tokenizer import TokenizerPair

    _, _, data_file, _ = tutorial_size.paths(args.small)
    if not data_file.exists():
        count = tutorial_size.SMALL["pairs"] if args.small else tutorial_size.PAIRS
        tutorial_size.tutorial_data(data_file, count)
    corpus = load_corpus(str(data_file), seed=common.SEED)
    options = dict(tutorial_size.tutorial_config(args.small)["tokenizer"])
    tokenizers = TokenizerPair.train(
        [s for s, _ in corpus.train], [t for _, t in corpus.train], **options
    )
    return {
        "data": str(data_file.relative_to(ROOT)),
        **measure("tutorial", tokenizers, corpus, args),
    }


def add_arguments(parser):
    parser.add_argument("--top-k", type=int, nargs="+", default=list(TOP_K))
    parser.add_argument("--frequent", type=int, nargs="+", default=list(FREQUENT))
    parser.add_argument("--pairs", type=int, help="training pairs used (all; small 2000)")
    parser.add_argument("--test", type=int, help="test pairs measured (all; small 200)")


def run(args):
    fill_defaults(args, {"pairs": None, "test": None}, {"pairs": 2000, "test": 200})
    from seq2seq_attn import shortlist as sl

    return {
        "defaults": dict(sl.DEFAULTS),
        "iterations": sl.ITERATIONS,
        "bible": bible(args),
        "tutorial": tutorial(args),
    }
