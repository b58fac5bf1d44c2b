"""The plain functions behind the `evaluate`, `translate`, `shortlist` and `demo` subcommands.

(`train` is `seq2seq_attn.training.train`.) Each takes Python values and returns
what it produced, so the CLI stays a thin argparse layer and tests call these directly.
"""

import json
import textwrap
from pathlib import Path

from seq2seq_attn import evaluation, plots
from seq2seq_attn.errors import UserError

PRETRAINED_DIR = Path(__file__).parent / "pretrained" / "bible-en-es"
DEMO_INPUTS = (
    "Saturday, 14 March 2015",
    "3 avril 1987",
    "Dienstag, 9. Dezember 2031",
    "July 4, 1976",
    "1 ene 2000",
)


def default_run_dir(run_dir):
    """The given run directory, or the pretrained English-Spanish model when None."""
    if run_dir is not None:
        return Path(run_dir)
    if not (PRETRAINED_DIR / "model.keras").exists():
        raise UserError("no run directory given and no pretrained model is installed")
    return PRETRAINED_DIR


def evaluate_run(
    run_dir,
    split=None,
    beam_width=1,
    data=None,
    out=None,
    limit=None,
    full_vocabulary=False,
    length_penalty=0.0,
):
    """Translates a corpus split, or a whole file, with a trained run and scores it.

    Args:
        run_dir: a training run directory.
        split: "train", "dev" or "test" (default "test"); not with a `data` file.
        beam_width: 1 for greedy.
        data: corpus spec; default the one the run was trained on (a named corpus, its
            split files, or its deterministically split file). A `.tsv`/`.csv` file
            given here is scored whole, as given (no re-splitting).
        out: JSON path; default `run_dir/eval_<split>.json` (`eval_<split>_beam<k>.json`;
            `eval_file-<name>.json` for a whole file).
        limit: optional number of pairs to evaluate (the first ones).
        full_vocabulary: decode over the whole target vocabulary even where the run has a
            shortlist (the result's `vocabulary` says which; the default file name then
            ends in `_full`).
        length_penalty: beam search's GNMT alpha (0: none; the default file name then
            ends in `_lp<alpha>`).

    Returns:
        `(result, path)`: the scores dict (see `evaluation.score`; its `split` is "file"
        for a whole file, and `score_quality` tells how well the sentence score ranks the
        translations by sentence chrF, see `_score_quality`) and where it was written.
    """
    from seq2seq_attn.corpora import KNOWN_NAMES, read_pairs
    from seq2seq_attn.training import run_corpus
    from seq2seq_attn.translator import Translator

    translator = Translator.load(run_dir)
    run_dir = Path(run_dir)
    if split not in ("train", "dev", "test", None):
        raise UserError(f"unknown split {split!r}; use train, dev or test")
    if data is not None and str(data) not in KNOWN_NAMES:
        if split is not None:
            raise UserError(f"--split does not apply to a file ({data}): it is scored whole")
        split, pairs, described = "file", read_pairs(data), str(data)
        name = f"file-{Path(data).name.split('.')[0]}"
    else:
        split = split or "test"
        corpus = run_corpus(run_dir, translator.run_info, data)
        files = translator.run_info.get("files") or {}
        described = str(data or translator.run_info.get("data") or files.get(split))
        pairs, name = getattr(corpus, split), split
    pairs = pairs[:limit]
    if not pairs:
        raise UserError(f"the {split} split of {run_dir}'s data is empty: nothing to evaluate")
    translations = translator.translate(
        [s for s, _ in pairs],
        beam_width,
        scores=True,
        full_vocabulary=full_vocabulary,
        length_penalty=length_penalty,
    )
    hypotheses = [t.text for t in translations]
    result = evaluation.score(hypotheses, [t for _, t in pairs], [s for s, _ in pairs])
    shortlisted = translator.shortlist is not None and not full_vocabulary
    vocabulary = "shortlist" if shortlisted else "full"
    result.update(split=split, beam_width=beam_width, data=described, vocabulary=vocabulary)
    result["length_penalty"] = length_penalty
    result["score_quality"] = _score_quality(translations, [t for _, t in pairs])
    result["examples"] = [
        {"source": s, "reference": r, "hypothesis": h}
        for (s, r), h in list(zip(pairs, hypotheses, strict=True))[:10]
    ]
    beam_suffix = "" if beam_width == 1 else f"_beam{beam_width}"
    if full_vocabulary and translator.shortlist is not None:
        beam_suffix += "_full"
    if length_penalty:
        beam_suffix += f"_lp{length_penalty:g}"
    path = Path(out) if out else run_dir / f"eval_{name}{beam_suffix}.json"
    evaluation.write_json(result, path)
    return result, path


