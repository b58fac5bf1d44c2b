"""Decoding latency and throughput of every runtime, each beside its matrix-product floor.

Runtimes (the benchmark model of `common.py`, exported by `seq2seq-attn export`, each built by
`runtimes.decoder`):

- `keras_eager`: `Seq2SeqAttention.generate` called without `tf.function`;
- `saved_model`: `tf.saved_model.load` of the export, its `greedy` and `translate_ids`
  (beam 4) signatures, whole decodes in the graph;
- `onnx_host`: `encoder.onnx` + `decoder_step.onnx` in onnxruntime, driven by the numpy
  host loop of `seq2seq_attn.inference.search` (what `seq2seq-attn serve` runs);
  `onnx_host_int8` the same with the int8 graphs;
- `onnx_graph`: `greedy.onnx`, the whole greedy decode as one ONNX Loop (greedy only);
- `litert_fp32` / `litert_fp16` / `litert_int8`: the `encode` + `decode_step` signatures of
  `model*.tflite` with the same host loop; `litert_graph` the fp32 `greedy` signature.

The floor is what one float32 decode cannot go below on this machine: the bare matrix
products of the model, timed with numpy (float32, its BLAS) on operands of the model's own
weight shapes, run back to back as a step runs them (so the weights fall out of cache as
they do in a real step). Per decoder step at n rows (batch x beam): query projection, the score
vector product over every source position, the context product, the GRU input and
recurrent products and the output projection. For the encoder: both directions' input
projections over all positions at once, one recurrent product per position and direction,
the bridge and the key projection. floor(decode) = floor(encoder) + steps x floor(step),
with `steps` the decoder steps the runtime actually ran. The floor is measured between
every two timed calls, and each call is divided by the mean of the floors just before and
after it, so that call and floor see the machine alike. Quantized runtimes read 2-4x fewer
weight bytes than the float32 products, so they can come in under this floor.

Inputs are real test-split Bible sentences tokenized with the run's tokenizer (tokenizing is
not timed). Batch 1 uses `--sentences` sentences of exactly `SOURCE_LENGTH` tokens; batch 32
uses 32 sentences of 20-30 tokens padded to `SOURCE_LENGTH`. Every runtime decodes to the
same `max_length` = 2 x SOURCE_LENGTH + 10 (the default the exported graphs bake in).

Threads: every runtime and numpy's BLAS run on `BENCH_THREADS` threads (default 1):
TensorFlow intra- and inter-op, onnxruntime intra-op, LiteRT `num_threads`, and
OPENBLAS_NUM_THREADS for the floor. On a 2-core machine shared with other jobs, a second
thread mostly waits for its partner to be scheduled, which makes both the floor and the
runtimes slower and noisier; `BENCH_THREADS=2` measures that setting instead.

    python -m benchmarks decode_latency               # ~15 min on 2 busy CPU cores
    python -m benchmarks decode_latency --runtimes onnx_host --repeats 2   # quick look
    python -m benchmarks decode_latency --small       # a small model, a few calls

Writes benchmarks/results/decode_latency.json and docs/decode-latency.png.
"""

import json
import os
import statistics
from pathlib import Path

# One thread count for every runtime and for numpy's BLAS, set before numpy is imported.
THREADS = int(os.environ.get("BENCH_THREADS", "1"))
os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(THREADS)

import numpy as np  # noqa: E402

from benchmarks import common, runtimes  # noqa: E402
from benchmarks.harness import clock, fill_defaults, plot_path  # noqa: E402

PLOT = "decode-latency.png"
SOURCE_LENGTH = 30  # tokens, [START] and [END] included
LENGTH_RANGE = (20, 30)  # of the batch-32 sentences
MAX_LENGTH = 2 * SOURCE_LENGTH + 10
SMALL = {"repeats": 1, "repeats32": 1, "sentences": 1}  # --small
BEAM_WIDTH = 4
RUNTIMES = (
    "keras_eager",
    "saved_model",
    "onnx_host",
    "onnx_graph",
    "onnx_host_int8",
    "litert_fp32",
    "litert_fp16",
    "litert_int8",
    "litert_graph",
)
FLOAT32 = {"keras_eager", "saved_model", "onnx_host", "onnx_graph", "litert_fp32", "litert_graph"}
SINGLE_GRAPH_GREEDY = {"onnx_graph", "litert_graph"}


