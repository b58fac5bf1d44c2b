"""Markdown from result files: each benchmark's tables, its plots, and README's headline block.

    python -m benchmarks headline                   # print the headline block
    python -m benchmarks headline --write README.md # replace README's block with it

`render(record)` is what the MkDocs hook (`docs/hooks/benchmarks.py`) puts in place of each
`<!-- benchmark: NAME -->` line of docs/benchmarks.md; `headline_block()` is README's table
of one current figure per benchmark. Both read only `benchmarks/results/NAME.json`, so the
README, the docs and the results cannot disagree. Nothing here imports TensorFlow.
"""

import argparse
import json
from pathlib import Path

from benchmarks.harness import DOCS_DIR, RESULTS_DIR

START = "<!-- headline-figures:start -->"
END = "<!-- headline-figures:end -->"
PAGE = "docs/benchmarks.md"
HEADLINE_ORDER = (  # README's order: training, decoding, export, serving, the paper's claims
    "train_throughput",
    "train_tutorial_size",
    "time_to_quality",
    "training_modes",
    "decode_latency",
    "tutorial_size",
    "export_cost",
    "parity_profile",
    "startup",
    "web_page",
    "bulk_translate",
    "load_test",
    "training_recipes",
    "attention_vs_vanilla",
    "reverse_by_length",
    "shortlist_coverage",
    "shortlist_paths",
    "alignment_error",
)
PLOTS = {  # the pictures in docs/ that a full run of the benchmark draws
    "attention_vs_vanilla": ("bleu-by-length.png",),
    "decode_latency": ("decode-latency.png",),
    "reverse_by_length": ("reverse-by-length.png",),
    "time_to_quality": ("time-to-quality.png",),
    "train_throughput": ("train-throughput.png",),
}


# ---- reading ----


def load(name, folder=RESULTS_DIR):
    """The result record of benchmark `name`."""
    return json.loads((Path(folder) / f"{name}.json").read_text())


def plots(name, docs=DOCS_DIR):
    """The file names of the existing plots in docs/ that benchmark `name` draws."""
    return [file for file in PLOTS.get(name, ()) if (Path(docs) / file).exists()]


def machine_line(machine):
    """A short description of the machine of a result."""
    if not isinstance(machine, dict):
        return str(machine)
    cores = machine.get("cpu_count")
    flags = machine.get("cpu_flags")
    text = f"{machine.get('cpu_model') or machine.get('processor', '?')}, {cores} cores"
    if flags:
        text += f" ({'AMX, ' if any(f.startswith('amx') for f in flags) else ''}"
        text += f"{'AVX-512' if 'avx512f' in flags else 'AVX2' if 'avx2' in flags else 'AVX'})"
    return text


def commit_of(record):
    commit = record.get("commit") or {}
    return (commit.get("commit") or "?")[:7] if isinstance(commit, dict) else str(commit)[:7]


# ---- tables ----


def fmt(value, digits=2):
    """A number for a table cell: `digits` decimals, thousands apart; '-' for None."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"


def table(columns, rows):
    """A markdown table: `columns` header cells, `rows` lists of cells."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _attention_vs_vanilla(f):
    sides = [s for s in ("attention", "vanilla") if s in f]
    rows = [
        [bucket["range"], *[f[s]["buckets"][i]["bleu"] for s in sides], bucket["n"]]
        for i, bucket in enumerate(f[sides[0]]["buckets"])
    ]
    rows.append(["all", *[f[s]["bleu"] for s in sides], f[sides[0]]["n"]])
    columns = ["source length", *[f"{s} BLEU" for s in sides], "sentences"]
    return [("Test BLEU by source length (greedy)", table(columns, rows))]