def _score_quality(translations, references):
    """How well the sentence scores (mean token log-prob) rank the translations by their
    sentence chrF: `seq2seq_attn.alignment.score_quality`, with the quality measure named."""
    from sacrebleu.metrics import CHRF

    from seq2seq_attn.alignment import score_quality

    chrf = CHRF()
    pairs = zip(translations, references, strict=True)
    quality = [chrf.sentence_score(t.text, [r]).score for t, r in pairs]
    out = score_quality([t.scores.sentence for t in translations], quality)
    return {"quality": "sentence chrF", "score": "mean token log-prob", **out}


def translate_texts(run_dir, texts, beam_width=1, plot=None, **options):
    """Translates `texts`; with `plot`, writes the first one's attention heatmap there.

    `options` are the other `Translator.translate` keyword arguments (n_best,
    max_length_ratio, max_length_offset, no_repeat_ngram, top_k, top_p, temperature, seed).
    """
    from seq2seq_attn.translator import Translator

    if not texts:
        raise UserError("nothing to translate: give at least one text")
    translator = Translator.load(default_run_dir(run_dir))
    results = translator.translate(list(texts), beam_width=beam_width, **options)
    if plot:
        first = results[0]
        plots.plot_attention(
            first.attention,
            first.source_tokens,
            first.target_tokens,
            plot,
            title=textwrap.fill(f"{first.source} -> {first.text}", width=60),
        )
    return results