# ---------------------------------------------------------------------------------------------
# The floor


def model_shapes(model):
    """The weight shapes the floor's products need, read from a built `Seq2SeqAttention`."""
    cell, encoder = model.decoder_cell, model.encoder
    shape = lambda w: tuple(int(d) for d in w.shape)  # noqa: E731
    return {
        "query_kernel": shape(cell.attention.query_kernel),  # (units, attention_units)
        "key_kernel": shape(cell.attention.key_kernel),  # (memory_units, attention_units)
        "score_vector": shape(cell.attention.score_vector),  # (attention_units,)
        "decoder_kernel": shape(cell.rnn_cell.kernel),  # (embedding + memory, 3 units)
        "decoder_recurrent_kernel": shape(cell.rnn_cell.recurrent_kernel),  # (units, 3 units)
        "output_kernel": shape(cell.output_layer.kernel),  # (units + memory, vocab)
        "encoder_kernels": [shape(c.kernel) for c in encoder.cells],  # (embedding, 3 units)
        "encoder_recurrent_kernels": [shape(c.recurrent_kernel) for c in encoder.cells],
        "bridge_kernels": [shape(b.kernel) for b in encoder.bridges],  # (memory, units)
        "memory_units": int(encoder.memory_units),
    }


def step_products(shapes, rows, source_length):
    """(name, lhs shape, rhs shape) of the matrix products of one decoder step at `rows` rows.

    `rows` is batch x beam. The context product is batched: `(rows, 1, S) @ (rows, S, memory)`.
    """
    units, attention_units = shapes["query_kernel"]
    memory = shapes["memory_units"]
    return [
        ("query_projection", (rows, units), shapes["query_kernel"]),
        ("scores", (rows * source_length, attention_units), (attention_units, 1)),
        ("context", (rows, 1, source_length), (rows, source_length, memory)),
        ("gru_input", (rows, shapes["decoder_kernel"][0]), shapes["decoder_kernel"]),
        (
            "gru_recurrent",
            (rows, shapes["decoder_recurrent_kernel"][0]),
            shapes["decoder_recurrent_kernel"],
        ),
        ("output_projection", (rows, shapes["output_kernel"][0]), shapes["output_kernel"]),
    ]


def encoder_products(shapes, batch, source_length):
    """(name, lhs shape, rhs shape) of the encoder's matrix products for one source batch.

    Input projections of all positions are one product per cell (the best case); the
    recurrent products are one per position and cell, since each needs the previous state.
    """
    products = []
    for i, (kernel, recurrent) in enumerate(
        zip(shapes["encoder_kernels"], shapes["encoder_recurrent_kernels"], strict=True)
    ):
        products.append((f"cell{i}_input", (batch * source_length, kernel[0]), kernel))
        products += [(f"cell{i}_recurrent", (batch, recurrent[0]), recurrent)] * source_length
    for i, kernel in enumerate(shapes["bridge_kernels"]):
        products.append((f"bridge{i}", (batch, kernel[0]), kernel))
    key = shapes["key_kernel"]
    products.append(("key_projection", (batch * source_length, key[0]), key))
    return products


def product_flops(products):
    """Multiply-adds x 2 of a product list."""
    return sum(2 * int(np.prod(lhs)) * rhs[-1] for _, lhs, rhs in products)


def operands(products, rng):
    """Random float32 operands and output buffers, one set per distinct shape pair."""
    cache, ops = {}, []
    for _, lhs, rhs in products:
        key = (lhs, rhs)
        if key not in cache:
            a = rng.standard_normal(lhs, dtype=np.float32)
            b = rng.standard_normal(rhs, dtype=np.float32)
            cache[key] = (a, b, np.matmul(a, b))
        ops.append(cache[key])
    return ops


