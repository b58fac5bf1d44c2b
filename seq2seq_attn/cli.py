"""`seq2seq-attn`: the command line. Each subcommand is a thin call into a plain function.

Exit codes: 0 success, 2 a user mistake (one line on stderr), anything else a bug.
"""

import argparse
import os
import sys

from seq2seq_attn.config import STRATEGIES
from seq2seq_attn.errors import ParityError, UserError


def _train(args):
    from seq2seq_attn.config import load_config
    from seq2seq_attn.training import train

    config = load_config(args.config)
    if args.epochs is not None:
        config["training"]["epochs"] = args.epochs
    if args.strategy is not None:
        config["training"]["strategy"] = None if args.strategy == "default" else args.strategy
    if args.cpu_devices is not None:
        from seq2seq_attn.distribute import split_cpu

        if config["training"]["strategy"] != "mirrored":
            raise UserError("--cpu-devices only applies to the mirrored strategy")
        split_cpu(args.cpu_devices)
    info = train(args.data, config, args.out, seed=args.seed)
    print(f"trained {info['epochs_run']} epochs, best dev loss {info['best_val_loss']:.4f}")
    if info["num_replicas"] > 1:
        print(f"{info['strategy']} strategy: {info['num_replicas']} replicas")
    print(f"run directory: {args.out}")


def _evaluate(args):
    from seq2seq_attn.commands import evaluate_run
    from seq2seq_attn.evaluation import format_table

    result, path = evaluate_run(
        args.run_dir, args.split, beam_width=args.beam, data=args.data, limit=args.limit
    )
    print(format_table(result))
    print(f"exact match: {result['exact_match']:.1%}")
    print(f"written to {path}")


def _translate(args):
    from pathlib import Path

    from seq2seq_attn.commands import translate_texts

    run_dir, texts = args.run_dir, args.texts
    if run_dir is None and len(texts) > 1 and Path(texts[0]).is_dir():
        run_dir, texts = texts[0], texts[1:]  # `translate RUN_DIR "text" ...`
    for t in translate_texts(run_dir, texts, beam_width=args.beam, plot=args.plot):
        print(t.text)
    if args.plot:
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
    )
    for name, result in report["artifacts"].items():
        shown = ", ".join(
            f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()
        )
        print(f"{name:34} {shown}")
    print(f"parity passed; artifacts in {args.out}")


def _serve(args):
    from seq2seq_attn.serving.server import serve

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
    )


def _demo(args):
    from seq2seq_attn.commands import demo

    demo(args.out, seed=args.seed, epochs=args.epochs, size=args.size)


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="seq2seq-attn", description="Encoder-decoder models with attention."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model into a run directory")
    p.add_argument(
        "--data", required=True, help="bible-en-es | bible-es-en | dates | FILE.tsv/.csv"
    )
    p.add_argument(
        "--config", default="dates", help="YAML config file, or a bundled name: dates, bible"
    )
    p.add_argument("--out", required=True, help="run directory (an unfinished run there resumes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=_positive_int, help="override training.epochs")
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
    p.add_argument("--split", default="test", choices=["train", "dev", "test"])
    p.add_argument("--beam", type=_positive_int, default=1, help="beam width (1 = greedy)")
    p.add_argument("--data", help="corpus to evaluate on (default: the run's own)")
    p.add_argument("--limit", type=_positive_int, help="only the first N pairs")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser(
        "translate", help="translate text with a run (default: the pretrained model)"
    )
    p.add_argument("texts", nargs="+", metavar="[RUN_DIR] TEXT", help="text(s) to translate")
    p.add_argument("--run-dir", default=None, help="run directory (default: pretrained en-es)")
    p.add_argument("--beam", type=_positive_int, default=1, help="beam width (1 = greedy)")
    p.add_argument("--plot", help="write the first text's attention heatmap here (.png/.svg)")
    p.set_defaults(func=_translate)

    p = sub.add_parser("export", help="SavedModel, TFLite and ONNX artifacts with parity checks")
    p.add_argument("run_dir")
    p.add_argument("--out", required=True, help="output directory (written only if parity passes)")
    p.add_argument("--max-source-length", type=_positive_int, help="static source length")
    p.add_argument("--beam", type=_positive_int, default=4, help="beam of translate_ids")
    p.add_argument("--samples", type=_positive_int, default=200, help="held-out parity sentences")
    p.add_argument("--force", action="store_true", help="replace an existing output directory")
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

    p = sub.add_parser("demo", help="train, evaluate and plot the dates model in a few minutes")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=_positive_int)
    p.add_argument("--size", type=_positive_int, help="number of generated date pairs")
    p.set_defaults(func=_demo)
    return parser


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    try:
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
