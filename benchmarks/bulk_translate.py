"""Bulk translation: `translate-corpus` on Beam with 1 and 2 workers against `translate --input`.

The shipped pretrained en-es model: `translate --input --full-vocabulary` runs its run
directory (Keras and TensorFlow, batches of 32 sorted by length, the whole target vocabulary as
the export decodes it); `translate-corpus` runs its export (onnxruntime, the host-side search,
TensorFlow-free) on Beam's in-process runner with 1 and 2 workers (`--direct_num_workers`;
threads, the command's default). Each command runs in a fresh process, on the same N English
verses of the embedded Bible corpus (its first N source lines, greedy): the wall time includes
the start-up, which is also measured alone on a one-line file (TensorFlow and the model for
`translate`, Beam's runner and workers for `translate-corpus`). The commands take turns for
`--rounds` rounds (2), and the figures are the median seconds, lines per second, their ratio to
`translate --input`, and how many output lines agree (a runaway output that runs into the
maximum length is cut at the length of its own source by `translate-corpus`, at that of its
padded batch by `translate`).

    python -m benchmarks bulk_translate           # 10,000 lines, 2 rounds, ~10 min on 2 cores
    python -m benchmarks bulk_translate --small   # 300 lines, 1 round

With and without the lexical shortlist (each line over its own candidates), beam search:

    python -m benchmarks bulk_translate --lines 1000 --workers 1 --batch-size 64 \
        --beam 4 --shortlist --out benchmarks/results/bulk_shortlist_beam4.json

(`--shortlist` adds a `translate-corpus --shortlist` run beside each worker count; `--beam`
and `--batch-size` apply to every command.)

Writes benchmarks/results/bulk_translate.json, with the 1-minute load average when each
command started: on a shared machine, read the ratios, not the absolute numbers.
"""

import gzip
import os
import statistics
import sys
from pathlib import Path

from benchmarks import common
from benchmarks.harness import fill_defaults, work_dir

PRETRAINED = common.ROOT / "seq2seq_attn" / "pretrained" / "bible-en-es"
BIBLE = common.ROOT / "data" / "bible-en-es.tsv.gz"
LOADS = {}  # command -> 1-minute load average when it started


def verses(count):
    """The first `count` English verses of the embedded corpus (repeated if it has fewer)."""
    with gzip.open(BIBLE, "rt", encoding="utf-8") as rows:
        column = next(rows).rstrip("\n").split("\t").index("en")  # ref, split, en, es
        lines = [row.rstrip("\n").split("\t")[column] for row in rows if row.strip()]
    return [lines[i % len(lines)] for i in range(count)]


def _cli(*argv):
    return [str(Path(sys.executable).with_name("seq2seq-attn")), *map(str, argv)]


def timed(name, argv, scratch):
    """`(seconds, peak RSS MB)` of one command in a fresh process; exits on failure."""
    log = scratch / f"{name}.log"
    LOADS[name] = round(os.getloadavg()[0], 2)  # the machine is shared: how busy it was
    code, wall, rss = common.run_child(argv, log, common.export_env())
    if code:
        raise SystemExit(f"{name} failed ({code}), see {log}")
    print(f"{name}: {wall:.1f} s", flush=True)
    return round(wall, 2), rss


def _shards(prefix):
    files = sorted(prefix.parent.glob(prefix.name + "-?????-of-?????"))
    return "".join(p.read_text(encoding="utf-8") for p in files).splitlines()


def commands(export_dir, source, scratch, workers, beam=1, batch_size=32, shortlist=False):
    """`{name: (argv, output reader)}` of the timed runs on `source`; with `shortlist`, each
    `translate-corpus` run also with `--shortlist`."""
    decode = ["--beam", beam, "--batch-size", batch_size]
    out = {
        "translate": (
            _cli(
                "translate",
                "--run-dir",
                PRETRAINED,
                "--input",
                source,
                "--output",
                scratch / "translate.out",
                "--full-vocabulary",
                *decode,
                "-q",
            ),  # fmt: skip
            lambda: (scratch / "translate.out").read_text(encoding="utf-8").splitlines(),
        )
    }
    for w in workers:
        for suffix in ("", "_shortlist") if shortlist else ("",):
            prefix = scratch / f"corpus{w}{suffix}" / "es"
            prefix.parent.mkdir(exist_ok=True)
            argv = _cli("translate-corpus", export_dir, "--input", source, "--output", prefix,
                        "--direct_num_workers", w, *decode, "-q")  # fmt: skip
            if suffix:
                argv.insert(-1, "--shortlist")
            out[f"translate_corpus_{w}{suffix}"] = (argv, lambda prefix=prefix: _shards(prefix))
    return out