def time_products(products, min_seconds=0.2, repeats=7, rng=None):
    """Median seconds of running `products` back to back with `np.matmul(out=...)`."""
    ops = operands(products, rng or np.random.default_rng(0))

    def run():
        for a, b, out in ops:
            np.matmul(a, b, out=out)

    run()  # warm-up: pages in the operands
    started, inner = clock(), 0
    while clock() - started < min_seconds / repeats or inner < 1:
        run()
        inner += 1
    samples = []
    for _ in range(repeats):
        t0 = clock()
        for _ in range(inner):
            run()
        samples.append((clock() - t0) / inner)
    return statistics.median(samples)


def measure_floor(shapes, batch, beam_width, source_length, repeats=3):
    """Seconds of the encoder's and of one decoder step's products at this batch and beam."""
    encoder = encoder_products(shapes, batch, source_length)
    step = step_products(shapes, batch * beam_width, source_length)
    return {
        "encoder_s": time_products(encoder, min_seconds=0.02, repeats=repeats),
        "step_s": time_products(step, min_seconds=0.02, repeats=repeats),
    }


# ---------------------------------------------------------------------------------------------
# Inputs


def bench_sentences(run_dir, tokenizers, count_batch1):
    """Token ids: `count_batch1` single sentences and one batch of 32, from the test split."""
    from seq2seq_attn.training import run_corpus
    from seq2seq_attn.translator import RUN_INFO_FILE

    info = json.loads((Path(run_dir) / RUN_INFO_FILE).read_text())
    texts = [s for s, _ in run_corpus(run_dir, info).test]
    source = tokenizers.source
    lengths = [len(source.encode(t)) for t in texts]
    exact = [t for t, n in zip(texts, lengths, strict=True) if n == SOURCE_LENGTH]
    ranged = [
        t for t, n in zip(texts, lengths, strict=True) if LENGTH_RANGE[0] <= n <= SOURCE_LENGTH
    ]
    if len(exact) < count_batch1 or len(ranged) < 32:
        raise SystemExit(f"too few test sentences of {SOURCE_LENGTH} / {LENGTH_RANGE} tokens")
    batch32 = exact[:1] + [t for t in ranged if t != exact[0]][:31]  # padded length is exact
    return {
        "batch1": [source.encode_batch([t], pad_to=SOURCE_LENGTH) for t in exact[:count_batch1]],
        "batch32": source.encode_batch(batch32, pad_to=SOURCE_LENGTH),
        "batch1_texts": exact[:count_batch1],
        "batch32_lengths": sorted(len(source.encode(t)) for t in batch32),
        "test_sentences": len(texts),
    }


# ---------------------------------------------------------------------------------------------
# Runtimes: each a function (source_ids, beam_width) -> tokens (batch, steps run)


def trim(row, end_id):
    """A token row as a list, cut after the first [END], padding dropped."""
    row = [int(t) for t in row]
    return row[: row.index(end_id) + 1] if end_id in row else [t for t in row if t]


def make_runtime(name, run_dir, export_dir):
    """The decode function `(source_ids, beam_width) -> tokens` of a runtime, loaded
    (`runtimes.decoder` on `THREADS` threads, decoding to `MAX_LENGTH`)."""
    if name in ("keras_eager", "saved_model"):
        pin_tensorflow_threads()
    return runtimes.decoder(name, run_dir, export_dir, threads=THREADS, max_length=MAX_LENGTH)


def pin_tensorflow_threads():
    """TensorFlow's intra- and inter-op pools to THREADS (before its first op)."""
    import tensorflow as tf

    threading = tf.config.threading
    if threading.get_intra_op_parallelism_threads() != THREADS:
        threading.set_intra_op_parallelism_threads(THREADS)
    if threading.get_inter_op_parallelism_threads() != THREADS:
        threading.set_inter_op_parallelism_threads(THREADS)


def not_applicable(name, beam):
    """Why (runtime, beam) is not measured, or None."""
    if beam > 1 and name in SINGLE_GRAPH_GREEDY:
        return "only greedy is exported as a single graph (beam runs as step graphs + host loop)"
    return None


