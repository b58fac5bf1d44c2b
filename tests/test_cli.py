"""The command line end to end on a tiny dates model, and every user mistake -> exit 2."""

import csv
import json
import subprocess
import sys

import keras
import pytest

from seq2seq_attn.cli import main
from seq2seq_attn.config import load_config
from seq2seq_attn.training import train


@pytest.fixture(scope="module")
def run_dir(tiny_run):
    return tiny_run


def test_train_writes_a_complete_run_dir(run_dir):
    for name in (
        "model.keras",
        "tokenizer/source.model",
        "tokenizer/target.model",
        "tokenizer/tokenizer.json",
        "config.yaml",
        "run.json",
        "history.csv",
        "logs",
    ):
        assert (run_dir / name).exists(), name
    info = json.loads((run_dir / "run.json").read_text())
    assert info["data"] == "dates" and info["epochs_run"] == 1
    assert info["sizes"]["test"] > 0
    assert not (run_dir / "backup").exists()  # removed once training finished


def test_evaluate_writes_json_and_table(run_dir, capsys):
    assert main(["evaluate", str(run_dir), "--split", "dev", "--limit", "5"]) == 0
    out = capsys.readouterr().out
    assert "BLEU" in out and "chrF" in out
    result = json.loads((run_dir / "eval_dev.json").read_text())
    assert result["n"] == 5 and 0.0 <= result["bleu"] <= 100.0
    assert len(result["examples"]) == 5
    quality = result["score_quality"]  # the sentence score against sentence chrF
    assert quality["n"] == 5 and quality["quality"] == "sentence chrF"
    assert quality["spearman"] is None or -1 <= quality["spearman"] <= 1
    assert 0 <= quality["lowest_quality"] <= 100 and 0 <= quality["highest_quality"] <= 100


