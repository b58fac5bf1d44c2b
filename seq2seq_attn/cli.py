"""`seq2seq-attn`: the command line. Each subcommand is a thin call into a plain function.

Exit codes: 0 success, 2 a user mistake (one line on stderr), anything else a bug.
"""

import argparse
import os
import sys
from pathlib import Path

from seq2seq_attn.config import STRATEGIES
from seq2seq_attn.errors import ParityError, UserError
from seq2seq_attn.native_logs import (
    quiet_tensorflow_startup,
    set_python_log_levels,
    set_verbosity,
)

# `train(verbose=...)` for --quiet, the default and --verbose (see `training.progress`).
PROGRESS = {"quiet": 0, "normal": "auto", "verbose": 1}


def default_config(data):
    """The config of `train` without `--config`: the bundled one of a bundled corpus (`dates`,
    `bible` for either direction of the Bible), else the package defaults (`config.DEFAULTS`:
    8000 pieces a side, 128 units, the default recipe)."""
    from seq2seq_attn.config import load_config, resolve_config
    from seq2seq_attn.corpora import BIBLE_NAMES

    if data == "dates":
        return load_config("dates")
    if data in BIBLE_NAMES:
        return load_config("bible")
    return resolve_config({})


def _init_from(value):
    """`--init-from`: a run directory, or `pretrained` for the shipped model (unless a
    directory of that name exists)."""
    from seq2seq_attn.commands import default_run_dir

    if value == "pretrained" and not Path(value).exists():
        return default_run_dir(None)
    return value


def _train(args):
    from seq2seq_attn.config import load_config
    from seq2seq_attn.training import train

    if args.data is None and args.train is None:
        raise UserError("say what to train on: --data CORPUS, or --train FILE [--dev FILE]")
    if args.data is not None and args.train is not None:
        raise UserError("--data and --train exclude each other")
    if args.train is None and (args.dev or args.test):
        raise UserError("--dev and --test go with --train FILE (--data splits its corpus itself)")
    config = load_config(args.config) if args.config else default_config(args.data)
    for key in ("epochs", "max_steps", "max_minutes"):
        if getattr(args, key) is not None:
            config["training"][key] = getattr(args, key)
    if args.strategy is not None:
        config["training"]["strategy"] = None if args.strategy == "default" else args.strategy
    if args.cpu_devices is not None:
        from seq2seq_attn.distribute import split_cpu

        if config["training"]["strategy"] != "mirrored":
            raise UserError("--cpu-devices only applies to the mirrored strategy")
        split_cpu(args.cpu_devices)
    files = None
    if args.train is not None:
        files = {"train": args.train, "dev": args.dev, "test": args.test}
    info = train(
        args.data,
        config,
        args.out,
        seed=args.seed,
        files=files,
        verbose=PROGRESS[args.verbosity],
        init_from=_init_from(args.init_from),
    )
    best = info["best"]
    scores = ", ".join(
        f"{name} {best[key]:.4f}" if key.endswith("loss") else f"{name} {best[key]:.2f}"
        for key, name in (("val_loss", "loss"), ("val_bleu", "BLEU"), ("val_chrf", "chrF"))
        if key in best
    )
    kept = (
        "the start (no epoch beat it)" if best.get("start") else f"epoch {best.get('epoch', '-')}"
    )
    print(
        f"trained {info['epochs_run']} epochs ({info['steps']} steps, stopped by "
        f"{info['stopped_by']}); kept {kept} by {info['select_by']}"
        + (f": dev {scores}" if scores else "")
    )
    if args.verbosity == "quiet":
        return
    if info["num_replicas"] > 1:
        print(f"{info['strategy']} strategy: {info['num_replicas']} replicas")
    print(f"run directory: {args.out}")


