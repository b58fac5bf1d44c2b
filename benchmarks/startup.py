"""What a user waits for: whole CLI commands in fresh processes, one installed copy against another.

Each command runs as `seq2seq-attn ...` in a new process, so the time includes Python and
TensorFlow start-up, loading and tracing: what a user of the command line, or a job that
translates one file, waits for. Copies of the package given with `--site NAME=DIR` (a folder
a wheel was installed into with `pip install --no-deps --target DIR`) take turns command by
command, round by round, so the ratios are measured side by side on the same machine.

Commands: `translate` (the pretrained model, one sentence, greedy), `translate_beam` (beam 4,
2-best), `train_tiny` (the tests' tiny dates model, one epoch), and with `--export`
`export_pretrained` (the shipped model, every artifact, 200 parity sentences).

    python -m benchmarks startup --site old=/tmp/old/site --site new=/tmp/new/site --rounds 3
    python -m benchmarks startup --small    # this environment's copy, `translate`, one round

Without `--site` it times the copy installed in this environment (`installed`: the
`seq2seq-attn` script beside this interpreter). Writes benchmarks/results/startup.json (or
`--out`): every wall time and peak RSS, the medians, and each site's median over the first
site's.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import common
from benchmarks.harness import clock

INSTALLED = "installed"  # --site value: the copy installed in this environment
TEXT = "In the beginning God created the heaven and the earth."
TINY = json.dumps(common.TINY_CONFIG)  # the tests' tiny model's config file (JSON is YAML)


def commands(site, scratch, export):
    """`{name: argv}` of the timed commands for one installed copy."""
    config = Path(scratch) / "tiny.yaml"
    config.write_text(TINY)
    out = {
        "translate": ["translate", TEXT],
        "translate_beam": ["translate", "--beam", "4", "--n-best", "2", TEXT],
        "train_tiny": ["train", "--data", "dates", "--config", str(config)],
    }
    out["train_tiny"] += ["--out", str(Path(scratch) / "tiny-run")]
    if export:
        model = _package_dir(site) / "pretrained" / "bible-en-es"
        out["export_pretrained"] = ["export", str(model), "--out", f"{scratch}/export", "--force"]
    return out


def _package_dir(site):
    if site == INSTALLED:
        import seq2seq_attn

        return Path(seq2seq_attn.__file__).parent
    return Path(site) / "seq2seq_attn"


def timed(site, argv, log):
    """Runs `seq2seq-attn argv` from `site` in a fresh process: `(seconds, peak RSS MiB)`."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if site == INSTALLED:
        script = Path(sys.executable).with_name("seq2seq-attn")
    else:
        env["PYTHONPATH"] = str(site)
        script = Path(site) / "bin" / "seq2seq-attn"
    started = clock()
    with open(log, "w") as out:
        child = subprocess.Popen(
            [sys.executable, str(script), *argv], stdout=out, stderr=subprocess.STDOUT, env=env
        )
        _, status, usage = os.wait4(child.pid, 0)
    seconds = clock() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"seq2seq-attn {' '.join(argv)} failed from {site}: see {log}")
    return seconds, usage.ru_maxrss / 1024


def summarize(runs):
    """`runs[site][command]` = list of `(seconds, mib)` -> medians and ratios to the first
    site (`x_first` above 1: slower than the first site)."""
    first = next(iter(runs))
    table = {}
    for site, by_command in runs.items():
        table[site] = {}
        for command, values in by_command.items():
            median = statistics.median(s for s, _ in values)
            base = statistics.median(s for s, _ in runs[first][command])
            table[site][command] = {
                "seconds": [round(s, 2) for s, _ in values],
                "peak_rss_mib": [round(m) for _, m in values],
                "median_seconds": round(median, 2),
                "x_first": round(median / base, 3),
            }
    return table


def add_arguments(parser):
    parser.add_argument(
        "--site", action="append", help=f"NAME=DIR, repeatable (default: {INSTALLED})"
    )
    parser.add_argument("--rounds", type=int, help="(3, small 1)")
    parser.add_argument("--export", action="store_true", help="also time export_pretrained")
    parser.add_argument("--commands", nargs="+", help="only these commands (small: translate)")


def run(args):
    sites = dict(item.split("=", 1) for item in args.site or [f"{INSTALLED}={INSTALLED}"])
    rounds = args.rounds or (1 if args.small else 3)
    only = args.commands or (["translate"] if args.small else None)
    runs = {name: {} for name in sites}
    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(rounds):
            for name, site in sites.items():
                own = Path(scratch) / name
                own.mkdir(exist_ok=True)
                for command, cmd in commands(site, own, args.export).items():
                    if only and command not in only:
                        continue
                    value = timed(site, cmd, own / f"{command}.log")
                    runs[name].setdefault(command, []).append(value)
                    print(f"round {round_ + 1} {name} {command}: {value[0]:.2f} s", flush=True)
    return {"sites": sites, "rounds": rounds, "commands": summarize(runs)}