def _decode_latency(f):
    rows = [
        [r["runtime"], r["mode"], r["batch"], r["latency_ms"]["median"], r["latency_ms"]["p90"],
         r["ms_per_step"], r["sentences_per_s"], r["tokens_per_s"], r["floor_ms"],
         r["ratio_to_floor"]["median"], r["tokens_equal_to_keras"]]
        for r in f["rows"]
        if r["applicable"]
    ]  # fmt: skip
    columns = ["runtime", "mode", "batch", "median ms", "p90 ms", "ms/step", "sentences/s"]
    columns += ["tokens/s", "floor ms", "x floor", "tokens = Keras"]
    return [("Latency and throughput against the matmul floor", table(columns, rows))]


def _export_cost(f):
    stages = f.get("export_stages", f)
    found = []
    if "export" in f:
        export = f["export"]
        rows = [[export["command"], export["wall_s"], export["peak_rss_mb"]]]
        found.append(("The whole export", table(["command", "seconds", "peak RSS MB"], rows)))
    if "seconds" in stages:
        peaks = stages.get("vmhwm_mb_after", {})
        rows = [[name, s, peaks.get(name)] for name, s in stages["seconds"].items()]
        found.append(("Stage by stage", table(["stage", "seconds", "peak MB so far"], rows)))
    if "sizes" in f:
        rows = [[name, size / 1e6] for name, size in f["sizes"]["export_bytes"].items()]
        found.append(("Artifact sizes", table(["artifact", "MB"], rows)))
    if "memory" in f:
        rows = [[name, p["vmhwm_mb"], p.get("load_s")] for name, p in f["memory"]["probes"].items()]
        found.append(("Peak memory per runtime", table(["probe", "VmHWM MB", "load s"], rows)))
    return found


def _load_test(f):
    rows = []
    for config in f["configurations"]:
        for level in config["levels"]:
            latency = level["latency_ms"]
            rows.append(
                [config["name"], level["concurrency"], level["ok"], level["requests"],
                 level["errors"], level["throughput_rps"], level["throughput_texts_per_s"],
                 latency["p50"], latency["p90"], latency["p99"]]
            )  # fmt: skip
    columns = ["server", "clients", "ok", "requests", "errors", "requests/s", "texts/s"]
    columns += ["p50 ms", "p90 ms", "p99 ms"]
    return [("Throughput and latency by concurrency", table(columns, rows))]


def _parity_profile(f):
    rows = [[part, seconds] for part, seconds in f["seconds"].items()]
    title = f"Parity on {f['samples']} sentences, part by part (passed: {f['passed']})"
    return [(title, table(["part", "seconds"], rows))]


def _reverse_by_length(f):
    by_length = f["exact_match_by_length"]
    sides = list(by_length)
    lengths = sorted(by_length[sides[0]], key=int)
    rows = [[int(n), *[by_length[s][n] for s in sides]] for n in lengths]
    columns = ["symbols", *[f"{s} exact match" for s in sides]]
    return [(f"Exact match by length after {f['epochs']} epochs", table(columns, rows))]


def _startup(f):
    rows = [
        [site, command, row["median_seconds"], row["x_first"], max(row["peak_rss_mib"])]
        for site, commands in f["commands"].items()
        for command, row in commands.items()
    ]
    columns = ["site", "command", "median s", "x first site", "peak RSS MiB"]
    return [(f"Commands in fresh processes, {f['rounds']} rounds", table(columns, rows))]


def _train_throughput(f):
    rows = [
        [name, r["tokens_per_second"], r["speedup_vs_naive"], r["max_abs_loss_diff_vs_naive"]]
        for name, r in f["implementations"].items()
    ]
    columns = ["implementation", "target tokens/s", "x naive", "max abs loss diff vs naive"]
    return [(f"model.fit over {f['batches']} batches", table(columns, rows))]