def _evaluate(args):
    from seq2seq_attn.commands import evaluate_run
    from seq2seq_attn.evaluation import format_table
    from seq2seq_attn.interface import DecodeOptions

    # Checked before TensorFlow loads, as translate's options are.
    DecodeOptions(beam_width=args.beam, length_penalty=args.length_penalty).check()

    result, path = evaluate_run(
        args.run_dir,
        args.split,
        beam_width=args.beam,
        data=args.data,
        limit=args.limit,
        full_vocabulary=args.full_vocabulary,
        length_penalty=args.length_penalty,
    )
    if result["split"] == "file":
        print(f"{result['data']}: the whole file, {result['n']} pairs")
    print(format_table(result))
    print(f"exact match: {result['exact_match']:.1%}")
    quality = result["score_quality"]
    if quality["spearman"] is not None:
        print(
            f"sentence score vs sentence chrF: Spearman {quality['spearman']:.2f}; chrF "
            f"{quality['lowest_quality']:.1f} for the lowest-scored 10%, "
            f"{quality['highest_quality']:.1f} for the highest-scored 10%"
        )
    if args.verbosity != "quiet":
        print(f"written to {path}")


def _decode_options(args):
    """The translate options given on the command line, as `Translator.translate` kwargs."""
    from seq2seq_attn.interface import DecodeOptions, parse_sample

    options = dict(beam_width=args.beam)
    for name in (
        "n_best",
        "max_length_ratio",
        "max_length_offset",
        "no_repeat_ngram",
        "length_penalty",
        "coverage_penalty",
        "seed",
    ):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    if args.sample is not None:
        options.update(parse_sample(args.sample))
    if args.temperature is not None:
        options["temperature"] = args.temperature
    # Checked before TensorFlow loads: a bad value costs nothing. BadOption is a UserError,
    # so `main` prints its message as one line and exits 2.
    DecodeOptions(**options).check()
    return options


def _looks_like_a_path(text):
    """`translate runs/typo "text"`: a first TEXT that reads as a path is a mistyped run
    directory, not a sentence. It has no spaces, a slash, and starts like a path or names
    an existing parent folder ("and/or" stays text)."""
    from pathlib import Path

    if "/" not in text or any(c.isspace() for c in text):
        return False
    starts = text.startswith(("/", "./", "../", "~")) or text.endswith("/")
    return starts or Path(text).parent.is_dir()


def _prefix_options(args, texts):
    """`target_prefix` (`--prefix`, one TEXT) or `prefix_column` (`--prefix-column`, lines)."""
    if args.prefix is not None and args.prefix_column is not None:
        raise UserError("give --prefix or --prefix-column, not both")
    if args.prefix is not None:
        if len(texts) != 1:
            raise UserError("--prefix needs exactly one TEXT argument (for lines: --prefix-column)")
        return {"target_prefix": [args.prefix]}
    if args.prefix_column is not None:
        if texts:
            raise UserError("--prefix-column reads lines from stdin or --input, not TEXT arguments")
        if args.prefix_column < 2:
            raise UserError(
                f"--prefix-column must be 2 or more (column 1 is the source), "
                f"received: {args.prefix_column}"
            )
        return {"prefix_column": args.prefix_column}
    return {}


def _placeholder_options(args):
    """`placeholders` for `Translator.translate`: left out (the defaults) unless
    `--no-placeholders` (False) or `--placeholder-pattern` (the defaults and those)."""
    from seq2seq_attn.placeholders import DEFAULT_PATTERNS, Pattern, Placeholders

    if not args.placeholders:
        if args.placeholder_pattern:
            raise UserError("give --no-placeholders or --placeholder-pattern, not both")
        return {"placeholders": False}
    if not args.placeholder_pattern:
        return {}
    extra = [Pattern(f"--placeholder-pattern {r!r}", r) for r in args.placeholder_pattern]
    try:
        return {"placeholders": Placeholders(DEFAULT_PATTERNS + tuple(extra))}
    except ValueError as error:
        raise UserError(str(error)) from None


