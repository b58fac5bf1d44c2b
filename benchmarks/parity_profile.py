"""Where the export's parity stage spends its time, part by part, on an existing export.

Runs `seq2seq_attn.export.validate.validate_export` on `EXPORT_DIR` against the model of
`RUN_DIR` (the held-out sentences the CLI would take), with a timer around each part: the
Keras reference, the SavedModel checks, the search-option check, `translate.onnx`, and per
runtime its `encode`, `step`, host beam `decode` (it calls `encode` and `step`, which are
then counted in both) and single-graph `greedy_graph`. The host greedy decode calls `step`
directly (`validate.host_greedy_and_logits`). `step_logits:*` is the step-by-step replay
along the Keras trajectory (its steps are also in `<runtime>:step`), which a runtime pays
only where its greedy decode left that trajectory.

    python benchmarks/parity_profile.py runs/bench-model runs/bench-export   # ~3-4 min

Writes benchmarks/results/parity_profile.json (or `--name`). Run two commits' code side by
side by pointing `PYTHONPATH` at each one's installed wheel.
"""

import argparse
import collections
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402


def _timed(seconds, name, fn):
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds[name] += time.perf_counter() - started

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
    started = time.perf_counter()
    report = validate.validate_export(
        export_dir, translator.model, translator.tokenizers, texts, refs
    )
    seconds["total"] = time.perf_counter() - started
    ranked = sorted(((k, round(v, 4)) for k, v in seconds.items()), key=lambda kv: -kv[1])
    return dict(ranked), report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("export_dir", type=Path)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--name", default="parity_profile", help="results/NAME.json")
    args = parser.parse_args(argv)
    from seq2seq_attn.export import validate

    ranked, report = profile(args.run_dir, args.export_dir, args.samples)
    for name, value in ranked.items():
        print(f"{value:8.1f} s  {name}")
    result = {
        "machine": common.machine(),
        "code": validate.__file__,
        "export": str(args.export_dir),
        "samples": report["samples"],
        "passed": report["passed"],
        "seconds": ranked,
    }
    print(f"wrote {common.write_result(args.name, result)}")


if __name__ == "__main__":
    main()