# ---------------------------------------------------------------------------------------------
# Measurement


def _stats(values):
    return {"median": float(np.median(values)), "p90": float(np.percentile(values, 90))}


def _ms_stats(seconds):
    return {
        "median": 1000 * float(np.median(seconds)),
        "min": 1000 * float(np.min(seconds)),
        "max": 1000 * float(np.max(seconds)),
    }


def measure_cell(decode, inputs, beam, repeats, floor_fn, end_id):
    """Times `decode` on each input `repeats` times after one warm-up, floors in between.

    The floor is measured before the first timed call and after every call; call i is set
    against the mean of the floors measured just before and just after it. Returns per-call
    latency, steps run, tokens produced and floor, and the tokens of the first timed pass.
    """
    decode(inputs[0], beam)  # warm-up
    floors = [floor_fn()]
    latencies, steps, tokens, produced = [], [], [], []
    for r in range(repeats):
        for ids in inputs:
            t0 = clock()
            out = np.asarray(decode(ids, beam))
            latencies.append(clock() - t0)
            floors.append(floor_fn())
            steps.append(out.shape[1])
            produced.append(sum(len(trim(row, end_id)) for row in out))
            if r == 0:
                tokens += [trim(row, end_id) for row in out]
    around = [
        {k: (before[k] + after[k]) / 2 for k in before}
        for before, after in zip(floors[:-1], floors[1:], strict=True)
    ]
    return {
        "latency_s": latencies,
        "steps": steps,
        "floor_s": [f["encoder_s"] + n * f["step_s"] for f, n in zip(around, steps, strict=True)],
        "floor_encoder_s": [f["encoder_s"] for f in around],
        "floor_step_s": [f["step_s"] for f in around],
        "produced_tokens": produced,
        "tokens": tokens,
    }


def summarize(name, mode, batch, cell, reference_tokens):
    lat = np.array(cell["latency_s"])
    ratios = lat / np.array(cell["floor_s"])
    median = float(np.median(lat))
    steps = sorted(set(cell["steps"]))
    agree = None
    if reference_tokens is not None:
        agree = float(
            np.mean([a == b for a, b in zip(cell["tokens"], reference_tokens, strict=True)])
        )
    return {
        "runtime": name,
        "mode": mode,
        "batch": batch,
        "applicable": True,
        "samples": len(lat),
        "latency_ms": {k: 1000 * v for k, v in _stats(lat).items()},
        "steps": steps,
        "ms_per_step": 1000 * median / float(np.median(cell["steps"])),
        "sentences_per_s": batch / median,
        "tokens_per_s": float(np.median(cell["produced_tokens"])) / median,
        "positions_per_s": batch * float(np.median(cell["steps"])) / median,
        "floor_ms": 1000 * float(np.median(cell["floor_s"])),
        "floor_encoder_ms": 1000 * float(np.median(cell["floor_encoder_s"])),
        "floor_step_ms": _ms_stats(cell["floor_step_s"]),
        "ratio_to_floor": _stats(ratios),
        "tokens_equal_to_keras": agree,
    }


def thread_settings():
    import onnxruntime
    import tensorflow as tf

    return {
        "tensorflow_intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
        "tensorflow_inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        "onnxruntime_intra_op": THREADS,
        "onnxruntime_inter_op": "default (sequential execution)",
        "onnxruntime_version": onnxruntime.__version__,
        "litert_num_threads": THREADS,
        "numpy_blas": _blas_name(),
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")},
    }


def _blas_name():
    try:
        info = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{info['name']} {info['version']}, OPENBLAS_NUM_THREADS={THREADS}"
    except Exception:  # noqa: BLE001  (only informative)
        return "unknown"