def _translate(args):
    from pathlib import Path

    from seq2seq_attn.commands import translate_lines_io, translate_texts
    from seq2seq_attn.translate_stream import atomic_output, format_results

    run_dir, texts = args.run_dir, args.texts
    if run_dir is None and texts and Path(texts[0]).is_dir():
        run_dir, texts = texts[0], texts[1:]  # `translate RUN_DIR ["text" ...]`
    elif run_dir is None and texts and _looks_like_a_path(texts[0]):
        kind = "is a file, not a run directory" if Path(texts[0]).is_file() else "does not exist"
        raise UserError(
            f"run directory {texts[0]} {kind} (to translate it as text, give --run-dir "
            "or pass it on stdin)"
        )
    options = _decode_options(args)
    options.update(_prefix_options(args, texts))
    if args.full_vocabulary:
        options["full_vocabulary"] = True
    options.update(_placeholder_options(args))
    columns = dict(alignment=args.alignment, scores=args.scores)  # extra output columns
    if args.input is not None and not Path(args.input).is_file():
        raise UserError(f"input file {args.input} does not exist")
    if not texts:  # stdin or --input, line by line
        if args.plot:
            raise UserError("--plot needs TEXT arguments")
        translate_lines_io(run_dir, args.input, args.output, args.batch_size, **options, **columns)
        return
    if args.input is not None:
        raise UserError("give TEXT arguments or --input, not both")
    results = translate_texts(run_dir, texts, plot=args.plot, **options, **columns)
    lines = format_results(0, results, options.get("n_best"), **columns)
    if args.output is None:
        print("\n".join(lines))
    else:
        with atomic_output(args.output) as out:
            out.write("".join(line + "\n" for line in lines))
    if args.plot and args.verbosity != "quiet":
        print(f"attention plot: {args.plot}", file=sys.stderr)


def _export(args):
    from seq2seq_attn.export.main import export_run

    report = export_run(
        args.run_dir,
        args.out,
        max_source_length=args.max_source_length,
        beam_width=args.beam,
        samples=args.samples,
        force=args.force,
        echo=(lambda *_: None) if args.verbosity == "quiet" else print,
        library_logs=args.verbosity == "verbose",
        web=args.web,
    )
    for name, result in report["artifacts"].items():
        shown = ", ".join(
            f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()
        )
        print(f"{name:34} {shown}")
    print(f"parity passed; artifacts in {args.out}")
    if args.web:
        web = os.path.join(args.out, "web")
        print(f"browser page in {web}: python -m http.server -d {web}, then open localhost:8000")


def _serve(args):
    from seq2seq_attn.serving.server import serve

    if args.threads is not None and args.threads < 0:
        raise UserError(f"--threads must be 0 (the runtime chooses) or more, got {args.threads}")
    serve(
        args.export_dir,
        backend=args.backend,
        host=args.host,
        port=args.port,
        max_batch_size=args.max_batch_size,
        batch_timeout_ms=args.batch_timeout_ms,
        model_name=args.model_name,
        quantized=args.quantized,
        drain_s=args.drain_seconds,
        shutdown_timeout_s=args.shutdown_timeout,
        threads=args.threads,
    )


def _shortlist(args):
    from seq2seq_attn.commands import build_shortlist
    from seq2seq_attn.shortlist import summary_line

    def progress(text):
        if args.verbosity != "quiet":
            print(text, file=sys.stderr, flush=True)

    print(summary_line(build_shortlist(args.run_dir, args.top_k, args.frequent, progress)))


def _compress(args):
    from seq2seq_attn.commands import default_run_dir
    from seq2seq_attn.storage import compress_run

    record = compress_run(default_run_dir(args.run_dir), args.out, force=args.force)
    mb = 1024 * 1024
    print(
        f"{record['weights']:,} weights in float16: model file {record['bytes_before'] / mb:.1f}"
        f" -> {record['bytes_after'] / mb:.1f} MiB, largest rounding error "
        f"{record['max_abs_error']:.2g} ({record['max_rel_error']:.2g} relative)"
    )
    print(f"run written to {args.out}; `seq2seq-attn evaluate {args.out}` tells what it cost")