def _train_tutorial_size(f):
    rows = [
        [name, r["steps_per_second"], r.get("x_tutorial"), r.get("x_seq2seq_attn"),
         r["peak_rss_mb"], r.get("max_abs_loss_diff_vs_seq2seq_attn")]
        for name, r in f["implementations"].items()
    ]  # fmt: skip
    columns = ["implementation", "steps/s", "x tutorial", "x seq2seq_attn", "peak RSS MB"]
    columns.append("max abs loss diff vs seq2seq_attn")
    return [(f"Batch {f['size']['batch_size']}, same batches", table(columns, rows))]


def _time_to_quality(f):
    title = (
        f"Dev BLEU (greedy, {f['dev_sample']} dev pairs) after each training minute, "
        f"mean over seeds {', '.join(map(str, f['seeds']))}"
    )
    found = [(title, f["table"].rstrip())]
    updates = {(run["impl"], str(run["seed"])): run.get("steps") for run in f.get("runs", [])}
    rows = [
        [impl, seed, row["tutorial_final_bleu"], row["minutes_to_tutorial_final"],
         row["ahead_after_first_minute"], updates.get((impl, seed)),
         updates.get(("tutorial", seed))]
        for impl, by_seed in f["against_tutorial"].items()
        for seed, row in by_seed.items()
    ]  # fmt: skip
    if rows:
        columns = ["recipe", "seed", f"tutorial's BLEU at {f['minutes']:g} min"]
        columns += ["minutes to reach it", "ahead at every minute after the first"]
        columns += ["updates", f"tutorial's updates in {f['minutes']:g} min"]
        found.append(("Against the tutorial, seed by seed", table(columns, rows)))
    return found


def _training_modes(f):
    rows = [
        [group, mode, r["target_tokens_per_s"], r["ratio_to_float32_one_device"],
         r["dev_loss_after"]]
        for group in ("precision", "distributed") if group in f
        for mode, r in f[group].items()
    ]  # fmt: skip
    columns = ["group", "mode", "target tokens/s", "x float32 one device", "dev loss after"]
    return [("Training throughput by mode", table(columns, rows))]


def _training_recipes(f):
    rows = [
        [name, r["steps"], r["epochs_run"], r["test_bleu"], r["test_chrf"]]
        for name, r in f["recipes"].items()
    ]
    title = f"{f['minutes_per_recipe']} minutes per recipe, test on {f['test_limit']} pairs"
    return [(title, table(["recipe", "steps", "epochs", "test BLEU", "test chrF"], rows))]


def _tutorial_size(f):
    rows = [
        [name, r["median_ms"], r["p90_ms"], r.get("ratio_to_litert_graph"),
         r.get("same_text_as_baseline"), r.get("speedup_vs_tutorial"),
         r.get("speedup_vs_tutorial_paired"), r.get("speedup_vs_full_vocabulary"),
         r.get("speedup_vs_full_vocabulary_paired"), r.get("same_text_as_full_vocabulary")]
        for name, r in f["latency"].items()
    ]  # fmt: skip
    columns = [
        "runtime", "median ms", "p90 ms", "x litert_graph", "same text as litert_graph",
        "speedup vs tutorial", "paired", "speedup vs full vocabulary", "paired",
        "same text as full vocabulary",
    ]  # fmt: skip
    found = [("Batch 1, greedy, text to text", table(columns, rows))]
    if "breakdown" in f:
        b = f["breakdown"]
        parts = [[name, ms] for name, ms in b["median_ms"].items()]
        floor = b["floor_ms"]
        parts += [["one step", b["step_ms"]], ["floor: encoder", floor["encoder"]]]
        parts += [["floor: one step", floor["step"]], ["floor: the decode", floor["decode"]]]
        title = (f"Where one decode over the shortlist goes (onnxruntime host search, 1 thread; "
                 f"median {b['source_tokens_median']} source tokens, {b['decoder_steps_median']} "
                 f"steps, {b['mean_candidates']} candidates)")  # fmt: skip
        found.append((title, table(["part", "median ms"], parts)))
    return found