def test_evaluate_with_a_length_penalty_writes_its_own_file(run_dir, capsys):
    from seq2seq_attn.translator import Translator

    argv = ["evaluate", str(run_dir), "--split", "dev", "--limit", "6", "--beam", "3"]
    assert main([*argv, "--length-penalty", "5"]) == 0
    result = json.loads((run_dir / "eval_dev_beam3_lp5.json").read_text())
    assert result["length_penalty"] == 5.0 and result["beam_width"] == 3 and result["n"] == 6
    sources = [e["source"] for e in result["examples"]]
    wanted = Translator.load(run_dir).translate(sources, 3, length_penalty=5.0)
    assert [e["hypothesis"] for e in result["examples"]] == [t.text for t in wanted]
    capsys.readouterr()
    assert main([*argv, "--length-penalty", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "length_penalty=-1.0" in err


def test_translate_prints_and_plots(run_dir, tmp_path, capsys):
    plot = tmp_path / "att.png"
    args = ["translate", str(run_dir), "3 March 2021", "July 4, 1976", "--beam", "2"]
    assert main(args + ["--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 2  # one line per text (a barely trained model may print "")
    assert plot.stat().st_size > 1000


def test_translate_in_a_fresh_process(run_dir):
    # A new interpreter has none of the custom classes imported by training.
    result = subprocess.run(
        [sys.executable, "-m", "seq2seq_attn.cli", "translate", str(run_dir), "3 March 2021"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("\n") == 1


def test_resume_after_interruption_continues_epochs(tiny_config, tmp_path):
    config = load_config(tiny_config)
    config["training"]["epochs"] = 3

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train("dates", config, out, callbacks=[Interrupt()], verbose=0)
    assert (out / "backup").exists()
    info = train("dates", config, out, verbose=0)
    with open(out / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2]
    assert info["epochs_run"] == 3  # the whole run, not only the resumed part
    assert info["best_val_loss"] == min(float(row["val_loss"]) for row in rows)


def expect_user_error(capsys, argv, *fragments):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


def test_user_mistakes_exit_2(tmp_path, tiny_config, capsys):
    out = str(tmp_path / "o")
    cfg = str(tiny_config)
    expect_user_error(
        capsys,
        ["train", "--data", str(tmp_path / "nope.tsv"), "--config", cfg, "--out", out],
        "nope.tsv",
    )
    bad = tmp_path / "bad.tsv"
    bad.write_text("source\ttarget\nhello\thola\nno tab on this line\n")
    expect_user_error(capsys, ["train", "--data", str(bad), "--config", cfg, "--out", out], ":3")
    empty = tmp_path / "empty.tsv"
    empty.write_text("source\ttarget\n")
    expect_user_error(
        capsys, ["train", "--data", str(empty), "--config", cfg, "--out", out], "empty.tsv"
    )
    expect_user_error(
        capsys, ["train", "--data", "klingon", "--config", cfg, "--out", out], "klingon"
    )
    typo = tmp_path / "typo.yaml"
    typo.write_text("model:\n  unitz: 8\n")
    expect_user_error(
        capsys, ["train", "--data", "dates", "--config", str(typo), "--out", out], "unitz", "units"
    )


def test_bad_run_dirs_exit_2(tmp_path, run_dir, capsys):
    expect_user_error(capsys, ["evaluate", str(tmp_path / "missing")], "does not exist")
    (tmp_path / "empty").mkdir()
    expect_user_error(
        capsys, ["translate", "--run-dir", str(tmp_path / "empty"), "hi"], "model.keras"
    )
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "tokenizer").symlink_to(run_dir / "tokenizer")
    (broken / "model.keras").write_bytes(b"not a zip file")
    expect_user_error(capsys, ["translate", "--run-dir", str(broken), "hi"], "model.keras")


def _history_but_minutes(run):
    """history.csv's rows without the wall-clock `minutes` column."""
    with open(run / "history.csv") as f:
        return [{k: v for k, v in row.items() if k != "minutes"} for row in csv.DictReader(f)]


def test_same_seed_gives_identical_training_and_a_finished_run_trains_anew(
    run_dir, tiny_config, tmp_path
):
    again = tmp_path / "again"
    argv = ["train", "--data", "dates", "--config", str(tiny_config), "--out", str(again)]
    assert main(argv) == 0
    assert _history_but_minutes(again) == _history_but_minutes(run_dir)
    assert main(argv) == 0  # training a finished run again trains from scratch again
    info = json.loads((again / "run.json").read_text())
    assert info["epochs_run"] == 1  # not 2: history.csv holds both runs


def test_a_run_from_before_sentencepiece_is_a_one_line_error(tmp_path, run_dir, capsys):
    old = tmp_path / "old-run"
    (old / "tokenizer").mkdir(parents=True)
    (old / "model.keras").write_bytes((run_dir / "model.keras").read_bytes())
    for name in ("source.vocab.txt", "source.json", "target.vocab.txt", "target.json"):
        (old / "tokenizer" / name).write_text("[PAD]\n")  # the WordPiece layout of 0.1
    for argv in (["translate", "--run-dir", str(old), "hi"], ["evaluate", str(old)]):
        expect_user_error(capsys, argv, "WordPiece", "train it again")
    expect_user_error(capsys, ["export", str(old), "--out", str(tmp_path / "x")], "WordPiece")


def test_bad_tokenizer_config_exits_2(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("tokenizer:\n  model_type: wordpiece\n")
    argv = ["train", "--data", "dates", "--config", str(config), "--out", str(tmp_path / "o")]
    expect_user_error(capsys, argv, "tokenizer.model_type", "unigram or bpe")
    config.write_text("tokenizer:\n  lower_case: true\n")
    expect_user_error(capsys, argv, "lower_case", "lowercase")


def test_demo_prints_every_parity_result(tiny_export):
    """The demo's export step prints each artifact's line (translate.onnx has no logits)."""
    from seq2seq_attn.commands import parity_line

    lines = [parity_line(name, result) for name, result in tiny_export[1]["artifacts"].items()]
    assert any(line.startswith("translate.onnx/") and "100%" in line for line in lines), lines
    assert any("max |logit diff|" in line for line in lines)
    (loader,) = [line for line in lines if line.startswith("saved_model/tf_serving_loader")]
    assert "loaded as TF Serving loads it, token agreement" in loader, loader
    tied = {"max_abs_logit_diff": 2e-5, "beam4_agreement": 0.9, "beam4_ties": 0.1}
    assert parity_line("model.tflite/litert", tied).endswith(
        "token agreement 90% (+ 10% near ties)"
    )
    shortlisted = {
        "greedy_agreement": 1.0,
        "beam4_agreement": 1.0,
        "greedy_same_as_full": 0.9,
        "beam4_same_as_full": 0.85,
        "mean_candidates": 40.0,
    }
    assert parity_line("shortlist/onnxruntime", shortlisted).endswith(
        "token agreement with Keras' shortlist decode 100%, same as the full vocabulary 85%"
    )
    (int8,) = [line for line in lines if line.startswith("shortlist/onnxruntime_int8")]
    assert "BLEU drop" in int8 and "same as Keras' float shortlist decode" in int8, int8


def test_demo_runs_end_to_end(tmp_path, capsys):
    """The README's first command, small: train, evaluate, translate, export with parity."""
    assert main(["demo", "--out", str(tmp_path / "demo"), "--size", "600", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "[5/5] outputs:" in out and "translate.onnx/" in out
    assert (tmp_path / "demo" / "export" / "manifest.json").is_file()


# --- translate: stdin/files, n-best, options, bad values ------------------------------------


def run_cli(argv, stdin_text, monkeypatch, capsys):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin_text))
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


STREAM = "3 March 2021\n\nJuly 4, 1976\n12/05/1970\n   \n1 de agosto de 1964\n"


def test_translate_stdin_line_for_line_in_order(run_dir, monkeypatch, capsys):
    from seq2seq_attn.translator import Translator

    argv = ["translate", str(run_dir), "--batch-size", "2"]
    code, out, _ = run_cli(argv, STREAM, monkeypatch, capsys)
    assert code == 0
    lines = out.split("\n")[:-1]
    inputs = STREAM.split("\n")[:-1]
    assert len(lines) == len(inputs) == 6
    assert lines[1] == "" and lines[4] == ""
    translator = Translator.load(run_dir)
    for line, text in zip(lines, inputs, strict=True):
        if text.strip():  # each line as translating it alone (lengths differ a lot here)
            assert line == translator.translate([text])[0].text


def test_translate_n_best_lines(run_dir, monkeypatch, capsys):
    argv = ["translate", "--run-dir", str(run_dir), "--beam", "3", "--n-best", "3"]
    code, out, _ = run_cli(argv, "3 March 2021\n\nmay 5 2020\n", monkeypatch, capsys)
    assert code == 0
    rows = [line.split("\t") for line in out.splitlines()]
    assert [int(r[0]) for r in rows] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    for index in (0, 2):
        scores = [float(r[1]) for r in rows if int(r[0]) == index]
        assert scores == sorted(scores, reverse=True) and all(s <= 0 for s in scores)
    assert rows[3:6] == [["1", "0.000000", ""]] * 3
    # with texts as arguments: the same format, the same numbers
    assert main(["translate", str(run_dir), "3 March 2021", "--beam", "3", "--n-best", "3"]) == 0
    assert capsys.readouterr().out.splitlines() == out.splitlines()[:3]


def test_translate_alignment_and_scores_columns(run_dir, monkeypatch, capsys):
    from seq2seq_attn.alignment import parse_pharaoh
    from seq2seq_attn.translator import Translator

    argv = ["translate", str(run_dir), "--alignment", "hard", "--scores", "--batch-size", "2"]
    code, out, _ = run_cli(argv, STREAM, monkeypatch, capsys)
    assert code == 0
    rows = [line.split("\t") for line in out.split("\n")[:-1]]
    inputs = STREAM.split("\n")[:-1]
    assert len(rows) == len(inputs) and {len(r) for r in rows} == {4}
    assert rows[1] == rows[4] == ["", "", "0.000000", ""]
    translator = Translator.load(run_dir)
    for (text, pharaoh, sentence, words), source in zip(rows, inputs, strict=True):
        if not source.strip():
            continue
        pairs = parse_pharaoh(pharaoh)  # one valid line: each output word once, in range
        assert [t for _, t in pairs] == list(range(len(text.split())))
        assert all(0 <= s < len(source.split()) for s, _ in pairs)
        assert len(words.split()) == len(text.split()) and float(sentence) <= 0
        alone = translator.translate([source], alignment="hard", scores=True)[0]
        assert (text, pharaoh) == (alone.text, alone.alignment.pharaoh())
        assert float(sentence) == pytest.approx(alone.scores.sentence, abs=1e-5)
    # soft: per output word, source-word weights that sum to 1
    code, out, _ = run_cli(["translate", str(run_dir), "--alignment", "soft"], STREAM, monkeypatch,
                           capsys)  # fmt: skip
    for line, source in zip(out.split("\n")[:-1], inputs, strict=True):
        text, soft = line.split("\t")
        for row in soft.split() if source.strip() else []:
            weights = [float(w) for w in row.split(",")]
            assert len(weights) == len(source.split()) and sum(weights) == pytest.approx(1, 0.01)


def test_translate_files_and_options(run_dir, tmp_path, capsys):
    source = tmp_path / "in.txt"
    source.write_text(STREAM, encoding="utf-8")
    target = tmp_path / "out.txt"
    argv = ["translate", str(run_dir), "--input", str(source), "--output", str(target)]
    options = ["--max-length-ratio", "0.5", "--max-length-offset", "2", "--no-repeat-ngram", "2"]
    assert main(argv + options) == 0
    assert capsys.readouterr().out == ""
    assert target.read_text(encoding="utf-8").count("\n") == 6
    sampled = tmp_path / "sampled.txt"
    sample = ["--sample", "top-p=0.9", "--temperature", "1.5", "--seed", "7"]
    # a fixed most-tokens (ratio 0): the default depends on the batch's padded length
    sample += ["--max-length-ratio", "0", "--max-length-offset", "12"]
    argv = ["translate", str(run_dir), "--input", str(source), "--output", str(sampled)]
    assert main(argv + sample) == 0
    first = sampled.read_text(encoding="utf-8")
    assert main(argv + sample + ["--batch-size", "1"]) == 0  # other batches, same output
    assert sampled.read_text(encoding="utf-8") == first


def test_translate_penalties_are_the_library_s(run_dir, monkeypatch, capsys):
    """`--length-penalty` and `--coverage-penalty` reach the search: the output is the
    library's with the same options, and a strong length penalty makes outputs longer."""
    from seq2seq_attn.translator import Translator

    lines = [line for line in STREAM.splitlines() if line.strip()]
    argv = ["translate", str(run_dir), "--beam", "4", "--max-length-ratio", "0"]
    argv += ["--max-length-offset", "12", "--coverage-penalty", "0.2"]
    translator = Translator.load(run_dir)
    lengths = {}
    for alpha in ("0", "5"):
        stdin = "\n".join(lines) + "\n"
        code, out, _ = run_cli([*argv, "--length-penalty", alpha], stdin, monkeypatch, capsys)
        library = translator.translate(
            lines,
            4,
            length_penalty=float(alpha),
            coverage_penalty=0.2,
            max_length_ratio=0,
            max_length_offset=12,
        )
        assert code == 0 and out.splitlines() == [t.text for t in library]
        lengths[alpha] = sum(len(t.text) for t in library)
    assert lengths["5"] > lengths["0"]


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--beam", "2", "--n-best", "3"], "n_best=3"),
        (["--n-best", "0"], "n_best=0"),
        (["--no-repeat-ngram", "0"], "no_repeat_ngram=0"),
        (["--sample", "top-p=1.5"], "top_p=1.5"),
        (["--sample", "top-p=0"], "top_p=0.0"),
        (["--sample", "top-k=0"], "top_k=0"),
        (["--sample", "nucleus"], "top-k=K"),
        (["--sample", "top-k=3", "--beam", "4"], "beam_width=4"),
        (["--temperature", "0.5"], "temperature=0.5"),
        (["--max-length-ratio", "-1"], "max_length_ratio=-1.0"),
        (["--beam", "3", "--length-penalty", "-0.5"], "length_penalty=-0.5"),
        (["--beam", "3", "--coverage-penalty", "nan"], "coverage_penalty=nan"),
        (["--input", "MISSING"], "does not exist"),
    ],
)
def test_translate_bad_values_are_one_line_errors(run_dir, tmp_path, extra, fragment, capsys):
    extra = [str(tmp_path / x) if x == "MISSING" else x for x in extra]
    output = tmp_path / "never.txt"
    assert main(["translate", str(run_dir), "--output", str(output), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fragment in err, err
    assert not output.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize("typo", ["{tmp}/no-such-run", "{tmp}/a-file.txt", "./runs-typo/x"])
def test_translate_a_mistyped_run_directory_is_a_user_error(typo, tmp_path, capsys):
    """A path-like first TEXT that is no run directory is not translated as a sentence
    by the pretrained model: one line on stderr, exit 2."""
    (tmp_path / "a-file.txt").write_text("hello\n")
    typo = typo.format(tmp=tmp_path)
    assert main(["translate", typo, "July 4, 1976"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and typo in err and "--run-dir" in err, err


@pytest.mark.parametrize("command", ["translate", "evaluate", "export"])
def test_an_export_directory_given_as_a_run_is_named_as_such(command, tmp_path, capsys):
    export = tmp_path / "export"
    (export / "tokenizer").mkdir(parents=True)
    (export / "manifest.json").write_text("{}")
    extra = {"translate": ["July 4, 1976"], "export": ["--out", str(tmp_path / "out")]}
    assert main([command, str(export), *extra.get(command, [])]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is an export" in err and "serve" in err, err


def test_translate_slashed_words_stay_text():
    from seq2seq_attn.cli import _looks_like_a_path

    assert not _looks_like_a_path("and/or")
    assert not _looks_like_a_path("see /usr/bin now")
    assert _looks_like_a_path("/nonexistent/run") and _looks_like_a_path("~/runs/x")


def _write_pairs(path, pairs):
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    return path


def test_train_without_config_takes_the_corpus_config_or_the_package_defaults(tmp_path):
    """A bundled corpus trains with its bundled config; the user's own data with the package
    defaults, not the dates demo's 40 target pieces and 64 units."""
    from seq2seq_attn.cli import default_config
    from seq2seq_attn.config import resolve_config
    from seq2seq_attn.corpora import generate_dates

    assert default_config("dates") == load_config("dates")
    assert default_config("bible-en-es") == default_config("bible-es-en") == load_config("bible")
    assert default_config("pairs.tsv") == default_config(None) == resolve_config({})
    pairs = _write_pairs(tmp_path / "train.tsv", generate_dates(300, seed=1))
    argv = ["train", "--train", str(pairs), "--out", str(tmp_path / "r"), "--max-steps", "1"]
    assert main(argv) == 0
    expected = resolve_config({"training": {"max_steps": 1}})
    assert load_config(tmp_path / "r" / "config.yaml") == expected
    assert expected["tokenizer"]["target_vocab_size"] == 8000 and expected["model"] == {}


def test_train_on_split_files_and_evaluate_a_whole_file(tmp_path, tiny_config, capsys):
    """`train --train A --dev B --test C` uses the files as given; `evaluate --split test`
    finds C again from run.json; `evaluate --data D` scores all of D, not a split of it."""
    from seq2seq_attn.corpora import generate_dates

    pairs = generate_dates(560, seed=5)
    train_file = _write_pairs(tmp_path / "train.tsv", pairs[:500])
    dev_file = _write_pairs(tmp_path / "dev.tsv", pairs[500:520])
    test_file = _write_pairs(tmp_path / "test.tsv", pairs[520:537])
    other = _write_pairs(tmp_path / "other.tsv", pairs[537:])
    out = tmp_path / "run"
    argv = ["train", "--train", str(train_file), "--dev", str(dev_file), "--test", str(test_file)]
    assert main(argv + ["--config", str(tiny_config), "--out", str(out), "--max-steps", "3"]) == 0
    assert "3 steps, stopped by max_steps" in capsys.readouterr().out
    info = json.loads((out / "run.json").read_text())
    assert info["data"] is None and info["sizes"] == {"train": 500, "dev": 20, "test": 17}
    assert info["files"] == {
        "train": str(train_file.resolve()),
        "dev": str(dev_file.resolve()),
        "test": str(test_file.resolve()),
    }
    assert main(["evaluate", str(out), "--split", "test"]) == 0
    result = json.loads((out / "eval_test.json").read_text())
    assert result["n"] == 17 and result["data"] == str(test_file.resolve())
    assert [e["source"] for e in result["examples"]] == [s for s, _ in pairs[520:530]]
    assert main(["evaluate", str(out), "--data", str(other)]) == 0
    assert "the whole file, 23 pairs" in capsys.readouterr().out
    result = json.loads((out / "eval_file-other.json").read_text())
    assert result["n"] == 23 and result["split"] == "file"
    expect_user_error(
        capsys,
        ["evaluate", str(out), "--data", str(other), "--split", "dev"],
        "--split does not apply",
    )


def test_training_option_mistakes_exit_2(tmp_path, tiny_config, capsys):
    out = ["--out", str(tmp_path / "o")]
    cfg = ["--config", str(tiny_config)]
    data = tmp_path / "pairs.tsv"
    data.write_text("a\tb\nc\td\ne\tf\n")
    expect_user_error(
        capsys, ["train", "--data", "dates", "--train", str(data), *cfg, *out], "exclude each other"
    )
    expect_user_error(capsys, ["train", "--dev", str(data), *cfg, *out], "--train FILE")
    expect_user_error(
        capsys, ["train", "--data", "dates", "--test", str(data), *cfg, *out], "go with --train"
    )
    for line, fragment in [
        ("warmup_steps: -5", "training.warmup_steps must be an integer >= 0"),
        ("schedule: cosine", "training.schedule must be one of constant, plateau, rsqrt"),
        ("ema: 1.5", "training.ema must be a decay between 0 and 1"),
        ("select_by: bleu", "select_by: bleu needs a dev set"),
    ]:
        config = tmp_path / "bad.yaml"
        config.write_text(f"training:\n  {line}\n")
        argv = ["train", "--train", str(data), "--config", str(config), *out]
        expect_user_error(capsys, argv, fragment)
    assert not (tmp_path / "o").exists()