def _demo(args):
    from seq2seq_attn.commands import demo

    demo(
        args.out,
        seed=args.seed,
        epochs=args.epochs,
        size=args.size,
        verbose=PROGRESS[args.verbosity],
    )


def _translate_corpus(args):
    """`translate-corpus`: a Beam job (`seq2seq_attn.inference.bulk_job`), TensorFlow-free."""
    import logging

    # Importing Beam without its GCP extra logs "apitools not found" through the root
    # logger, which configures it: a handler that drops it keeps the terminal clean until
    # basicConfig(force=True) below installs ours.
    logging.getLogger().addHandler(logging.NullHandler())
    try:
        import apache_beam  # noqa: F401
    except ModuleNotFoundError:
        raise UserError(
            "apache-beam is not installed; install the beam extra: pip install 'seq2seq-attn[beam]'"
        ) from None
    from seq2seq_attn.inference import bulk, bulk_job

    level = {"quiet": logging.ERROR, "normal": logging.WARNING, "verbose": logging.INFO}
    logging.basicConfig(
        level=level[args.verbosity], format="%(levelname)s %(name)s: %(message)s", force=True
    )  # fmt: skip  (importing Beam configured the root logger)
    delimiter = "," if ".csv" in args.input.lower() else "\t"
    options = bulk.resolve(
        _decode_options(args), runtime=args.runtime, quantized=args.quantized,
        column=args.column, delimiter=delimiter, batch_size=args.batch_size,
        max_source_tokens=args.max_source_tokens, alignment=args.alignment, scores=args.scores,
        shortlist=args.shortlist,
    )  # fmt: skip
    summary = bulk_job.run_job(
        args.export_dir, args.input, args.output, options, args.pipeline_args,
        workers=args.direct_num_workers, line_numbers=args.line_numbers,
        lines_per_shard=args.lines_per_shard,
    )  # fmt: skip
    if options.decode.sampling and args.seed is None:
        print(f"sampling seed: {options.decode.seed}", file=sys.stderr)
    print(summary.line())