def build_shortlist(run_dir, top_k=None, frequent=None, progress=None):
    """Builds `run_dir/shortlist.npz` for an existing run from its own training pairs.

    Args:
        run_dir: a training run directory (its run.json says what data it was trained on).
        top_k, frequent: sizes; default the run config's `shortlist:` section, else
            `shortlist.DEFAULTS`.
        progress: optional `progress(text)` called before each stage.

    Returns:
        the summary dict of `shortlist.build_for_run`.
    """
    from seq2seq_attn import shortlist
    from seq2seq_attn.config import load_config
    from seq2seq_attn.training import run_corpus
    from seq2seq_attn.translator import RUN_INFO_FILE

    run_dir = Path(run_dir)
    info_path = run_dir / RUN_INFO_FILE
    if not info_path.is_file():
        raise UserError(f"{run_dir} is not a finished training run (no {RUN_INFO_FILE})")
    try:
        run_info = json.loads(info_path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read {info_path}: {err}") from None
    options = {**shortlist.DEFAULTS, **(load_config(run_dir / "config.yaml")["shortlist"] or {})}
    options.update({k: v for k, v in (("top_k", top_k), ("frequent", frequent)) if v})
    corpus = run_corpus(run_dir, run_info)
    return shortlist.build_for_run(run_dir, corpus.train, progress=progress, **options)


def translate_lines_io(run_dir, input_path=None, output_path=None, batch_size=32, **options):
    """Translates stdin or `input_path` line by line to stdout or `output_path` (see
    `seq2seq_attn.translate_stream`); returns the number of lines."""
    from seq2seq_attn.translate_stream import translate_io
    from seq2seq_attn.translator import Translator

    translator = Translator.load(default_run_dir(run_dir))
    return translate_io(translator, input_path, output_path, batch_size=batch_size, **options)


def parity_line(name, result):
    """One artifact's parity result as the demo prints it."""
    if "greedy_same_as_keras_shortlist" in result:  # int8 over the shortlist: a BLEU rule
        same = result["greedy_same_as_keras_shortlist"]
        return (
            f"{name:30} BLEU drop {result['bleu_drop']:.2f} against Keras, "
            f"same as Keras' float shortlist decode {same:.0%}"
        )
    key = min((k for k in result if k.endswith("agreement")), key=result.get)
    agree, ties = result[key], result.get(key.replace("_agreement", "_ties"), 0.0)
    near = f" (+ {ties:.0%} near ties)" if ties else ""
    if name.startswith("search options"):
        return f"{name:30} every decoding option agrees with generate: {agree:.0%}"
    if name.startswith("shortlist/"):
        full = min(v for k, v in result.items() if k.endswith("_same_as_full"))
        return (
            f"{name:30} token agreement with Keras' shortlist decode {agree:.0%}, "
            f"same as the full vocabulary {full:.0%}"
        )
    if name.startswith("saved_model/tf_serving_loader"):
        return f"{name:30} loaded as TF Serving loads it, token agreement {agree:.0%}{near}"
    if "max_abs_logit_diff" in result:
        diff = result["max_abs_logit_diff"]
        return f"{name:30} max |logit diff| {diff:.2g}, token agreement {agree:.0%}{near}"
    return f"{name:30} strings and tokens agree with the host path: {agree:.0%}"


def demo(out_dir="runs/demo", seed=0, epochs=None, size=None, verbose="auto", echo=print):
    """The main job on the embedded default: train the dates model, evaluate, translate, plot.

    `verbose` is `train`'s (see `training.progress`); with 1 (`--verbose`), the export's
    stage lines show too.

    Returns:
        dict of what was written where.
    """
    from seq2seq_attn.config import load_config
    from seq2seq_attn.training import train

    out_dir = Path(out_dir)
    config = load_config("dates")
    if epochs is not None:
        config["training"]["epochs"] = epochs
    if size is not None:
        config["data"]["size"] = size
    echo(f"[1/5] training the dates model into {out_dir} ...")
    info = train("dates", config, out_dir, seed=seed, verbose=verbose)
    echo(
        f"      {info['epochs_run']} epochs in {info['train_seconds']} s, "
        f"best dev loss {info['best_val_loss']:.4f}"
    )
    echo("[2/5] evaluating on the test split ...")
    result, eval_path = evaluate_run(out_dir, "test")
    echo(evaluation.format_table(result))
    echo(f"      exact match {result['exact_match']:.1%}")
    echo("[3/5] translating a few inputs ...")
    plot_path = out_dir / "attention.png"
    translations = translate_texts(out_dir, DEMO_INPUTS, plot=plot_path)
    for t in translations:
        echo(f"      {t.source!r:32} -> {t.text}")
    echo("[4/5] exporting SavedModel, TFLite and ONNX and checking parity ...")
    from seq2seq_attn.export.main import export_run

    export_dir = out_dir / "export"
    stages = (lambda line: echo(f"      {line}")) if verbose == 1 else (lambda *_: None)
    report = export_run(
        out_dir, export_dir, samples=20, force=True, echo=stages, library_logs=verbose == 1
    )
    for name, result in report["artifacts"].items():
        echo(f"      {parity_line(name, result)}")
    echo("[5/5] outputs:")
    outputs = {
        "export": export_dir,
        "model": out_dir / "model.keras",
        "tokenizer": out_dir / "tokenizer",
        "evaluation": eval_path,
        "attention_plot": plot_path,
        "tensorboard_logs": out_dir / "logs",
    }
    for name, path in outputs.items():
        echo(f"      {name:18} {path}")
    (out_dir / "demo.json").write_text(
        json.dumps({k: str(v) for k, v in outputs.items()}, indent=2)
    )
    return outputs