def _shortlist_coverage(f):
    columns = ["top_k", "frequent", "coverage", "mean candidates", "share of vocabulary"]
    found = []
    for name in ("bible", "tutorial"):
        d = f[name]
        rows = [[r["top_k"], r["frequent"], r["coverage"], r["mean_candidates"],
                 r["share_of_vocabulary"]] for r in d["sizes"]]  # fmt: skip
        title = (f"{name}: {d['test_pairs']} test pairs, {d['train_pairs']} training pairs, "
                 f"target vocabulary {d['vocab'][1]}")  # fmt: skip
        found.append((title, table(columns, rows)))
    return found


def _shortlist_paths(f):
    columns = ["texts", "beam", "union", "full ms", "columns ms", "masked ms", "shortlist.onnx ms"]
    columns += ["full / masked", "full / columns", "the rule takes"]
    rows = [
        [r["texts"], r["beam_width"], f"{r['union_share']:.0%}", r["ms"]["full"],
         r["ms"]["columns"], r["ms"]["masked"], r["ms"]["shortlist_onnx"],
         r["full_over_masked"], r["full_over_columns"],
         "columns" if r["rule_takes_columns"] else "masked"]
        for r in f["rows"]
    ]  # fmt: skip
    kind = "int8" if f["quantized"] else "float32"
    title = f"Fastest of the repeats, {kind} graphs of `{f['export']}`, onnxruntime, one thread"
    return [(title, table(columns, rows))]


def _alignment_error(f):
    rows = [
        [name, f"{r['aer']:.3f}", f"{r['precision']:.3f}", f"{r['recall']:.3f}", r["links"],
         r["sure_links"]]
        for name, r in f["variants"].items()
    ]  # fmt: skip
    columns = ["attention row for output word i", "AER", "precision", "recall", "links"]
    columns.append("sure links")
    title = f"{f['verses']} Bible test verses, teacher-forced, against {f['reference']}"
    return [(title, table(columns, rows))]


def _bulk_translate(f):
    rows = [
        [name, r["seconds"], " / ".join(map(str, r.get("seconds_by_round", []))) or "-",
         r["startup_seconds"], r["lines_per_second"],
         fmt(r["lines_per_second_after_startup"]), r["x_translate"],
         f"{r['lines_equal_to_translate']} / {f['lines']}",
         r.get("lines_cut_at_another_max_length", "-"), r["peak_rss_mb"],
         " / ".join(map(str, r.get("load_average_by_round", []))) or "-"]
        for name, r in f["runs"].items()
    ]  # fmt: skip
    columns = ["command", "median s", "s by round", "start-up s", "lines/s",
               "lines/s after start-up",
               "x translate", "lines equal to translate", "others: cut at another max length",
               "peak RSS MB", "load average at start by round"]  # fmt: skip
    rounds = f.get("rounds", 1)
    title = f"{f['lines']} lines of the {f['model']} model, greedy, {rounds} round(s)"
    return [(title, table(columns, rows))]


def _web_page(f):
    models = f["models"]
    sizes = [
        [name, kind, fmt(s["raw_mb"]), fmt(s["gzip_mb"]), fmt(m["first_translation_s"][kind])]
        for name, m in models.items()
        for kind, s in m["sizes"].items()
    ]
    columns = ["model", "graphs", "download MB", "gzip MB", "first translation s"]
    names = ("browser_greedy", "browser_greedy_in_worker", "python_host_greedy",
             "python_greedy_onnx", "browser_beam4", "browser_beam4_in_worker",
             "python_host_beam4")  # fmt: skip
    latency = [
        [name, kind, m["sentences"], *(fmt(ms[n]) for n in names),
         fmt(m["ratios"][kind]["greedy_vs_python_host"]),
         fmt(m["ratios"][kind]["beam4_vs_python_host"]),
         f"{m['agreement'][kind]['greedy']:.0%} / {m['agreement'][kind]['beam4']:.0%}"]
        for name, m in models.items()
        for kind, ms in m["latency_ms"].items()
    ]  # fmt: skip
    latency_columns = ["model", "graphs", "sentences", "browser greedy ms", "in worker",
                       "Python host", "Python greedy.onnx", "browser beam 4 ms", "in worker",
                       "Python host", "greedy x Python", "beam 4 x Python",
                       "same text greedy / beam"]  # fmt: skip
    every = [
        [name, kind, runner, fmt(value)]
        for name, m in models.items()
        for kind, ms in m["latency_ms"].items()
        for runner, value in ms.items()
    ]
    return [
        ("What the page downloads", table(columns, sizes)),
        ("Batch-1 latency, median per sentence", table(latency_columns, latency)),
        (
            "Every runner, median ms per sentence",
            table(["model", "graphs", "runner", "ms"], every),
        ),
    ]