def _add_translate_corpus(sub):
    p = sub.add_parser(
        "translate-corpus",
        help="translate files on Apache Beam (pip install 'seq2seq-attn[beam]'), no TensorFlow",
        description="Translates every line of the files GLOB matches with an export, on Beam's "
        "in-process runner or any other (--runner and Beam's options pass through), into "
        "PREFIX-SSSSS-of-NNNNN shards in input order and PREFIX-dead-letters.tsv.",
    )
    p.add_argument("export_dir")
    p.add_argument("--input", required=True, metavar="GLOB", help="a file or a glob; .gz read")
    p.add_argument("--output", required=True, metavar="PREFIX", help="output prefix")
    p.add_argument("--runtime", choices=["onnx", "litert"], default="onnx")
    p.add_argument("--quantized", action="store_true", help="the int8 artifacts")
    p.add_argument("--column", type=_positive_int, metavar="N", help="TSV/CSV (.csv): column N")
    p.add_argument("--line-numbers", action="store_true", help="file<TAB>line<TAB> first")
    p.add_argument("--beam", type=int, default=1, help="beam width (1 = greedy)")
    p.add_argument("--n-best", type=int, metavar="K", help="as translate --n-best")
    p.add_argument("--max-length-ratio", type=float, metavar="A", help="as translate")
    p.add_argument("--max-length-offset", type=int, metavar="B", help="as translate")
    p.add_argument("--no-repeat-ngram", type=int, metavar="N", help="as translate")
    p.add_argument("--length-penalty", type=float, metavar="ALPHA", help="as translate")
    p.add_argument("--coverage-penalty", type=float, metavar="BETA", help="as translate")
    p.add_argument("--sample", metavar="top-k=K|top-p=P", help="as translate")
    p.add_argument("--temperature", type=float, metavar="T", help="as translate")
    p.add_argument("--seed", type=int, metavar="S", help="sampling seed (default: printed)")
    p.add_argument("--alignment", choices=["hard", "soft"], help="as translate")
    p.add_argument("--scores", action="store_true", help="as translate")
    p.add_argument(
        "--shortlist", action="store_true",
        help="decode each line over its own lexical shortlist candidates where the export has "
        "the shortlist graphs",
    )  # fmt: skip
    p.add_argument("--batch-size", type=_positive_int, default=32, help="lines decoded together")
    p.add_argument(
        "--max-source-tokens", type=_positive_int, default=256,
        help="longer lines go to the dead letters (default 256, [START] and [END] included)",
    )  # fmt: skip
    p.add_argument("--lines-per-shard", type=_positive_int, default=10_000)
    p.add_argument(
        "--direct_num_workers", type=_positive_int, metavar="N",
        help="workers (threads) of the in-process runner (default 1)",
    )  # fmt: skip
    _add_log_options(p)
    p.set_defaults(func=_translate_corpus)


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="seq2seq-attn", description="Encoder-decoder models with attention."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model into a run directory")
    p.add_argument(
        "--data",
        help="bible-en-es | bible-es-en | dates | FILE.tsv/.csv (a file is split "
        "deterministically into train/dev/test)",
    )
    p.add_argument("--train", metavar="FILE", help="your own training split, used as given")
    p.add_argument("--dev", metavar="FILE", help="with --train: the dev split (selection)")
    p.add_argument("--test", metavar="FILE", help="with --train: the test split (evaluate)")
    p.add_argument(
        "--config",
        help="YAML config file, or a bundled name: dates, bible, finetune (default: the "
        "bundled config of a bundled corpus, else the package defaults)",
    )
    p.add_argument("--out", required=True, help="run directory (an unfinished run there resumes)")
    p.add_argument(
        "--init-from",
        metavar="RUN",
        help="fine-tune: start from a trained run's weights, tokenizers and architecture "
        "(`pretrained`: the shipped English-Spanish model); the optimizer and schedule start "
        "afresh from --config",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=_positive_int, help="override training.epochs")
    p.add_argument("--max-steps", type=_positive_int, help="override training.max_steps")
    p.add_argument("--max-minutes", type=_positive_float, help="override training.max_minutes")
    p.add_argument(
        "--strategy",
        choices=["default", *STRATEGIES],
        help="override training.strategy: default (one device), mirrored (every GPU or "
        "CPU device here), multi-worker (one process per machine, cluster in TF_CONFIG)",
    )
    p.add_argument(
        "--cpu-devices",
        type=_positive_int,
        metavar="N",
        help="split the CPU into N logical devices (try --strategy mirrored without GPUs)",
    )
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", help="BLEU, chrF and exact match of a run on a split")
    p.add_argument("run_dir")
    p.add_argument(
        "--split", choices=["train", "dev", "test"], help="the corpus's split (default test)"
    )
    p.add_argument("--beam", type=_positive_int, default=1, help="beam width (1 = greedy)")
    p.add_argument(
        "--data",
        help="corpus to evaluate on (default: the run's own); a FILE.tsv/.csv is scored "
        "whole, as given",
    )
    p.add_argument("--limit", type=_positive_int, help="only the first N pairs")
    p.add_argument(
        "--full-vocabulary",
        action="store_true",
        help="decode over the whole target vocabulary, not the run's shortlist",
    )
    p.add_argument(
        "--length-penalty",
        type=float,
        default=0.0,
        metavar="ALPHA",
        help="beam search: GNMT length penalty, as translate (default 0: none)",
    )
    p.set_defaults(func=_evaluate)

    p = sub.add_parser(
        "translate",
        help="translate texts, stdin or a file with a run (default: the pretrained model)",
        description="Translates the TEXT arguments, or else stdin (or --input) line by line to "
        "stdout (or --output): one line out per line in, an empty line stays empty.",
    )
    p.add_argument(
        "texts",
        nargs="*",
        metavar="[RUN_DIR] TEXT",
        help="text(s) to translate; none: read lines from stdin or --input",
    )
    p.add_argument("--run-dir", default=None, help="run directory (default: pretrained en-es)")
    p.add_argument("--input", help="read lines from this file instead of stdin")
    p.add_argument("--output", help="write here instead of stdout (only once all is done)")
    p.add_argument("--beam", type=int, default=1, help="beam width (1 = greedy)")
    p.add_argument(
        "--n-best",
        type=int,
        metavar="K",
        help="K lines per input, index<TAB>score<TAB>translation, best first (K <= --beam)",
    )
    p.add_argument(
        "--max-length-ratio",
        type=float,
        metavar="A",
        help="most output tokens: A * source tokens + B (default A = 2)",
    )
    p.add_argument(
        "--max-length-offset", type=int, metavar="B", help="see --max-length-ratio (default 10)"
    )
    p.add_argument(
        "--no-repeat-ngram",
        type=int,
        metavar="N",
        help="never repeat an n-gram of N tokens within an output",
    )
    p.add_argument(
        "--length-penalty",
        type=float,
        metavar="ALPHA",
        help="beam search: GNMT length penalty, scores divided by ((5 + length) / 6) ** ALPHA "
        "(default 0: none; 0.6 to 1 favours longer outputs)",
    )
    p.add_argument(
        "--coverage-penalty",
        type=float,
        metavar="BETA",
        help="beam search: GNMT coverage penalty on source words left unattended (default 0)",
    )
    p.add_argument(
        "--sample",
        metavar="top-k=K|top-p=P",
        help="sample (beam 1) among the K likeliest tokens or the top-P nucleus",
    )
    p.add_argument("--temperature", type=float, metavar="T", help="sampling temperature")
    p.add_argument("--seed", type=int, metavar="S", help="sampling seed: same seed, same output")
    p.add_argument(
        "--batch-size", type=_positive_int, default=32, help="lines decoded together (default 32)"
    )
    p.add_argument(
        "--alignment",
        choices=["hard", "soft"],
        help="add a column: word alignment, hard (Pharaoh 0-0 1-2) or soft (weights)",
    )
    p.add_argument(
        "--scores",
        action="store_true",
        help="add two columns: sentence score (mean token log-prob) and word log-probs",
    )
    p.add_argument(
        "--prefix",
        metavar="TEXT",
        help="force the translation of the one TEXT to start with this text verbatim",
    )
    p.add_argument(
        "--prefix-column",
        type=int,
        metavar="N",
        help="input lines are tab-separated: column 1 the source, column N (>= 2) the "
        "target prefix each translation starts with",
    )
    p.add_argument(
        "--no-placeholders",
        dest="placeholders",
        action="store_false",
        help="translate placeholders and markup (%%s, {name}, <b>, &amp;, ...) as text instead "
        "of taking them out and putting them back by alignment",
    )
    p.add_argument(
        "--placeholder-pattern",
        action="append",
        metavar="REGEX",
        help="one more placeholder pattern, a Python regex (repeatable), e.g. an accelerator "
        "marker (see the localisation page of the docs)",
    )
    p.add_argument("--plot", help="write the first text's attention heatmap here (.png/.svg)")
    p.add_argument(
        "--full-vocabulary",
        action="store_true",
        help="decode over the whole target vocabulary, not the run's shortlist",
    )
    p.set_defaults(func=_translate)

    p = sub.add_parser("export", help="SavedModel, TFLite and ONNX artifacts with parity checks")
    p.add_argument("run_dir")
    p.add_argument("--out", required=True, help="output directory (written only if parity passes)")
    p.add_argument("--max-source-length", type=_positive_int, help="static source length")
    p.add_argument("--beam", type=_positive_int, default=4, help="beam of translate_ids")
    p.add_argument("--samples", type=_positive_int, default=200, help="held-out parity sentences")
    p.add_argument("--force", action="store_true", help="replace an existing output directory")
    p.add_argument(
        "--web",
        action="store_true",
        help="also write OUT/web/, a static folder that translates in the browser",
    )
    p.set_defaults(func=_export)

    p = sub.add_parser("serve", help="HTTP translation server over an export (no TensorFlow)")
    p.add_argument("export_dir")
    p.add_argument("--backend", choices=["onnx", "tflite"], default="onnx")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--max-batch-size", type=_positive_int, default=16)
    p.add_argument("--batch-timeout-ms", type=float, default=5.0)
    p.add_argument("--model-name", default="seq2seq_attn", help="name in the TF Serving URLs")
    p.add_argument("--quantized", action="store_true", help="serve the int8 artifacts")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="intra-op threads of the runtime (default 1; 0 lets onnxruntime choose: "
        "try it on a dedicated many-core host with large batches)",
    )
    p.add_argument(
        "--drain-seconds",
        type=float,
        default=5.0,
        help="on SIGTERM, report not ready this long before closing (default 5)",
    )
    p.add_argument(
        "--shutdown-timeout",
        type=float,
        default=30.0,
        help="then wait at most this long for requests in flight (default 30)",
    )
    p.set_defaults(func=_serve)
    _add_translate_corpus(sub)

    p = sub.add_parser("shortlist", help="build a run's lexical shortlist (candidate targets)")
    p.add_argument("run_dir")
    p.add_argument("--top-k", type=_positive_int, help="targets per source piece (config)")
    p.add_argument("--frequent", type=_positive_int, help="most frequent targets (config)")
    p.set_defaults(func=_shortlist)

    p = sub.add_parser(
        "compress", help="copy a run with its weights stored in float16 (half the model file)"
    )
    p.add_argument("run_dir", nargs="?", help="run directory (default: the pretrained model)")
    p.add_argument("--out", required=True, help="the new run directory")
    p.add_argument("--force", action="store_true", help="replace an existing --out directory")
    p.set_defaults(func=_compress)

    p = sub.add_parser("demo", help="train, evaluate and plot the dates model in a few minutes")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=_positive_int)
    p.add_argument("--size", type=_positive_int, help="number of generated date pairs")
    p.set_defaults(func=_demo)
    for name in TENSORFLOW_COMMANDS:
        _add_log_options(sub.choices[name])
    return parser