def floor_breakdown(shapes, source_length):
    """Per-product median times of one step and the encoder at batch 1 and 32 (for the text)."""
    out = {}
    for label, products in [
        ("step_rows1", step_products(shapes, 1, source_length)),
        ("step_rows4", step_products(shapes, 4, source_length)),
        ("step_rows32", step_products(shapes, 32, source_length)),
        ("step_rows128", step_products(shapes, 128, source_length)),
    ]:
        out[label] = {
            name: {
                "lhs": list(lhs),
                "rhs": list(rhs),
                "ms": 1000 * time_products([(name, lhs, rhs)], min_seconds=0.05),
            }
            for name, lhs, rhs in products
        }
        out[label]["total_ms"] = 1000 * time_products(products)
        out[label]["gflop"] = product_flops(products) / 1e9
    for batch in (1, 32):
        products = encoder_products(shapes, batch, source_length)
        out[f"encoder_batch{batch}"] = {
            "products": len(products),
            "total_ms": 1000 * time_products(products),
            "gflop": product_flops(products) / 1e9,
        }
    return out


def float32_agreement(rows):
    """Per (mode, batch): the float32 runtimes whose tokens differ from Keras eager's."""
    summary = {}
    for row in rows:
        compared = row["applicable"] and row["tokens_equal_to_keras"] is not None
        if compared and row["runtime"] in FLOAT32 and row["runtime"] != "keras_eager":
            key = f"{row['mode']}_batch{row['batch']}"
            summary.setdefault(key, {"all_equal": True, "differ": {}})
            if row["tokens_equal_to_keras"] != 1.0:
                summary[key]["all_equal"] = False
                summary[key]["differ"][row["runtime"]] = row["tokens_equal_to_keras"]
    return summary


def add_arguments(parser):
    parser.add_argument("--runtimes", nargs="+", choices=RUNTIMES, default=list(RUNTIMES))
    parser.add_argument("--sentences", type=int, help="batch-1 sentences (5, small 1)")
    parser.add_argument("--repeats", type=int, help="timed passes, batch 1 (2, small 1)")
    parser.add_argument("--repeats32", type=int, help="timed passes, batch 32 (3, small 1)")
    parser.add_argument("--no-plot", action="store_true")


def run(args):
    fill_defaults(args, {"repeats": 2, "repeats32": 3, "sentences": 5}, SMALL)
    print(HEADER, flush=True)
    result = measure(args.runtimes, args.repeats, args.repeats32, args.sentences, args.small)
    print("float32 runtimes vs Keras eager tokens:", result["float32_tokens_equal_to_keras"])
    if not args.no_plot:
        path = plot_path(args, PLOT)
        plot(result, path)
        print(f"wrote {path}")
    return result