TABLES = {
    "alignment_error": _alignment_error,
    "attention_vs_vanilla": _attention_vs_vanilla,
    "bulk_translate": _bulk_translate,
    "decode_latency": _decode_latency,
    "export_cost": _export_cost,
    "load_test": _load_test,
    "parity_profile": _parity_profile,
    "reverse_by_length": _reverse_by_length,
    "shortlist_coverage": _shortlist_coverage,
    "shortlist_paths": _shortlist_paths,
    "startup": _startup,
    "train_throughput": _train_throughput,
    "train_tutorial_size": _train_tutorial_size,
    "time_to_quality": _time_to_quality,
    "training_modes": _training_modes,
    "training_recipes": _training_recipes,
    "tutorial_size": _tutorial_size,
    "web_page": _web_page,
}


def tables(record):
    """`[(title, markdown table)]` of a result record."""
    return TABLES[record["benchmark"]](record["figures"])


def render(record, with_plots=True, plot_prefix=""):
    """A result record as markdown: where and when it ran, its tables, and (`with_plots`)
    its plots in docs/ as images, `plot_prefix` before each file name."""
    name = record["benchmark"]
    lines = [
        f"*Result `benchmarks/results/{name}.json`: {machine_line(record['machine'])}, "
        f"{record['date'][:10]}, commit `{commit_of(record)}`.*",
        "",
    ]
    for title, markdown in tables(record):
        lines += [f"**{title}**", "", markdown, ""]
    if with_plots:
        lines += [f"![{name}]({plot_prefix}{file})" for file in plots(name)]
    return "\n".join(lines).rstrip() + "\n"


# ---- the headline figures ----


def _row(rows, runtime, mode, batch):
    return next(r for r in rows if (r["runtime"], r["mode"], r["batch"]) == (runtime, mode, batch))


def _export_seconds_and_peak(f):
    """The whole export's seconds and peak MB (a run with only the stages: theirs)."""
    if "export" in f:
        return f["export"]["wall_s"], f["export"]["peak_rss_mb"]
    stages = f.get("export_stages", f)
    return stages["seconds"]["total"], max(stages["vmhwm_mb_after"].values())


def _mean(values):
    return sum(values) / len(values)


def _shortlist_default(f):
    sizes = (f["defaults"]["top_k"], f["defaults"]["frequent"])
    return next(r for r in f["bible"]["sizes"] if (r["top_k"], r["frequent"]) == sizes)


