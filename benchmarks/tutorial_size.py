"""Batch-1 greedy latency, text to text, at the size of TensorFlow's "NMT with attention" tutorial.

The tutorial's model: a bidirectional GRU encoder and a GRU decoder with 256 units, 256-wide
embeddings, additive attention, 5000-piece vocabularies; the issue trained it on ~17,000 short
UI strings (5-6 words). We have neither that file nor the tutorial's code, so:

- `tutorial_data()` writes `runs/tutorial-data.tsv`: 17,000 short pairs cut from Bible
  training verses, the first 4-8 words of the English verse and as many words of the
  Spanish one as the same share of its words (the pairs are not translations; what matters
  here is that sources and targets are short, so that a trained model stops after a few
  steps as the issue's did);
- `tutorial_run()` trains `Seq2SeqAttention(embedding_dim=256, units=256,
  attention_units=256, bidirectional GRU, bahdanau)` on it for `--train-steps` steps of
  batch 64 (the decoder learns when to emit [END]; latency does not depend on anything
  else the weights do) and saves a run directory `seq2seq-attn export` reads;
- `tutorial_shortlist()` builds the run's lexical shortlist (`shortlist.npz`, what
  `seq2seq-attn shortlist RUN_DIR` builds, with the run config's sizes) if it has none, so
  that the export has the shortlist graphs and signatures;
- `seq2seq-attn export` writes `runs/tutorial-export` (timed, with its peak RSS);
- every runtime then translates the same `--sentences` short test sentences of that file
  one at a time, text in, text out (SentencePiece encode, decode, detokenize), the runtimes
  taking turns sentence by sentence so that all see the machine alike. The TF tutorial's
  own SavedModel cannot run here: the comparison is between runtimes of one export, as
  ratios measured in one run.

Runtimes: `onnx_host` (`OnnxModel` + host greedy loop, with the server's default options:
1 intra-op thread, no spinning; what `seq2seq-attn serve` runs for requests with search
options), `onnx_host_ort_threads` (the same with onnxruntime's own thread count, one per
core), `onnx_host_spin` (that pool spinning), `onnx_graph` (`greedy.onnx`, what the server
runs for plain greedy requests), `litert_host` / `litert_graph` / `litert_int8`
(`model*.tflite`, host loop or `greedy` signature), `saved_model` (the SavedModel's
`greedy` signature through `tf.saved_model.load`), `saved_model_session` (the same
signature in a TF1 session, loaded the way TF Serving loads it:
`export/tf_serving_loader.py`), and `tutorial_saved_model`: the tutorial's own model
(`tutorial_nmt.Translator`, trained here by `tutorial_nmt_export()` on the same training
pairs and ids for as many batches of 64, the tutorial's way) saved with its exported greedy
loop (`tutorial_nmt.Export`, the dynamic-loop version), ids in and out, with the same
SentencePiece encode and decode around it as every other runtime. Beside them, over the
sentence's shortlist candidates (`runtimes.decoder`'s `NAME_shortlist`): `onnx_host_shortlist`
(the server's path for `"full_vocabulary": false`: the host search over the shortlist step
graphs, 1 thread), `onnx_graph_shortlist` (`greedy_shortlist.onnx`),
`litert_graph_shortlist` and `saved_model_shortlist` (the `greedy_shortlist` signatures).

Per runtime: median and p90 ms per sentence, the ratio to `litert_graph`, the speedup over
`tutorial_saved_model` (its median / the runtime's), and for a shortlist runtime the speedup
over its full-vocabulary twin and the share of sentences whose text equals the twin's. The
load average is recorded before and after the turns.

    python -m benchmarks tutorial_size                    # ~10 min on 2 busy cores
    python -m benchmarks tutorial_size --no-export --runtimes onnx_host litert_graph
    python -m benchmarks tutorial_size --no-export --runtimes onnx_host onnx_host_shortlist
    python -m benchmarks tutorial_size --no-export --baseline-export runs/old-export
    python -m benchmarks tutorial_size --small            # a tiny model, 3 sentences

Every runtime but the tutorial's is built by `runtimes.decoder`. `--small` trains a tiny model
(16 units, 500 pieces) on 2,000 pairs for 5 steps, in runs/benchmarks/. Writes
benchmarks/results/tutorial_size.json.
"""

