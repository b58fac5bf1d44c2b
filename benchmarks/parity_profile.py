"""Where the export's parity stage spends its time, part by part, on an existing export.

Runs `seq2seq_attn.export.validate.validate_export` on `EXPORT_DIR` against the model of
`RUN_DIR` (the held-out sentences the CLI would take), with a timer around each part: the
Keras reference, the SavedModel checks, the search-option check, `translate.onnx`, and per
runtime its `encode`, `step`, host beam `decode` (it calls `encode` and `step`, which are
then counted in both) and single-graph `greedy_graph`. The host greedy decode calls `step`
directly (`validate.host_greedy_and_logits`). `step_logits:*` is the step-by-step replay
along the Keras trajectory (its steps are also in `<runtime>:step`), which a runtime pays
only where its greedy decode left that trajectory.

    python -m benchmarks parity_profile                  # the benchmark export, ~3-4 min
    python -m benchmarks parity_profile RUN_DIR EXPORT_DIR --samples 50
    python -m benchmarks parity_profile --small          # the small model's export, 4 samples

Without directories it profiles the benchmark model's export (`common.bench_run`,
`common.bench_export`; made when missing). Writes benchmarks/results/parity_profile.json (or
`--out`). Run two commits' code side by side by pointing `PYTHONPATH` at each one's
installed wheel.
"""

import collections
from pathlib import Path

from benchmarks import common
from benchmarks.harness import clock


def _timed(seconds, name, fn):
    def wrapper(*args, **kwargs):
        started = clock()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds[name] += clock() - started

    return wrapper


def instrument(validate, seconds, patch=setattr):
    """Wraps the parts of `validate` (the module) with timers adding into `seconds`;
    `patch(owner, name, value)` sets each (a test passes `monkeypatch.setattr`)."""
    reference = validate.Reference
    patch(reference, "__init__", _timed(seconds, "keras_reference", reference.__init__))
    step_logits = reference.step_logits

    def timed_step_logits(self, encode, step):
        kind = "keras" if encode is self.decoder.encode else "runtime"
        return _timed(seconds, f"step_logits:{kind}", step_logits)(self, encode, step)

    patch(reference, "step_logits", timed_step_logits)
    for part in ("check_saved_model", "check_serving_default", "check_translate_onnx"):
        patch(validate, part, _timed(seconds, part, getattr(validate, part)))
    options = _timed(seconds, "search_options", validate._check_search_options)
    patch(validate, "_check_search_options", options)
    runtimes = validate.runtimes

    def timed_runtimes(directory, threads=None):
        def timed_make(name, make):
            runtime = make()
            for method in ("encode", "step", "decode", "greedy_graph"):
                timer = _timed(seconds, f"{name}:{method}", getattr(runtime, method))
                setattr(runtime, method, timer)
            return runtime

        return [
            (name, kind, variant, lambda name=name, make=make: timed_make(name, make))
            for name, kind, variant, make in runtimes(directory, threads)
        ]

    patch(validate, "runtimes", timed_runtimes)


def profile(run_dir, export_dir, samples, patch=setattr):
    """Parity of `export_dir` against `run_dir`'s model, timed: (seconds by part, report)."""
    from seq2seq_attn.export import main as export_main
    from seq2seq_attn.export import validate
    from seq2seq_attn.translator import Translator

    translator = Translator.load(run_dir)
    texts, refs = export_main._held_out(translator, run_dir, samples, None)
    seconds = collections.defaultdict(float)
    instrument(validate, seconds, patch)
    started = clock()
    report = validate.validate_export(
        export_dir, translator.model, translator.tokenizers, texts, refs
    )
    seconds["total"] = clock() - started
    ranked = sorted(((k, round(v, 4)) for k, v in seconds.items()), key=lambda kv: -kv[1])
    return dict(ranked), report


def add_arguments(parser):
    parser.add_argument("run_dir", type=Path, nargs="?", help="default: the benchmark model")
    parser.add_argument("export_dir", type=Path, nargs="?", help="default: its export")
    parser.add_argument("--samples", type=int, help="parity sentences (200, small 4)")


def run(args):
    from seq2seq_attn.export import validate

    run_dir, export_dir = args.run_dir, args.export_dir
    if run_dir is None:
        run_dir = common.bench_run(args.small)
    if export_dir is None:
        export_dir = common.bench_export(run_dir, args.small)[0]
    samples = args.samples or (common.SMALL_EXPORT_SAMPLES if args.small else 200)
    ranked, report = profile(run_dir, export_dir, samples)
    for name, value in ranked.items():
        print(f"{value:8.1f} s  {name}")
    return {
        "code": validate.__file__,
        "export": str(export_dir),
        "samples": report["samples"],
        "passed": report["passed"],
        "seconds": ranked,
    }