HEADLINES = {  # benchmark -> its one current figure, as text
    "alignment_error": lambda f: (
        f"attention word alignments on {f['verses']} Bible test verses: AER "
        f"{list(f['variants'].values())[0]['aer']:.3f} against eflomal's, "
        f"{list(f['variants'].values())[1]['aer']:.3f} and "
        f"{list(f['variants'].values())[2]['aer']:.3f} shifted a row either way"
    ),
    "attention_vs_vanilla": lambda f: (
        f"test BLEU {f['attention']['bleu']:.2f} with attention, {f['vanilla']['bleu']:.2f} without"
    ),
    "bulk_translate": lambda f: (
        f"translate-corpus, {f['lines']} lines: "
        + ", ".join(
            f"{r['x_translate']:.2f}x `translate --input` with {n.rsplit('_', 1)[1]} "
            f"worker{'s' if n.rsplit('_', 1)[1] != '1' else ''}"
            for n, r in f["runs"].items()
            if n != "translate"
        )
    ),
    "decode_latency": lambda f: (
        "onnx_host greedy, batch 1: "
        f"{_row(f['rows'], 'onnx_host', 'greedy', 1)['latency_ms']['median']:.1f} ms, "
        f"{_row(f['rows'], 'onnx_host', 'greedy', 1)['ratio_to_floor']['median']:.2f}x "
        "the matmul floor"
    ),
    "export_cost": lambda f: (
        f"export of the benchmark model: {_export_seconds_and_peak(f)[0]:.0f} s, "
        f"peak {_export_seconds_and_peak(f)[1]:,.0f} MB"
    ),
    "load_test": lambda f: (
        f"{f['configurations'][0]['levels'][-1]['throughput_texts_per_s']:.1f} texts/s at "
        f"{f['configurations'][0]['levels'][-1]['concurrency']} clients, "
        f"{f['configurations'][0]['levels'][-1]['errors']} errors"
    ),
    "parity_profile": lambda f: (
        f"parity on {f['samples']} sentences: {f['seconds']['total']:.0f} s"
    ),
    "reverse_by_length": lambda f: (
        "mean exact match "
        f"{_mean(list(f['exact_match_by_length']['attention'].values())):.2f} with attention, "
        f"{_mean(list(f['exact_match_by_length']['vanilla'].values())):.2f} without"
    ),
    "shortlist_coverage": lambda f: (
        f"shortlist top {f['defaults']['top_k']} + {f['defaults']['frequent']} frequent: "
        f"{_shortlist_default(f)['coverage']:.1%} of Bible test pieces covered by "
        f"{_shortlist_default(f)['mean_candidates']:.0f} of {f['bible']['vocab'][1]} pieces, "
        f"built in {f['bible']['build']['ratio_to_training']:.1%} of the training time"
    ),
    "shortlist_paths": lambda f: _shortlist_paths_headline(f["rows"]),
    "startup": lambda f: (
        "`translate` in a fresh process: "
        f"{list(f['commands'].values())[-1]['translate']['median_seconds']:.2f} s"
    ),
    "train_throughput": lambda f: (
        f"{f['implementations']['seq2seq_attn']['tokens_per_second']:.0f} target tokens/s, "
        f"{f['implementations']['seq2seq_attn']['speedup_vs_naive']:.2f}x the naive model"
    ),
    "train_tutorial_size": lambda f: (
        f"{f['implementations']['seq2seq_attn']['steps_per_second']:.2f} steps/s, "
        f"{f['implementations']['seq2seq_attn']['x_tutorial']:.2f}x the TF tutorial's model"
    ),
    "time_to_quality": lambda f: _time_to_quality_headline(f),
    "training_modes": lambda f: (
        "float32 on one device: "
        f"{f['precision']['float32, one device']['target_tokens_per_s']:.0f} target tokens/s"
    ),
    "training_recipes": lambda f: (
        f"best of {len(f['recipes'])} recipes after {f['minutes_per_recipe']:.0f} min: "
        f"{f['best_by_test_bleu']}, test BLEU "
        f"{f['recipes'][f['best_by_test_bleu']]['test_bleu']:.2f}"
    ),
    "tutorial_size": lambda f: _tutorial_size_headline(f["latency"]),
    "web_page": lambda f: _web_headline(
        f["models"].get("pretrained") or f["models"]["tutorial_size"]
    ),
}