def _after(lines, seconds, startup):
    """Lines per second once started (None when the one-line run took as long: noise)."""
    return round(lines / (seconds - startup), 1) if seconds > startup else None


def add_arguments(parser):
    parser.add_argument("--lines", type=int, help="input lines (10000, small 300)")
    parser.add_argument("--workers", type=int, nargs="+", help="Beam workers (1 2)")
    parser.add_argument("--rounds", type=int, help="rounds, commands taking turns (2, small 1)")
    parser.add_argument("--beam", type=int, default=1, help="beam width of every command (1)")
    parser.add_argument("--batch-size", type=int, default=32, help="lines a batch (32)")
    parser.add_argument(
        "--shortlist", action="store_true", help="translate-corpus also with --shortlist"
    )


def _round(cmds, source, one, scratch, timings):
    """One round: each command on the one-line file, then on the input, in turn."""
    for name, (argv, _) in cmds.items():
        one_line = [a.replace(str(source), str(one)) for a in argv]
        startup = timed(f"{name}_one_line", one_line, scratch)[0]
        seconds, rss = timed(name, argv, scratch)
        timings.setdefault(name, []).append((seconds, startup, rss, LOADS[name]))


def _row(lines, timings, agree, cut):
    """A command's figures from its rounds: medians, and every round's seconds and load."""
    seconds = statistics.median(t[0] for t in timings)
    startup = statistics.median(t[1] for t in timings)
    return {
        "seconds": round(seconds, 2),
        "seconds_by_round": [t[0] for t in timings],
        "startup_seconds": round(startup, 2),
        "lines_per_second": round(lines / seconds, 1),
        "lines_per_second_after_startup": _after(lines, seconds, startup),
        "peak_rss_mb": max(t[2] for t in timings),
        "load_average_at_start": max(t[3] for t in timings),
        "load_average_by_round": [t[3] for t in timings],
        "lines_equal_to_translate": agree,
        "lines_cut_at_another_max_length": cut,  # one output a prefix of the other
    }


def run(args):
    fill_defaults(
        args, {"lines": 10_000, "workers": [1, 2], "rounds": 2}, {"lines": 300, "rounds": 1}
    )
    scratch = work_dir(args.small, "bulk_translate")
    scratch.mkdir(parents=True, exist_ok=True)
    export_dir = scratch / "export"
    if not (export_dir / "manifest.json").exists():
        common.run_export_cli(PRETRAINED, export_dir, samples=20)
    source, one = scratch / "input.txt", scratch / "one.txt"
    source.write_text("".join(line + "\n" for line in verses(args.lines)), encoding="utf-8")
    one.write_text(verses(1)[0] + "\n", encoding="utf-8")
    cmds = commands(
        export_dir, source, scratch, args.workers, args.beam, args.batch_size, args.shortlist
    )
    timings = {}
    for _ in range(args.rounds):
        _round(cmds, source, one, scratch, timings)
    figures = {"lines": args.lines, "rounds": args.rounds, "model": "pretrained bible-en-es"}
    figures.update(beam=args.beam, batch_size=args.batch_size)
    figures["runs"], reference = {}, cmds["translate"][1]()
    for name, (_, read) in cmds.items():
        pairs = list(zip(read(), reference, strict=True))
        agree = sum(a == b for a, b in pairs)
        cut = sum(a != b and (a.startswith(b) or b.startswith(a)) for a, b in pairs)
        figures["runs"][name] = _row(args.lines, timings[name], agree, cut)
    base = figures["runs"]["translate"]["lines_per_second"]
    for row in figures["runs"].values():
        row["x_translate"] = round(row["lines_per_second"] / base, 3)
    return figures
