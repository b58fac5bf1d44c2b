"""Which shortlist decode path pays, by batch size and beam: the rule behind `shortlist.MAX_ROWS`.

On an export with a lexical shortlist, in onnxruntime with one thread as the server runs it,
batches of Bible test texts cut as the load test cuts them (1-60 words, `load_test.request_mix`)
decode greedily and with beam 4 along every path the server and the host search can take:

- `full`: the whole vocabulary, `greedy.onnx` (greedy) or the host search over
  `decoder_step.onnx` (beam), what `"full_vocabulary": true` runs;
- `columns`: `greedy_shortlist.onnx` (greedy: it gathers the union's columns inside), or the
  batch's union gathered once by `shortlist.onnx` and the host search over
  `decoder_step_shortlist.onnx` (beam);
- `masked`: the full step with each row's logits masked to its own candidates (`ROWS`), the
  host search (the server's path where the columns do not pay, `shortlist.columns_pay`).

Each cell is the fastest of `--repeats` decodes of the same batch (after one warm-up); the
union's share of the vocabulary and `shortlist.onnx`'s own time are beside them. For each
batch the paths run one after the other. The two shortlist paths give the same tokens (each
row over its own candidates); `masked` is what the server runs for several rows.

    python -m benchmarks shortlist_paths --export-dir runs/bible-export        # ~2 min
    python -m benchmarks shortlist_paths --export-dir EXPORT --small

Writes benchmarks/results/shortlist_paths.json (or `--out`).
"""

from benchmarks import load_test
from benchmarks.harness import clock, fill_defaults

FULL = {"batches": "1,4,8,16,32", "repeats": 3}
SMALL = {"batches": "1,4", "repeats": 1}
BEAM = 4
START, END = 2, 3  # the tokenizers' [START] and [END] ids


def add_arguments(parser):
    parser.add_argument("--export-dir", help="an export with a shortlist (required)")
    parser.add_argument("--batches", help="batch sizes in texts (default 1,4,8,16,32)")
    parser.add_argument("--repeats", type=int, help="timed decodes per cell (default 3)")
    parser.add_argument("--quantized", action="store_true", help="the int8 graphs")
    parser.add_argument("--seed", type=int, default=0)


def fastest(fn, repeats):
    """Milliseconds of the fastest of `repeats` calls of `fn`, after one untimed call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        began = clock()
        fn()
        best = min(best, clock() - began)
    return round(1000 * best, 2)


def texts_for(count, seed):
    """`count` texts of the load test's mix (Bible test verses run on to 1-60 words)."""
    bodies = load_test.request_mix(load_test.bible_sources(), count, seed, max_texts=1)
    return [body["texts"][0] for body in bodies]


def paths(model, ids, beam_width):
    """`{path: callable}` decoding `ids` along each path (the shortlist paths compute their
    candidates inside the timing, as the server does), and the union's count and vocabulary."""
    from seq2seq_attn.inference.runtime import shortlist_over

    def host(columns):
        if columns is None:
            return lambda: model.decode(ids, START, END, beam_width)
        over = lambda: shortlist_over(model.shortlist_output(ids), columns)  # noqa: E731
        return lambda: model.decode(ids, START, END, beam_width, shortlist=over())

    found = {"full": host(None), "columns": host(True), "masked": host(False)}
    if beam_width == 1:  # the single graphs, as the server runs plain greedy batches
        found["full"] = lambda: model.greedy_graph(ids)
        found["columns"] = lambda: model.greedy_graph(ids, shortlist=True)
    found["shortlist_onnx"] = lambda: model.shortlist_output(ids)
    out = model.shortlist_output(ids)
    return found, len(out["shortlist_bias"]), out["shortlist_positions"].shape[1]


def run(args):
    from seq2seq_attn import shortlist
    from seq2seq_attn.inference.runtime import OnnxModel
    from seq2seq_attn.tokenizer import TokenizerPair

    fill_defaults(args, FULL, SMALL)
    if args.export_dir is None:
        raise SystemExit("--export-dir is required: an export with a shortlist")
    model = OnnxModel(args.export_dir, quantized=args.quantized)
    if not model.has_shortlist:
        raise SystemExit(f"{args.export_dir} has no shortlist graphs (export a run with one)")
    source = TokenizerPair.load(f"{args.export_dir}/tokenizer").source
    sizes = [int(size) for size in args.batches.split(",")]
    texts = texts_for(max(sizes), args.seed)
    rows = []
    for size in sizes:
        ids = source.encode_batch(texts[:size])
        for beam_width in (1, BEAM):
            found, count, vocab = paths(model, ids, beam_width)
            ms = {name: fastest(fn, args.repeats) for name, fn in found.items()}
            share = round(count / vocab, 3)
            row = {"texts": size, "beam_width": beam_width, "union_share": share, "ms": ms}
            row["rule_takes_columns"] = shortlist.columns_pay(size * beam_width, count, vocab)
            row["full_over_masked"] = round(ms["full"] / ms["masked"], 3)
            row["full_over_columns"] = round(ms["full"] / ms["columns"], 3)
            print(f"{size:3d} texts, beam {beam_width}: union {share:.0%}, {ms}", flush=True)
            rows.append(row)
    return {"export": str(args.export_dir), "quantized": args.quantized, "rows": rows}