def _time_to_quality_headline(f):
    recipe, by_seed = next(iter(f["against_tutorial"].items()))
    reached = [row["minutes_to_tutorial_final"] for row in by_seed.values()]
    final = _mean([row["tutorial_final_bleu"] for row in by_seed.values()])
    when = (
        f"after {max(reached):g} min"
        if None not in reached
        else f"not within {f['minutes']:g} min on {reached.count(None)} of {len(reached)} seeds"
    )
    found = (
        f"`{recipe}` recipe reaches the TF tutorial's {f['minutes']:g}-minute dev BLEU "
        f"({final:.1f}) {when}"
    )
    budgeted = [r for r in f["runs"] if r["impl"] == "default_3min" and r["points"]]
    if budgeted:
        last = _mean([r["points"][-1]["bleu"] for r in budgeted])
        found += f"; `train --max-minutes 3`: {last:.1f} after 3 min"
    return found


def _shortlist_paths_headline(rows):
    chosen = [
        r["full_over_columns" if r["rule_takes_columns"] else "full_over_masked"] for r in rows
    ]
    return (
        f"the shortlist path the server takes: {min(chosen):.2f}-{max(chosen):.2f}x as fast as the "
        f"full vocabulary over {len(rows)} batch sizes and beams"
    )


def _tutorial_size_headline(latency):
    host = latency["onnx_host"]
    if "speedup_vs_tutorial" not in latency.get("onnx_host_shortlist", {}):  # older results
        return (
            f"onnx_host batch 1: {host['median_ms']:.1f} ms, "
            f"{host['ratio_to_litert_graph']:.2f}x LiteRT's graph"
        )
    short = latency["onnx_host_shortlist"]
    saved = latency.get("saved_model_shortlist", {}).get("speedup_vs_tutorial")
    return (
        f"onnx_host batch 1 with the shortlist: {short['median_ms']:.1f} ms, "
        f"{short['speedup_vs_tutorial']:.2f}x as fast as the TF tutorial's SavedModel, "
        f"{short['speedup_vs_full_vocabulary']:.2f}x as without"
        + ("" if saved is None else f"; our SavedModel's greedy_shortlist {saved:.2f}x")
    )


def _web_headline(m):
    return (
        f"the page in Chromium: int8 download {m['sizes']['int8']['gzip_mb']:.1f} MB gzip; "
        f"float32 greedy {m['ratios']['float32']['greedy_vs_python_host']:.2f}x and beam 4 "
        f"{m['ratios']['float32']['beam4_vs_python_host']:.2f}x Python onnxruntime's time"
    )


def headline(record):
    """The one current figure of a result record, as text."""
    return HEADLINES[record["benchmark"]](record["figures"])


def headline_block(folder=RESULTS_DIR, page=PAGE):
    """README's block: one current figure per benchmark, with its machine and date."""
    rows = []
    for name in HEADLINE_ORDER:
        record = load(name, folder)
        link = f"[{name}]({page}#{name})"
        rows.append(
            [
                link,
                headline(record),
                machine_line(record["machine"]),
                record["date"][:10],
            ]
        )
    lines = [START, table(["benchmark", "figure", "machine", "date"], rows), END]
    return "\n".join(lines) + "\n"


def replace_block(text, block):
    """`text` with its headline block (markers included) replaced by `block`."""
    if START not in text or END not in text:
        raise ValueError(f"no {START} ... {END} block in the file")
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    return before + block.rstrip("\n") + after


def headline_main(argv):
    """`python -m benchmarks headline [--write FILE]`."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks headline")
    parser.add_argument("--write", type=Path, help="replace this file's headline block")
    args = parser.parse_args(argv)
    block = headline_block()
    if args.write is None:
        print(block, end="")
        return 0
    try:
        args.write.write_text(replace_block(args.write.read_text(), block))
    except (OSError, ValueError) as error:
        print(f"{args.write}: {error}")
        return 2
    print(f"wrote the headline figures into {args.write}")
    return 0