def _add_log_options(parser):
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-q",
        "--quiet",
        dest="verbosity",
        action="store_const",
        const="quiet",
        help="print only results and errors",
    )
    group.add_argument(
        "-v",
        "--verbose",
        dest="verbosity",
        action="store_const",
        const="verbose",
        help="also progress within an epoch or stage, and TensorFlow's own logs",
    )
    parser.set_defaults(verbosity="normal")


TENSORFLOW_COMMANDS = (
    "train", "evaluate", "translate", "export", "shortlist", "compress", "demo"
)  # fmt: skip


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "translate-corpus":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.pipeline_args = extra  # Beam's pipeline options, passed through by translate-corpus
    try:
        if args.command in TENSORFLOW_COMMANDS:
            set_verbosity(args.verbosity)
            quiet_tensorflow_startup()
            set_python_log_levels(args.verbosity)
        args.func(args)
    except ModuleNotFoundError as err:
        if err.name not in ("tensorflow", "keras", "tensorflow_text", "tf2onnx", "sacrebleu"):
            raise
        print(
            f"seq2seq-attn {args.command}: error: {err.name} is not installed; "
            "install the training extras: pip install 'seq2seq-attn[train]'",
            file=sys.stderr,
        )
        return 2
    except UserError as err:
        print(f"seq2seq-attn {args.command}: error: {err}", file=sys.stderr)
        return 2
    except ParityError as err:
        print(f"seq2seq-attn {args.command}: parity check failed: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