def measure(names, repeats, repeats32, n_sentences, small=False):
    """Every runtime of `names` at batch 1 and 32, greedy and beam 4, beside its floor."""
    import keras

    pin_tensorflow_threads()
    from seq2seq_attn import tokenizer
    from seq2seq_attn.translator import Translator

    run_dir = common.bench_run(small)
    export_dir, export_cost = common.bench_export(run_dir, small)
    translator = Translator.load(run_dir)
    shapes = model_shapes(translator.model)
    inputs = bench_sentences(run_dir, translator.tokenizers, n_sentences)
    del translator
    keras.backend.clear_session()
    batches = {1: (inputs["batch1"], repeats), 32: ([inputs["batch32"]], repeats32)}
    rows, references = [], {}
    for name in names:
        t0 = clock()
        decode = make_runtime(name, run_dir, export_dir)
        load_s = clock() - t0
        for mode, beam in [("greedy", 1), ("beam4", BEAM_WIDTH)]:
            for batch, (batch_inputs, reps) in batches.items():
                why = not_applicable(name, beam)
                if why:
                    rows.append(
                        {"runtime": name, "mode": mode, "batch": batch, "applicable": False,
                         "reason": why}
                    )  # fmt: skip
                    continue
                cell = measure_cell(
                    decode,
                    batch_inputs,
                    beam,
                    reps,
                    lambda b=batch, k=beam: measure_floor(shapes, b, k, SOURCE_LENGTH),
                    tokenizer.END_ID,
                )
                key = (mode, batch)
                if name == "keras_eager":
                    references[key] = cell["tokens"]
                row = summarize(name, mode, batch, cell, references.get(key))
                row["load_s"] = load_s
                rows.append(row)
                print(format_row(row), flush=True)
        del decode
    return {
        "settings": {
            "source_length": SOURCE_LENGTH,
            "batch32_lengths": inputs["batch32_lengths"],
            "batch1_sentences": len(inputs["batch1"]),
            "batch1_texts": inputs["batch1_texts"],
            "max_length": MAX_LENGTH,
            "beam_width": BEAM_WIDTH,
            "length_penalty": 0.0,
            "repeats_batch1": repeats,
            "repeats_batch32": repeats32,
            "warmup_calls": 1,
            "threads": thread_settings(),
            "timed": "source ids in, tokens out (tokenizing not timed; encoder included)",
            "tokens_per_s": "tokens of the returned best hypotheses, [END] included",
            "floor": "numpy float32 matmul(out=...) of the product shapes (median of 3 runs), "
            "measured before the first and after every timed call; each call is divided by "
            "the mean of the floors just before and just after it",
            "positions_per_s": "batch x decoder steps run, per second (the work done, also "
            "when hypotheses end early)",
            "export_dir": str(export_dir.relative_to(common.ROOT)),
        },
        "export_created_by_this_run": export_cost,
        "shapes": shapes,
        "floor_breakdown": floor_breakdown(shapes, SOURCE_LENGTH),
        "rows": rows,
        "float32_runtimes": sorted(FLOAT32 & set(names)),
        "float32_tokens_equal_to_keras": float32_agreement(rows),
    }


def format_row(row):
    if not row["applicable"]:
        return f"{row['runtime']:15} {row['mode']:6} {row['batch']:>3}  n/a: {row['reason']}"
    agree = row["tokens_equal_to_keras"]
    return (
        f"{row['runtime']:15} {row['mode']:6} {row['batch']:>3} "
        f"{row['latency_ms']['median']:9.1f} {row['latency_ms']['p90']:9.1f} "
        f"{row['ms_per_step']:7.2f} {row['sentences_per_s']:8.2f} {row['tokens_per_s']:8.0f} "
        f"{row['floor_ms']:8.1f} {row['ratio_to_floor']['median']:6.2f} "
        f"{'-' if agree is None else f'{agree:.2f}':>5} {','.join(map(str, row['steps']))}"
    )


HEADER = (
    f"{'runtime':15} {'mode':6} {'B':>3} {'med ms':>9} {'p90 ms':>9} {'ms/stp':>7} "
    f"{'sent/s':>8} {'tok/s':>8} {'floor':>8} {'ratio':>6} {'agree':>5} steps"
)


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if r["applicable"]]
    names = [n for n in RUNTIMES if any(r["runtime"] == n for r in rows)]
    cells = [("greedy", 1), ("beam4", 1), ("greedy", 32), ("beam4", 32)]
    fig, ax = plt.subplots(figsize=(10, 4.2))
    width = 0.8 / len(cells)
    for i, (mode, batch) in enumerate(cells):
        values = []
        for name in names:
            match = [
                r for r in rows if (r["runtime"], r["mode"], r["batch"]) == (name, mode, batch)
            ]
            values.append(match[0]["ratio_to_floor"]["median"] if match else np.nan)
        ax.bar(
            np.arange(len(names)) + (i - 1.5) * width, values, width, label=f"{mode}, batch {batch}"
        )
    ax.axhline(2, color="k", lw=0.8, ls="--", label="target (2x floor)")
    ax.axhline(1, color="grey", lw=0.6)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(names)), names, rotation=20, ha="right")
    ax.set_ylabel("decode time / matmul floor")
    ax.set_title(
        f"Decode time / float32 matmul floor (source {SOURCE_LENGTH} tokens, {MAX_LENGTH} steps; "
        f"{THREADS} thread on a {os.cpu_count()}-core machine; "
        "int8 reads fewer bytes than the floor)",
        fontsize=10,
    )
    ax.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