import json
import os
import random
import statistics
from pathlib import Path

import numpy as np

from benchmarks import common, runtimes
from benchmarks.harness import ROOT, clock, fill_defaults, work_dir

RUN_DIR = ROOT / "runs" / "tutorial-model"
EXPORT_DIR = ROOT / "runs" / "tutorial-export"
DATA_FILE = ROOT / "runs" / "tutorial-data.tsv"
SIZE = dict(embedding_dim=256, units=256, attention_units=256, vocab=5000)
SMALL_SIZE = dict(embedding_dim=16, units=16, attention_units=16, vocab=500)
SMALL = {"pairs": 2000, "train_steps": 5, "samples": 4, "sentences": 3, "repeats": 1}
PAIRS = 17_000
WORDS = (4, 8)  # source words per pair, uniform
TRAIN_STEPS = 400
RUNTIMES = (
    "onnx_host",
    "onnx_host_ort_threads",
    "onnx_host_spin",
    "onnx_graph",
    "litert_host",
    "litert_graph",
    "litert_int8",
    "saved_model",
    "saved_model_session",
    "tutorial_saved_model",
    "onnx_host_shortlist",
    "onnx_graph_shortlist",
    "litert_graph_shortlist",
    "saved_model_shortlist",
)
TUTORIAL = "tutorial_saved_model"
TUTORIAL_NMT_DIR = ROOT / "runs" / "tutorial-nmt-export"


def paths(small):
    """`(run_dir, export_dir, data_file, tutorial_nmt_dir)` of a full or a small run."""
    if not small:
        return RUN_DIR, EXPORT_DIR, DATA_FILE, TUTORIAL_NMT_DIR
    names = ("tutorial-model", "tutorial-export", "tutorial-data.tsv", "tutorial-nmt-export")
    return tuple(work_dir(True, name) for name in names)


def tutorial_data(path=DATA_FILE, count=PAIRS, seed=common.SEED):
    """Writes `count` short (source, target) pairs cut from Bible training verses as a TSV."""
    from seq2seq_attn.corpora import load_corpus

    rng = random.Random(seed)
    verses = load_corpus(common.DATA).train
    rows = []
    while len(rows) < count:
        source, target = verses[rng.randrange(len(verses))]
        src, tgt = source.split(), target.split()
        n = min(rng.randint(*WORDS), len(src))
        m = max(1, round(n * len(tgt) / len(src)))
        rows.append((" ".join(src[:n]), " ".join(tgt[:m])))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("source\ttarget\n" + "".join(f"{s}\t{t}\n" for s, t in rows))
    return path


def tutorial_config(small=False):
    """The bundled `bible` config at the tutorial's size (or tiny), no dropout, batch 64."""
    return common.sized_config(SMALL_SIZE if small else SIZE, 64, rnn="gru", bidirectional=True)


def tutorial_run(out_dir=RUN_DIR, train_steps=TRAIN_STEPS, small=False):
    """A run directory with the tutorial-size model after `train_steps`; reused if present."""
    import keras

    from seq2seq_attn.training import build_model, corpus_for, run_tokenizers
    from seq2seq_attn.translator import RUN_INFO_FILE

    out_dir = Path(out_dir)
    if (out_dir / RUN_INFO_FILE).exists():
        return out_dir
    _, _, data_file, _ = paths(small)
    count = SMALL["pairs"] if small else PAIRS
    data = str(data_file if data_file.exists() else tutorial_data(data_file, count))
    config = tutorial_config(small)
    keras.utils.set_random_seed(common.SEED)
    corpus = corpus_for(data, common.SEED, config)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizers = run_tokenizers(out_dir, corpus, config["tokenizer"])
    model = build_model(config, tokenizers)
    started = clock()
    epochs = -(-train_steps * 64 // len(corpus.train))
    batches = []
    for epoch in range(epochs):
        batches += common.train_batches(corpus, tokenizers, config, 10**6, seed=epoch)
    model.fit(common.as_dataset(batches[:train_steps]), epochs=1, verbose=0)
    note = "tutorial-size benchmark model: short cut Bible pairs, briefly trained"
    return common.save_run(out_dir, model, config, corpus, data, train_steps, started, note)


def tutorial_shortlist(run_dir):
    """Builds `run_dir/shortlist.npz` as `seq2seq-attn shortlist RUN_DIR` does, if missing.

    Returns:
        the build's summary (sizes, seconds, mean candidates), or None when it was there.
    """
    from seq2seq_attn.commands import build_shortlist
    from seq2seq_attn.shortlist import FILE

    if (Path(run_dir) / FILE).exists():
        return None
    summary = build_shortlist(run_dir)
    return {key: value for key, value in summary.items() if key != "path"}


def tutorial_nmt_export(run_dir, out_dir=TUTORIAL_NMT_DIR, train_steps=TRAIN_STEPS, small=False):
    """The tutorial's model trained on `run_dir`'s training pairs and SentencePiece ids for
    `train_steps` of its own batches (shuffled, 64, padded to the longest), saved with
    `tutorial_nmt.Export`; reused if present."""
    out_dir = Path(out_dir)
    if (out_dir / "saved_model.pb").exists():
        return out_dir
    import keras
    import tensorflow as tf

    from benchmarks import tutorial_nmt
    from seq2seq_attn.data import tokenize_pairs
    from seq2seq_attn.graph_tokenizer import GraphTokenizerPair
    from seq2seq_attn.tokenizer import END_ID, START_ID, TokenizerPair
    from seq2seq_attn.training import run_corpus
    from seq2seq_attn.translator import RUN_INFO_FILE

    info = json.loads((Path(run_dir) / RUN_INFO_FILE).read_text())
    tokenizers = TokenizerPair.load(Path(run_dir) / "tokenizer")
    train = run_corpus(run_dir, info).train
    limits = tutorial_config(small)["training"]
    tokenized = tokenize_pairs(
        train,
        GraphTokenizerPair(tokenizers),
        limits["max_source_length"],
        limits["max_target_length"],
    )
    pairs = [(s.tolist(), t.tolist()) for s, t in tokenized.as_numpy_iterator()]
    keras.utils.set_random_seed(common.SEED)
    vocab = (tokenizers.source.vocab_size, tokenizers.target.vocab_size)
    model = tutorial_nmt.build_translator(*vocab, units=(SMALL_SIZE if small else SIZE)["units"])
    batches = []
    for epoch in range(-(-train_steps * 64 // len(pairs))):
        batches += tutorial_nmt.tutorial_batches(pairs, train_steps, seed=epoch)
    for (context, target_in), target_out in batches[:train_steps]:
        model.train_on_batch((context, target_in), target_out)
    tf.saved_model.save(tutorial_nmt.Export(model, START_ID, END_ID), str(out_dir))
    return out_dir


def export(run_dir, out=EXPORT_DIR, samples=200):
    """`seq2seq-attn export` in a child: wall time and peak RSS (common.run_export_cli)."""
    return common.run_export_cli(run_dir, out, samples)


def test_sentences(run_dir, count):
    """The first `count` source texts of the run's test split."""
    from seq2seq_attn.training import run_corpus
    from seq2seq_attn.translator import RUN_INFO_FILE

    info = json.loads((Path(run_dir) / RUN_INFO_FILE).read_text())
    return [s for s, _ in run_corpus(run_dir, info).test[:count]]


def make_translate(name, export_dir, tokenizers, tutorial_dir=TUTORIAL_NMT_DIR):
    """`translate(text) -> text` of one runtime, loaded: encode, greedy decode, detokenize.

    `tutorial_saved_model` is the tutorial's own SavedModel (in `tutorial_dir`); every other
    name is a runtime of `runtimes.decoder` with the runtime's default threads."""
    source, target = tokenizers.source, tokenizers.target
    if name == "tutorial_saved_model":
        import tensorflow as tf

        tutorial = tf.saved_model.load(str(tutorial_dir))  # keep it: it owns the weights

        def tutorial_saved_model(text):
            ids = tf.constant(source.encode_batch([text]))
            return target.decode(tutorial.translate_ids(ids)["tokens"].numpy()[0])

        return tutorial_saved_model
    decode = runtimes.decoder(name, None, export_dir)

    def translate(text):
        return target.decode(np.asarray(decode(source.encode_batch([text]), 1))[0])

    return translate


def measure(translators, texts, repeats):
    """Per runtime: seconds of every call; the runtimes take turns on every sentence."""
    for translate in translators.values():
        translate(texts[0])  # warm-up
    seconds = {name: [] for name in translators}
    outputs = {name: [] for name in translators}
    for r in range(repeats):
        for text in texts:
            for name, translate in translators.items():
                t0 = clock()
                out = translate(text)
                seconds[name].append(clock() - t0)
                if r == 0:
                    outputs[name].append(out)
    return seconds, outputs


def summarize(seconds, outputs, baseline="litert_graph"):
    """Median ms per runtime, ratio to `baseline`, and text agreement with it; the speedups
    over the tutorial's SavedModel and, for a shortlist runtime, over its full-vocabulary twin
    (`compare`)."""
    rows = {}
    for name, values in seconds.items():
        rows[name] = {
            "median_ms": 1000 * statistics.median(values),
            "p90_ms": 1000 * float(np.percentile(values, 90)),
            "calls": len(values),
        }
    if baseline in rows:
        base = rows[baseline]["median_ms"]
        for name, row in rows.items():
            row[f"ratio_to_{baseline}"] = row["median_ms"] / base
            row["same_text_as_baseline"] = float(
                np.mean([a == b for a, b in zip(outputs[name], outputs[baseline], strict=True)])
            )
    compare(rows, seconds, outputs)
    return rows


def compare(rows, seconds, outputs):
    """Adds `speedup_vs_tutorial` (the tutorial SavedModel's median / the runtime's) and, to a
    shortlist runtime whose twin ran, `speedup_vs_full_vocabulary` (the twin's median / its
    own) and `same_text_as_full_vocabulary` (share of sentences with the twin's text); each
    speedup also `_paired`: the median over the turns of the two calls' ratio."""
    for name, row in rows.items():
        if TUTORIAL in rows:
            row["speedup_vs_tutorial"] = rows[TUTORIAL]["median_ms"] / row["median_ms"]
            row["speedup_vs_tutorial_paired"] = paired(seconds[TUTORIAL], seconds[name])
        twin = runtimes.full_vocabulary_twin(name)
        if twin in rows:
            row["speedup_vs_full_vocabulary"] = rows[twin]["median_ms"] / row["median_ms"]
            row["speedup_vs_full_vocabulary_paired"] = paired(seconds[twin], seconds[name])
            pairs = zip(outputs[name], outputs[twin], strict=True)
            row["same_text_as_full_vocabulary"] = float(np.mean([a == b for a, b in pairs]))


def paired(slower, faster):
    """The median of `slower[i] / faster[i]`: calls of one turn saw the machine alike."""
    return float(np.median(np.asarray(slower) / np.asarray(faster)))


def decode_steps(export_dir, tokenizers, texts):
    """Decoder steps of the host greedy loop per sentence (what every runtime runs)."""
    decode = runtimes.decoder("onnx_host", None, export_dir)
    steps = [decode(tokenizers.source.encode_batch([t]), 1).shape[1] for t in texts]
    lengths = [len(tokenizers.source.encode(t)) for t in texts]
    return {
        "decoder_steps_median": statistics.median(steps),
        "decoder_steps_max": max(steps),
        "source_tokens_median": statistics.median(lengths),
        "source_words_mean": float(np.mean([len(t.split()) for t in texts])),
    }


def breakdown(run_dir, export_dir, tokenizers, texts, repeats=3):
    """Where one batch-1 decode over the shortlist goes, against its matrix-product floor.

    The server's host search over the shortlist graphs in onnxruntime (one thread, as
    `onnx_host_shortlist`), each part timed on its own over the same texts: SentencePiece in
    and out, `encoder.onnx`, `shortlist.onnx`, every `decoder_step_shortlist.onnx` call, and
    the host search's own work (the decode's time less its graph calls). The floor is the
    decode-latency benchmark's (`decode_latency.measure_floor`: numpy float32 products of the
    model's weight shapes, the output layer narrowed to the texts' mean candidates).
    """
    from benchmarks import decode_latency
    from seq2seq_attn import tokenizer
    from seq2seq_attn.inference.runtime import ROWS
    from seq2seq_attn.translator import Translator

    model = runtimes.step_model("onnx_host", export_dir)
    parts = {k: [] for k in ("tokenize", "encoder", "shortlist", "steps", "host", "detokenize")}
    spent = {"encoder": 0.0, "steps": 0.0}  # the decode's graph calls, timed where they run
    candidates, lengths = [], []

    def timed(name, call):
        def run(*args, **kwargs):
            t0 = clock()
            out = call(*args, **kwargs)
            spent[name] += clock() - t0
            return out

        return run

    model.encode, model.step = timed("encoder", model.encode), timed("steps", model.step)
    for _ in range(repeats):
        for text in texts:
            spent.update(encoder=0.0, steps=0.0)
            t0 = clock()
            ids = tokenizers.source.encode_batch([text])
            t1 = clock()
            columns = model.shortlist_columns(ids)
            t2 = clock()
            tokens = model.decode(ids, tokenizer.START_ID, tokenizer.END_ID, shortlist=columns)
            t3 = clock()
            tokenizers.target.decode(tokens["tokens"][0])
            t4 = clock()
            parts["tokenize"].append(t1 - t0)
            parts["shortlist"].append(t2 - t1)
            parts["encoder"].append(spent["encoder"])
            parts["steps"].append(spent["steps"])
            parts["host"].append(t3 - t2 - spent["encoder"] - spent["steps"])
            parts["detokenize"].append(t4 - t3)
            lengths.append((ids.shape[1], tokens["tokens"].shape[1]))
            wide = ROWS in columns  # the union too large for the columns: full step, masked
            candidates.append(int(columns[ROWS].sum()) if wide else len(columns["shortlist_bias"]))
    shapes = decode_latency.model_shapes(Translator.load(run_dir).model)
    shapes["output_kernel"] = (shapes["output_kernel"][0], int(np.mean(candidates)))
    source, steps = (int(statistics.median(x)) for x in zip(*lengths, strict=True))
    floor = decode_latency.measure_floor(shapes, 1, 1, source)
    ms = {k: round(1e3 * statistics.median(v), 3) for k, v in parts.items()}
    return {
        "median_ms": ms,
        "source_tokens_median": source,
        "decoder_steps_median": steps,
        "mean_candidates": round(float(np.mean(candidates)), 1),
        "floor_ms": {
            "encoder": round(1e3 * floor["encoder_s"], 3),
            "step": round(1e3 * floor["step_s"], 3),
            "decode": round(1e3 * (floor["encoder_s"] + steps * floor["step_s"]), 3),
        },
        "step_ms": round(ms["steps"] / steps, 3),
    }


def add_arguments(parser):
    choices = list(RUNTIMES)
    parser.add_argument("--runtimes", nargs="+", choices=choices, default=choices)
    parser.add_argument("--sentences", type=int, help="(50, small 3)")
    parser.add_argument("--repeats", type=int, help="(3, small 1)")
    parser.add_argument("--train-steps", type=int, help=f"({TRAIN_STEPS}, small 5)")
    parser.add_argument("--samples", type=int, help="export parity sentences (200, small 4)")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also time the parts of one shortlist decode against its floor",
    )
    parser.add_argument("--export", action="store_true", help="export again (timed)")
    parser.add_argument("--no-export", dest="export", action="store_false")
    parser.add_argument(
        "--baseline-export",
        type=Path,
        help="another export of the same run (e.g. by an earlier commit): its runtimes join "
        "the turns as NAME@baseline",
    )


def run(args):
    from seq2seq_attn.tokenizer import TokenizerPair

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    full = {"sentences": 50, "repeats": 3, "train_steps": TRAIN_STEPS, "samples": 200}
    fill_defaults(args, full, SMALL)
    run_path, export_dir, _, tutorial_dir = paths(args.small)
    run_dir = tutorial_run(run_path, args.train_steps, args.small)
    result = {"size": SMALL_SIZE if args.small else SIZE}
    built = tutorial_shortlist(run_dir)
    if built is not None:
        result["shortlist_build"] = built
    stale = not (export_dir / "greedy_shortlist.onnx").exists()  # exported before the shortlist
    if args.export or stale or not (export_dir / "manifest.json").exists():
        print("exporting ...", flush=True)
        result["export"] = export(run_dir, export_dir, samples=args.samples)
        print(f"  {result['export']}", flush=True)
        parity = json.loads((export_dir / "parity.json").read_text())
        result["export"]["parity_passed"] = parity["passed"]
    tokenizers = TokenizerPair.load(run_dir / "tokenizer")
    texts = test_sentences(run_dir, args.sentences)
    result["inputs"] = decode_steps(export_dir, tokenizers, texts)
    if "tutorial_saved_model" in args.runtimes:
        tutorial_nmt_export(run_dir, tutorial_dir, args.train_steps, args.small)
    translators = {
        name: make_translate(name, export_dir, tokenizers, tutorial_dir) for name in args.runtimes
    }
    if args.baseline_export is not None:
        result["baseline_export"] = str(args.baseline_export)
        for name in args.runtimes:
            if name != "tutorial_saved_model":
                translate = make_translate(name, args.baseline_export, tokenizers)
                translators[f"{name}@baseline"] = translate
    load_before = os.getloadavg()
    seconds, outputs = measure(translators, texts, args.repeats)
    result["settings"] = {
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "sentences": len(texts),
        "repeats": args.repeats,
        "timed": "text in, text out, batch 1, greedy; runtimes take turns per sentence",
        "threads": "runtime defaults (the server's), except onnx_host_ort_threads/_spin",
    }
    result["latency"] = summarize(seconds, outputs)
    if args.breakdown:
        result["breakdown"] = breakdown(run_dir, export_dir, tokenizers, texts, args.repeats)
        print(f"breakdown: {result['breakdown']}", flush=True)
    if "tutorial_saved_model" in outputs:  # its own model: its own output lengths
        pieces = [len(tokenizers.target.encode(t)) - 1 for t in outputs["tutorial_saved_model"]]
        result["inputs"]["tutorial_output_pieces_median"] = statistics.median(pieces)
    for name, row in result["latency"].items():
        ratio = row.get("ratio_to_litert_graph", float("nan"))
        tutorial = row.get("speedup_vs_tutorial", float("nan"))
        full = row.get("speedup_vs_full_vocabulary")
        twin = "" if full is None else f"  {full:.2f}x full vocabulary"
        print(
            f"{name:25} {row['median_ms']:7.2f} ms  p90 {row['p90_ms']:7.2f}  "
            f"x{ratio:.2f} litert_graph  {tutorial:.2f}x tutorial{twin}"
        )
    return result
