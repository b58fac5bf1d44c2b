"""The benchmarks: their premises (the naive baseline computes the same function as the library,
the floors, the ratios), the harness, the one result file per benchmark, and the report."""

import ast
import json
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import keras
import numpy as np
import pytest

from benchmarks import harness, report
from benchmarks.naive_seq2seq import naive_like
from seq2seq_attn import Seq2SeqAttention
from seq2seq_attn.losses import MaskedCrossEntropy

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "benchmarks"

SOURCE = np.array([[4, 5, 6, 7, 0, 0], [8, 9, 10, 11, 12, 13]], "int32")
TARGET_IN = np.array([[2, 5, 6, 0], [2, 7, 8, 9]], "int32")
TARGET_OUT = np.array([[5, 6, 3, 0], [7, 8, 9, 3]], "int32")


def _model(**kwargs):
    keras.utils.set_random_seed(1)
    model = Seq2SeqAttention(30, 40, embedding_dim=8, units=16, attention_units=12, **kwargs)
    model.build()
    return model


def test_naive_baseline_gives_the_same_logits():
    model = _model()
    naive = naive_like(model)
    ours = np.asarray(model((SOURCE, TARGET_IN)))
    theirs = np.asarray(naive((SOURCE, TARGET_IN)))
    assert np.abs(ours).max() > 1e-3  # not trivially zero
    np.testing.assert_allclose(theirs, ours, atol=1e-6)


def test_naive_baseline_takes_the_same_training_step():
    model = _model()
    naive = naive_like(model)
    losses = []
    for m, eager in ((model, False), (naive, True)):
        m.compile(keras.optimizers.Adam(0.01), loss=MaskedCrossEntropy(), run_eagerly=eager)
        losses.append([_step(m) for _ in range(3)])
    assert losses[0][2] < losses[0][0]  # it learns
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)
    after = np.asarray(naive((SOURCE, TARGET_IN)))
    np.testing.assert_allclose(after, np.asarray(model((SOURCE, TARGET_IN))), atol=1e-4)


def _step(model):
    return float(model.train_on_batch((SOURCE, TARGET_IN), TARGET_OUT, return_dict=True)["loss"])


@pytest.mark.parametrize("kwargs", [dict(rnn="lstm"), dict(bidirectional=False)])
def test_naive_baseline_refuses_other_architectures(kwargs):
    with pytest.raises(ValueError, match="one bidirectional GRU layer"):
        naive_like(_model(**kwargs))


def test_floor_products_have_the_model_weight_shapes():
    from benchmarks import decode_latency

    model = _model()  # embedding 8, units 16 (memory 32), attention 12, target vocab 40
    shapes = decode_latency.model_shapes(model)
    step = {name: (lhs, rhs) for name, lhs, rhs in decode_latency.step_products(shapes, 3, 5)}
    assert step["query_projection"] == ((3, 16), (16, 12))
    assert step["scores"] == ((15, 12), (12, 1))
    assert step["context"] == ((3, 1, 5), (3, 5, 32))
    assert step["gru_input"] == ((3, 8 + 32), (40, 48))
    assert step["output_projection"] == ((3, 16 + 32), (48, 40))
    encoder = decode_latency.encoder_products(shapes, 2, 5)
    assert sum(name.endswith("_recurrent") for name, _, _ in encoder) == 2 * 5  # per position
    for lhs, rhs in list(step.values()) + [(lhs, rhs) for _, lhs, rhs in encoder]:
        assert lhs[-1] == rhs[-2]  # every product is well formed
    assert decode_latency.product_flops([("x", (2, 3), (3, 4))]) == 2 * 2 * 3 * 4


def test_each_timed_call_is_set_against_the_floors_around_it():
    from benchmarks import decode_latency

    floors = iter([1.0, 3.0, 5.0, 7.0, 9.0])

    def floor_fn():
        value = next(floors)
        return {"encoder_s": value, "step_s": value / 10}

    def decode(ids, beam):
        return np.array([[5, 6, 3, 0]] * len(ids))  # 4 steps, 3 tokens per row

    cell = decode_latency.measure_cell(decode, [[1], [1, 1]], 1, 2, floor_fn, end_id=3)
    assert cell["floor_encoder_s"] == [2.0, 4.0, 6.0, 8.0]
    assert cell["floor_s"] == pytest.approx(
        [2.0 + 4 * 0.2, 4.0 + 4 * 0.4, 6.0 + 4 * 0.6, 8.0 + 4 * 0.8]
    )
    assert cell["produced_tokens"] == [3, 6, 3, 6]
    assert cell["tokens"] == [[5, 6, 3]] * 3  # the first pass only


def test_tutorial_size_data_is_short_and_ratios_are_to_litert_graph(tmp_path):
    from benchmarks import tutorial_size

    path = tutorial_size.tutorial_data(tmp_path / "short.tsv", count=200)
    lines = path.read_text().splitlines()
    assert lines[0] == "source\ttarget" and len(lines) == 201
    words = [len(line.split("\t")[0].split()) for line in lines[1:]]
    assert 1 <= min(words) and max(words) <= tutorial_size.WORDS[1]
    assert all(line.split("\t")[1].strip() for line in lines[1:])  # no empty target
    seconds = {"litert_graph": [0.002, 0.004, 0.003], "onnx_host": [0.006, 0.003, 0.0045]}
    outputs = {"litert_graph": ["a", "b"], "onnx_host": ["a", "c"]}
    rows = tutorial_size.summarize(seconds, outputs)
    assert rows["litert_graph"]["median_ms"] == pytest.approx(3.0)
    assert rows["onnx_host"]["ratio_to_litert_graph"] == pytest.approx(4.5 / 3.0)
    assert rows["onnx_host"]["same_text_as_baseline"] == 0.5


def test_tutorial_size_shortlist_runtimes_are_set_against_their_full_vocabulary_twin():
    from benchmarks import runtimes, tutorial_size

    seconds = {
        "tutorial_saved_model": [0.012, 0.012],
        "onnx_graph": [0.008, 0.008],
        "onnx_graph_shortlist": [0.002, 0.006],
        "litert_graph_shortlist": [0.003, 0.003],  # its twin did not run
    }
    outputs = {
        "tutorial_saved_model": ["x", "y"],
        "onnx_graph": ["a", "b"],
        "onnx_graph_shortlist": ["a", "c"],
        "litert_graph_shortlist": ["a", "b"],
    }
    rows = tutorial_size.summarize(seconds, outputs)
    assert rows["onnx_graph"]["speedup_vs_tutorial"] == pytest.approx(1.5)
    assert rows["onnx_graph_shortlist"]["speedup_vs_tutorial"] == pytest.approx(3.0)
    assert rows["onnx_graph_shortlist"]["speedup_vs_full_vocabulary"] == pytest.approx(2.0)
    assert rows["onnx_graph_shortlist"]["same_text_as_full_vocabulary"] == 0.5
    assert rows["onnx_graph_shortlist"]["speedup_vs_full_vocabulary_paired"] == pytest.approx(
        (4.0 + 8.0 / 6.0) / 2
    )
    assert rows["litert_graph_shortlist"]["speedup_vs_tutorial_paired"] == pytest.approx(4.0)
    assert "speedup_vs_full_vocabulary" not in rows["litert_graph_shortlist"]
    assert "speedup_vs_full_vocabulary" not in rows["onnx_graph"]
    assert "ratio_to_litert_graph" not in rows["onnx_graph"]  # no litert_graph in the turns
    assert runtimes.full_vocabulary_twin("saved_model_shortlist") == "saved_model"
    assert runtimes.full_vocabulary_twin("onnx_host") is None
    for name in tutorial_size.RUNTIMES:
        twin = runtimes.full_vocabulary_twin(name)
        assert twin is None or twin in tutorial_size.RUNTIMES


def test_tutorial_size_runtimes_translate_alike_on_the_tiny_export(tiny_export, tiny_run):
    """Every SavedModel and ONNX runtime of the benchmark, loaded from one export, returns the
    same text for the same sentence (TF Serving's loader included); so do the shortlist
    runtimes among themselves (the tiny run has a shortlist)."""
    from benchmarks import tutorial_size
    from seq2seq_attn.tokenizer import TokenizerPair

    out, _ = tiny_export
    tokenizers = TokenizerPair.load(tiny_run / "tokenizer")
    full = ("saved_model", "saved_model_session", "onnx_host", "onnx_graph")
    short = ("saved_model_shortlist", "onnx_host_shortlist", "onnx_graph_shortlist")
    for names in (full, short):
        translate = {name: tutorial_size.make_translate(name, out, tokenizers) for name in names}
        for text in ("March 3, 2021", "the 7th of october 1999", "1/2/03"):
            texts = {fn(text) for fn in translate.values()}
            assert len(texts) == 1, texts


def test_training_recipes_smoke(tmp_path):
    """benchmarks/training_recipes.py in its small mode: each recipe stops at its budget and
    gets a test score; the recipes add their options cumulatively."""
    out = tmp_path / "training_recipes.json"
    argv = ["training_recipes", "--small", "--max-steps", "2", "--minutes", "10"]
    argv += ["--workdir", str(tmp_path), "--out", str(out)]
    assert harness.main(argv + ["--only", "baseline", "+select_bleu"]) == 0
    written = json.loads(out.read_text())["figures"]
    assert list(written["recipes"]) == ["baseline", "+select_bleu"]
    for row in written["recipes"].values():
        assert row["steps"] == 2 and row["stopped_by"] == "max_steps"
        assert 0.0 <= row["test_bleu"] <= 100.0 and row["test_n"] > 0
    changes = written["recipes"]["+select_bleu"]["changes"]
    assert changes["schedule"] == "rsqrt" and changes["ema"] == 0.998  # from earlier steps
    assert changes["select_by"] == "bleu" and changes["batch_tokens"] is None
    assert written["recipes"]["baseline"]["changes"]["schedule"] == "constant"
    assert written["table"].count("\n") == 3  # header, rule, two recipes


def test_train_tutorial_size_smoke(tmp_path):
    """benchmarks/train_tutorial_size.py: steps/s and ratios from pass times by hand, and in
    its small mode, padding to the bucket boundary leaves the loss curve unchanged."""
    from benchmarks import train_tutorial_size

    times = {"tutorial": [2.0, 4.0, 3.0], "seq2seq_attn": [1.0, 2.0, 1.5]}
    curves = {"tutorial": [5.0, 4.0], "seq2seq_attn": [6.0, 5.5]}
    first, rss = {"tutorial": 9, "seq2seq_attn": 9}, {"tutorial": 700.0, "seq2seq_attn": 800.0}
    rows = train_tutorial_size.summarize(times, curves, first, 6, rss)
    assert rows["tutorial"]["steps_per_second"] == 2.0  # 6 batches / median 3 s
    assert rows["seq2seq_attn"]["steps_per_second"] == 4.0
    assert rows["seq2seq_attn"]["x_tutorial"] == 2.0 and rows["tutorial"]["x_seq2seq_attn"] == 0.5
    assert "max_abs_loss_diff_vs_seq2seq_attn" not in rows["tutorial"]  # another model

    names = ["seq2seq_attn", "seq2seq_attn_bucket", "seq2seq_attn_bf16_bucket"]
    out = tmp_path / "train_tutorial_size.json"
    argv = ["train_tutorial_size", "--small", "--batches", "3", "--rounds", "1", "--out", str(out)]
    assert harness.main(argv + ["--only", *names]) == 0
    written = json.loads(out.read_text())["figures"]
    assert list(written["implementations"]) == names
    assert written["settings"]["same_initial_weights"]
    bucket = written["implementations"]["seq2seq_attn_bucket"]
    assert bucket["max_abs_loss_diff_vs_seq2seq_attn"] < 1e-5 and len(bucket["loss_curve"]) == 3
    assert bucket["peak_rss_mb"] > 100
    bf16 = written["implementations"]["seq2seq_attn_bf16_bucket"]
    assert 0 < bf16["max_abs_loss_diff_vs_seq2seq_attn"] < 0.02  # bfloat16 rounding only
    shapes = written["data"]["epoch_shapes"]
    padded, tight = shapes["pad_to_bucket"], shapes["padded_to_longest"]
    assert padded["batches"] == tight["batches"]
    assert padded["distinct_shapes"] <= tight["distinct_shapes"]


def test_tutorial_export_is_the_greedy_loop_run_step_by_step():
    """benchmarks/tutorial_nmt.Export (the tutorial's exported greedy loop) against the same
    decoder called eagerly one token at a time, stopping at [END] like the tutorial."""
    import tensorflow as tf

    from benchmarks import tutorial_nmt

    keras.utils.set_random_seed(1)
    model = tutorial_nmt.Translator(8, 30, 12)
    model((np.ones((1, 3), "int32"), np.ones((1, 2), "int32")))  # builds the weights
    # Unpadded sources: with a padded one, the eager call and the graph disagreed on the
    # padded row (Keras' masks); what this checks is the loop.
    source = np.array([[5, 6, 7, 3], [8, 9, 10, 3]], "int32")
    end = 7  # a token these weights emit early: the loop stops before max_length
    export = tutorial_nmt.Export(model, 2, end, max_length=6)  # (a tf.function holds it weakly)
    out = export.translate_ids(source)
    context = model.encoder(source)
    token, state, expected = tf.fill([2, 1], tf.constant(2, tf.int64)), tf.zeros([2, 8]), []
    done = np.zeros([2, 1], bool)
    for _ in range(6):
        logits, state = model.decoder(context, token, state=state, return_state=True)
        token = np.where(done | (np.argmax(logits, -1) == end), 0, np.argmax(logits, -1))
        expected.append(token[:, 0])
        done |= np.argmax(logits, -1) == end
        if done.all():
            break
    assert len(expected) < 6
    np.testing.assert_array_equal(out["tokens"].numpy(), np.stack(expected, 1))
    assert out["attention"].shape == (2, len(expected), 4)


def test_shortlist_paths_times_every_path_on_the_tiny_export(tiny_export, tmp_path):
    """benchmarks/shortlist_paths.py: every path of every batch timed, the rule's choice
    recorded, and an export without a shortlist is one line, not a traceback."""
    out = tmp_path / "paths.json"
    argv = ["shortlist_paths", "--small", "--export-dir", str(tiny_export[0]), "--out", str(out)]
    assert harness.main(argv) == 0
    rows = json.loads(out.read_text())["figures"]["rows"]
    assert [(r["texts"], r["beam_width"]) for r in rows] == [(1, 1), (1, 4), (4, 1), (4, 4)]
    for row in rows:
        assert set(row["ms"]) == {"full", "columns", "masked", "shortlist_onnx"}
        assert all(ms > 0 for ms in row["ms"].values())
        assert 0 < row["union_share"] <= 1
        # the tiny run's candidates are all its pieces: over MAX_SHARE, never the columns
        assert row["rule_takes_columns"] is False
    with pytest.raises(SystemExit, match="required"):
        harness.main(["shortlist_paths", "--small", "--out", str(out)])


def test_parity_profile_times_every_part(tiny_run, own_tiny_export, monkeypatch):
    """benchmarks/parity_profile.py on the tiny export: parity still passes under the
    timers, every part gets time, and the parts fit in the total."""
    from benchmarks import parity_profile

    export = own_tiny_export
    seconds, report = parity_profile.profile(tiny_run, export, 6, patch=monkeypatch.setattr)
    assert report["passed"] and report["samples"] == 6
    expected = {"total", "keras_reference", "check_saved_model", "search_options"}
    expected |= {"step_logits:keras", "check_translate_onnx"}
    expected |= {f"{name}:step" for name in ("model.tflite", "*.onnx", "*_int8.onnx")}
    # host beam decodes: float32 artifacts only (a replay, `step_logits:runtime`, happens
    # only where a greedy decode leaves the Keras trajectory)
    expected |= {f"{name}:decode" for name in ("model.tflite", "*.onnx")}
    assert expected <= set(seconds), sorted(seconds)
    assert all(seconds[name] > 0 for name in expected)
    parts = ["keras_reference", "check_saved_model", "search_options", "check_translate_onnx"]
    assert sum(seconds[p] for p in parts) < seconds["total"]


def test_startup_medians_and_ratios_to_the_first_site(tmp_path):
    """benchmarks/startup.py: medians and ratios by hand, and its tiny model (YAML text) is the
    tests'."""
    import yaml
    from conftest import TINY_CONFIG

    from benchmarks import startup

    runs = {
        "old": {"translate": [(10.0, 600.0), (8.0, 610.0), (12.0, 605.0)]},
        "new": {"translate": [(6.0, 600.0), (7.0, 590.0), (5.0, 620.0)]},
    }
    table = startup.summarize(runs)
    assert table["old"]["translate"]["median_seconds"] == 10.0
    assert table["old"]["translate"]["x_first"] == 1.0
    assert table["new"]["translate"]["median_seconds"] == 6.0
    assert table["new"]["translate"]["x_first"] == 0.6
    assert table["new"]["translate"]["peak_rss_mib"] == [600, 590, 620]
    assert yaml.safe_load(startup.TINY) == TINY_CONFIG
    argv = startup.commands(tmp_path / "site", tmp_path, export=True)
    assert list(argv) == ["translate", "translate_beam", "train_tiny", "export_pretrained"]
    assert yaml.safe_load((tmp_path / "tiny.yaml").read_text()) == TINY_CONFIG


# ---- the harness ----


def _benchmark_modules():
    """Module names under benchmarks/ that define `add_arguments` and `run` (read, not run)."""
    found = []
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text())
        functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        if {"add_arguments", "run"} <= functions:
            found.append(path.stem)
    return found


@pytest.mark.unit
def test_list_names_every_benchmark_module():
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    listed = {line.split()[0]: line.split(None, 1)[1] for line in out.splitlines()}
    modules = _benchmark_modules()
    assert len(modules) >= 12 and sorted(listed) == modules
    for name in modules:
        docstring = ast.get_docstring(ast.parse((PACKAGE / f"{name}.py").read_text()))
        assert listed[name] == docstring.splitlines()[0]
    assert "naive_seq2seq" not in listed and "tutorial_nmt" not in listed  # helpers only


@pytest.mark.unit
@pytest.mark.parametrize("name", harness.BENCHMARKS)
def test_every_benchmark_has_the_small_option(name):
    import importlib

    module = importlib.import_module(f"benchmarks.{name}")
    args = harness.parser_for(name, module).parse_args(["--small"])
    assert args.small is True and args.out is None
    assert callable(module.run)


@pytest.mark.unit
def test_result_writer_records_every_schema_key(tmp_path):
    args = Namespace(small=True, out=None, benchmark="x", repeats=3, export_dir=tmp_path)
    path = harness.write_result("x", {"latency_ms": 1.5}, args, tmp_path / "x.json")
    record = json.loads(path.read_text())
    assert sorted(record) == sorted(harness.RESULT_KEYS)
    assert record["benchmark"] == "x" and record["figures"] == {"latency_ms": 1.5}
    assert record["args"] == {"small": True, "repeats": 3, "export_dir": str(tmp_path)}
    assert record["date"].startswith(("20", "21")) and "T" in record["date"]
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True)
    assert record["commit"]["commit"] == commit.stdout.decode().strip()
    machine = record["machine"]
    assert {"cpu_model", "cpu_count", "cpu_flags", "platform", "python"} <= set(machine)
    import tensorflow as tf

    assert record["versions"]["tensorflow"] == tf.__version__
    assert record["versions"]["keras"] == keras.__version__


@pytest.mark.unit
def test_cpu_flags_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Example CPU @ 2.0GHz\n"
        "flags\t\t: fpu sse2 avx avx2 fma avx512f avx512_bf16 amx_tile amx_bf16 sha_ni\n\n"
        "processor\t: 1\nmodel name\t: Other\nflags\t\t: fpu\n"
    )
    model, flags = harness.cpu_info(cpuinfo)
    assert model == "Example CPU @ 2.0GHz"
    assert flags == ["amx_bf16", "amx_tile", "avx", "avx2", "avx512_bf16", "avx512f", "fma"]


@pytest.mark.unit
def test_one_current_result_file_per_benchmark():
    files = sorted(p.stem for p in harness.RESULTS_DIR.iterdir())
    assert files == sorted(harness.BENCHMARKS)  # none missing, none without a benchmark
    for name in files:
        record = harness.read_result(name)
        assert sorted(set(record) - {"migrated_from"}) == sorted(harness.RESULT_KEYS), name
        assert record["benchmark"] == name and record["figures"]


@pytest.mark.unit
def test_no_sys_path_edits_private_imports_or_import_circles():
    imports = {}
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert "sys.path" not in text, path
        imports[path.stem] = _benchmark_imports(ast.parse(text))
    for test in ROOT.glob("tests/*.py"):  # tests that import a benchmark
        tree = ast.parse(test.read_text())
        if _benchmark_imports(tree):
            edits = [
                node.lineno
                for node in ast.walk(tree)
                if isinstance(node, ast.Attribute) and node.attr == "path"
                and isinstance(node.value, ast.Name) and node.value.id == "sys"
            ]  # fmt: skip
            assert not edits, (test, edits)
    for module, names in imports.items():
        for other, name in names:
            assert name is None or not name.startswith("_"), (module, other, name)
    assert _cycle(imports) is None, _cycle(imports)


def _benchmark_imports(tree):
    """`{(module, name or None)}` imported from the benchmarks package by a module."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level == 0 and base.split(".")[0] != "benchmarks":
                continue
            inner = base.removeprefix("benchmarks").lstrip(".")
            for alias in node.names:
                found.add((alias.name, None) if not inner else (inner, alias.name))
        elif isinstance(node, ast.Import):
            found |= {
                (a.name.split(".")[1], None) for a in node.names if a.name.startswith("benchmarks.")
            }
    return found


def _cycle(imports):
    """A list of modules that import each other in a circle, or None."""
    graph = {m: {other for other, _ in names if other in imports} for m, names in imports.items()}
    state = {}

    def visit(module, path):
        state[module] = "open"
        for other in graph[module]:
            if state.get(other) == "open":
                return path + [other]
            if other not in state and (found := visit(other, path + [other])):
                return found
        state[module] = "done"
        return None

    return next((c for m in graph if m not in state and (c := visit(m, [m]))), None)


@pytest.mark.unit
def test_the_circle_check_finds_a_circle():
    a = _benchmark_imports(ast.parse("from benchmarks import b\n"))
    b = _benchmark_imports(ast.parse("from .a import helper\n"))
    assert a == {("b", None)} and b == {("a", "helper")}
    assert _cycle({"a": a, "b": b}) in (["a", "b", "a"], ["b", "a", "b"])
    assert _cycle({"a": a, "b": set()}) is None


# ---- the report, the docs hook and the README block ----


def _table_rows(markdown, title):
    """The body rows of the table under `**title**` in rendered markdown, as lists of cells."""
    lines = markdown.split(f"**{title}**", 1)[1].strip().splitlines()
    rows = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def _number(cell):
    return float(cell.replace(",", ""))


@pytest.mark.unit
def test_report_renders_the_numbers_of_the_result_file():
    record = json.loads((harness.RESULTS_DIR / "train_throughput.json").read_text())
    figures = record["figures"]
    rendered = report.render(record)
    rows = _table_rows(rendered, f"model.fit over {figures['batches']} batches")
    assert [row[0] for row in rows] == list(figures["implementations"])
    for name, tokens, speedup, _ in rows:
        expected = figures["implementations"][name]
        assert _number(tokens) == pytest.approx(expected["tokens_per_second"], abs=0.006)
        assert _number(speedup) == pytest.approx(expected["speedup_vs_naive"], abs=0.006)
    assert record["date"][:10] in rendered and record["commit"]["commit"][:7] in rendered
    assert "![train_throughput](train-throughput.png)" in rendered

    record = json.loads((harness.RESULTS_DIR / "decode_latency.json").read_text())
    rows = _table_rows(report.render(record), "Latency and throughput against the matmul floor")
    applicable = [r for r in record["figures"]["rows"] if r["applicable"]]
    assert len(rows) == len(applicable)
    for row, expected in zip(rows, applicable, strict=True):
        assert row[:3] == [expected["runtime"], expected["mode"], str(expected["batch"])]
        assert _number(row[3]) == pytest.approx(expected["latency_ms"]["median"], abs=0.006)


@pytest.mark.unit
def test_report_renders_each_runs_updates_against_the_tutorial():
    """time_to_quality: each recipe's row carries its own run's updates and the tutorial's of
    the same seed (the docs quote them; before, only the prose held them)."""
    record = json.loads((harness.RESULTS_DIR / "time_to_quality.json").read_text())
    runs = {(run["impl"], str(run["seed"])): run["steps"] for run in record["figures"]["runs"]}
    rows = _table_rows(report.render(record), "Against the tutorial, seed by seed")
    assert len(rows) == sum(len(s) for s in record["figures"]["against_tutorial"].values())
    for row in rows:
        assert _number(row[-2]) == runs[(row[0], row[1])]
        assert _number(row[-1]) == runs[("tutorial", row[1])]
        assert runs[(row[0], row[1])] != runs[("tutorial", row[1])]


@pytest.mark.unit
@pytest.mark.parametrize("name", harness.BENCHMARKS)
def test_every_result_renders_and_has_a_headline(name):
    record = harness.read_result(name)
    assert report.render(record).count("\n|---") >= 1
    assert report.headline(record)


@pytest.mark.unit
def test_headline_block_replaces_only_the_block():
    block = report.headline_block()
    assert block.startswith(report.START) and block.rstrip().endswith(report.END)
    for name in harness.BENCHMARKS:
        assert f"[{name}](docs/benchmarks.md#{name})" in block
        assert report.headline(harness.read_result(name)) in block
    text = f"# Title\n\n{report.START}\nold\n{report.END}\n\nafter\n"
    assert report.replace_block(text, block) == f"# Title\n\n{block}\nafter\n"
    with pytest.raises(ValueError, match="headline-figures"):
        report.replace_block("no block here", block)


@pytest.mark.unit
def test_readme_headline_figures_are_the_generated_block():
    readme = (ROOT / "README.md").read_text()
    if report.START not in readme or report.END not in readme:
        pytest.skip("README.md has no headline-figures block yet")
    start = readme.index(report.START)
    end = readme.index(report.END) + len(report.END)
    assert readme[start:end] + "\n" == report.headline_block(), (
        "README's headline figures differ from the result files: "
        "run `python -m benchmarks headline --write README.md`"
    )


@pytest.mark.unit
def test_docs_page_has_one_marker_and_the_plots_of_each_benchmark():
    from docs.hooks import benchmarks as hook

    page = (ROOT / "docs" / "benchmarks.md").read_text()
    assert sorted(hook.MARKER.findall(page)) == sorted(harness.BENCHMARKS)
    for name in harness.BENCHMARKS:
        assert f"## {name}\n" in page and f"python -m benchmarks {name}" in page
        for plot in report.plots(name):
            assert f"]({plot})" in page
    rendered = hook.render_markers(page)
    assert "<!-- benchmark:" not in rendered
    assert rendered.count("*Result `benchmarks/results/") == len(harness.BENCHMARKS)
    with pytest.raises(FileNotFoundError):
        hook.render_markers("<!-- benchmark: no_such_benchmark -->\n")


@pytest.mark.unit
def test_headline_order_names_every_benchmark_once():
    assert sorted(report.HEADLINE_ORDER) == sorted(harness.BENCHMARKS)


# ---- alignment_error ----


@pytest.mark.unit
def test_alignment_error_rate_of_a_hand_made_example():
    """AER = 1 - (|A&S| + |A&P|) / (|A| + |S|) (Och and Ney 2003) on sets counted by hand."""
    from benchmarks import alignment_error

    hypothesis = {(0, 0), (1, 1), (2, 1), (3, 3)}
    sure = {(0, 0), (1, 2), (3, 3)}
    possible = sure | {(1, 1), (2, 2)}
    # A&S = {0-0, 3-3}: 2; A&P = {0-0, 1-1, 3-3}: 3; |A| = 4; |S| = 3
    found = alignment_error.counts(hypothesis, sure, possible)
    assert found == (2, 3, 4, 3)
    rates = alignment_error.error_rates(*found)
    assert rates["aer"] == pytest.approx(1 - (2 + 3) / (4 + 3))
    assert rates["precision"] == pytest.approx(3 / 4) and rates["recall"] == pytest.approx(2 / 3)
    perfect = alignment_error.error_rates(*alignment_error.counts(sure, sure, possible))
    assert perfect == {"aer": 0.0, "precision": 1.0, "recall": 1.0}
    attention = np.arange(6.0).reshape(3, 2)
    moved = list(alignment_error.shifted(attention).values())
    np.testing.assert_array_equal(moved[0], attention)
    np.testing.assert_array_equal(moved[1], attention[[1, 2, 2]])  # token i gets row i + 1
    np.testing.assert_array_equal(moved[2], attention[[0, 0, 1]])  # token i gets row i - 1


@pytest.mark.unit
def test_alignment_reference_and_result_have_the_figures():
    """The committed reference (eflomal's links, 100 verses) is well formed, and the result's
    rates agree with each other and show the unshifted rows align best."""
    from benchmarks import alignment_error

    header, verses = alignment_error.read_reference()
    assert "eflomal 2.0.0" in header["reference"] and "not human gold" in header["reference"]
    assert len(verses) == 100
    for verse in verses:
        assert verse["sure"] and verse["sure"] <= verse["possible"]
        for s, t in verse["possible"]:
            assert s < len(verse["source_words"]) and t < len(verse["target_words"])
    figures = harness.read_result("alignment_error")["figures"]
    assert figures["verses"] == 100 and list(figures["variants"]) == list(alignment_error.VARIANTS)
    sure_links = sum(len(v["sure"]) for v in verses)
    assert figures["possible_links"] == sum(len(v["possible"]) for v in verses)
    for row in figures["variants"].values():
        assert row["sure_links"] == sure_links
        a_sure, a_possible = row["recall"] * sure_links, row["precision"] * row["links"]
        aer = 1 - (a_sure + a_possible) / (row["links"] + sure_links)
        assert row["aer"] == pytest.approx(aer, abs=2e-4)
        assert 0.0 < row["aer"] < 1.0
    computed, later, earlier = (r["aer"] for r in figures["variants"].values())
    assert computed < min(later, earlier)


class _FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_quality_probe_does_not_count_its_own_time():
    """benchmarks/time_to_quality.QualityProbe: a probe taking 30 s of a 60 s interval does not
    move the next probe earlier; training stops at the budget, counted the same way."""
    from types import SimpleNamespace

    from benchmarks.time_to_quality import QualityProbe

    clock = _FakeClock()
    pairs = [("a b", "x y z"), ("c", "w")]

    def translate(sources):
        clock.now += 30.0  # the probe's own work
        return ["x y z", "v"]

    probe = QualityProbe(translate, pairs, minutes=2.0, every=1.0, clock=clock)
    model = SimpleNamespace(
        optimizer=SimpleNamespace(iterations=SimpleNamespace(numpy=lambda: 7)),
        stop_training=False,
    )
    probe.set_model(model)
    probe.on_train_begin()
    for now in (30.0, 59.0, 61.0):  # the first probe runs after the batch ending at 61 s
        clock.now = now
        probe.on_train_batch_end(0)
    assert len(probe.points) == 1 and probe.points[0]["probe_seconds"] == 30.0
    clock.now = 91.0 + 58.0  # 149 s of wall clock, 30 s of it probing: 119 s of training
    probe.on_train_batch_end(0)
    assert len(probe.points) == 1 and not model.stop_training
    clock.now = 91.0 + 61.0
    probe.on_train_batch_end(0)
    assert [p["minute"] for p in probe.points] == [1.0, 2.0]
    assert probe.points[1]["trained_minutes"] == round(122.0 / 60, 3)
    assert model.stop_training
    assert 0.0 < probe.points[0]["chrf"] < 100.0  # one translation right, one wrong


def test_quality_probe_probes_a_run_its_own_budget_stopped_just_short_of_the_mark():
    """`train`'s `max_minutes` counts the probes' time too, so it stops a little before the
    probe's last mark: `on_train_end` probes there once more, and only then."""
    from types import SimpleNamespace

    from benchmarks.time_to_quality import QualityProbe

    clock = _FakeClock()
    probe = QualityProbe(lambda s: ["x y z"], [("a", "x y z")], minutes=2.0, every=1.0, clock=clock)
    model = SimpleNamespace(
        optimizer=SimpleNamespace(iterations=SimpleNamespace(numpy=lambda: 7)),
        stop_training=False,
    )
    probe.set_model(model)
    probe.on_train_begin()
    clock.now = 61.0
    probe.on_train_batch_end(0)
    clock.now = 118.0  # the budget stops it: 1.97 minutes trained
    probe.on_train_end()
    assert [p["minute"] for p in probe.points] == [1.0, 2.0]
    assert probe.points[1]["trained_minutes"] == round(118.0 / 60, 3)
    probe.on_train_end()  # nothing trained since: no third point
    assert len(probe.points) == 2
    early = QualityProbe(lambda s: ["x"], [("a", "x")], minutes=2.0, every=1.0, clock=clock)
    early.set_model(model)
    early.on_train_begin()
    clock.now += 30.0  # stopped (early stopping) half-way to the first mark: no point
    early.on_train_end()
    assert early.points == []


def test_time_to_quality_compares_each_seed_with_the_tutorial():
    """The summary by hand: the first minute a recipe reaches the tutorial's last BLEU, and
    whether it leads at every minute after the first (ties do not lead)."""
    from benchmarks.time_to_quality import summarize

    def run(impl, seed, bleus):
        points = [{"minute": float(m), "bleu": b} for m, b in enumerate(bleus, start=1)]
        return {"impl": impl, "seed": seed, "points": points}

    runs = [
        run("tutorial", 0, [5.0, 10.0, 15.0, 20.0]),
        run("fast", 0, [1.0, 12.0, 21.0, 25.0]),
        run("tie", 0, [6.0, 10.0, 16.0, 19.0]),
        run("tutorial", 1, [4.0, 8.0, 12.0, 16.0]),
        run("fast", 1, [3.0, 9.0, 16.0, 18.0]),
        run("tie", 1, [3.0, 9.0, 16.0, 18.0]),
    ]
    args = Namespace(minutes=4.0, every=1.0, dev_sample=10, budgeted=False)
    figures = summarize(runs, args, {"dev_pairs": 50})
    fast = figures["against_tutorial"]["fast"]
    assert fast["0"] == {
        "tutorial_final_bleu": 20.0,
        "minutes_to_tutorial_final": 3.0,
        "ahead_after_first_minute": True,
    }
    assert fast["1"]["minutes_to_tutorial_final"] == 3.0 and fast["1"]["ahead_after_first_minute"]
    tie = figures["against_tutorial"]["tie"]
    assert tie["0"]["minutes_to_tutorial_final"] is None  # 19 < 20
    assert not tie["0"]["ahead_after_first_minute"]  # 10 == 10 at minute 2
    assert figures["goal"]["fast"] == {
        "reached_tutorial_final_within_3_minutes": True,
        "ahead_at_every_minute_after_the_first": True,
    }
    assert figures["goal"]["tie"]["reached_tutorial_final_within_3_minutes"] is False
    assert figures["mean_bleu_by_minute"]["fast"]["3"] == 18.5  # (21 + 16) / 2
    assert figures["table"].splitlines()[0] == "| minutes | tutorial | fast | tie |"
    assert figures["dev_sample"] == 10


def test_time_to_quality_smoke(tmp_path):
    """benchmarks/time_to_quality.py in its small mode: the tutorial and our default each get
    a probe per interval, at increasing steps, and the plot is written."""
    out = tmp_path / "time_to_quality.json"
    assert harness.main(["time_to_quality", "--small", "--out", str(out)]) == 0
    figures = json.loads(out.read_text())["figures"]
    assert [r["impl"] for r in figures["runs"]] == ["tutorial", "default"]
    for result in figures["runs"]:
        points = result["points"]
        # 0.15 minutes, a probe each 0.05 (a slow first batch skips marks; early stopping
        # may end our tiny run sooner)
        assert 1 <= len(points) <= 3
        if result["impl"] == "tutorial":
            assert points[-1]["trained_minutes"] >= 0.15
        assert all(p["trained_minutes"] >= p["minute"] for p in points)
        steps = [p["step"] for p in points]
        assert steps == sorted(steps) and steps[0] > 0
        assert all(0.0 <= p["bleu"] <= 100.0 for p in points)
    assert figures["runs"][1]["training"]["learning_rate"] > 0
    assert (harness.ROOT / figures["plot"]).exists()


def test_time_to_quality_on_your_own_pairs(tmp_path):
    """`--data-file`: the same comparison on pairs this project has never seen (here 1,500
    generated short pairs in a file of their own), and a one-line refusal without `--out`
    or for a missing file."""
    from benchmarks import tutorial_size

    pairs = tutorial_size.tutorial_data(tmp_path / "own.tsv", 1500)
    out = tmp_path / "own.json"
    args = ["time_to_quality", "--small", "--no-tutorial", "--data-file", str(pairs)]
    assert harness.main([*args, "--out", str(out)]) == 0
    figures = json.loads(out.read_text())["figures"]
    assert figures["data"]["file"] == str(pairs)
    assert figures["data"]["train_pairs"] + figures["data"]["dev_pairs"] <= 1500
    assert [r["impl"] for r in figures["runs"]] == ["default"]
    with pytest.raises(SystemExit, match="needs --out"):
        harness.main(args)
    with pytest.raises(SystemExit, match="no such file"):
        harness.main(
            [
                "time_to_quality",
                "--small",
                "--data-file",
                str(tmp_path / "nope.tsv"),
                "--out",
                str(out),
            ]
        )


def test_tutorial_size_breakdown_adds_up_and_has_a_floor(tiny_run, tiny_export):
    """`breakdown`: the parts of one shortlist decode, each timed, the steps counted, and the
    floor of the same products; the report renders it."""
    from benchmarks import report, tutorial_size
    from seq2seq_attn.tokenizer import TokenizerPair

    tokenizers = TokenizerPair.load(tiny_run / "tokenizer")
    texts = ["March 3, 1999", "tuesday 4 june 2001", "12/05/1970"]
    b = tutorial_size.breakdown(tiny_run, tiny_export[0], tokenizers, texts, repeats=1)
    assert set(b["median_ms"]) == {
        "tokenize",
        "encoder",
        "shortlist",
        "steps",
        "host",
        "detokenize",
    }
    assert all(ms > 0 for name, ms in b["median_ms"].items() if name != "host")
    assert b["decoder_steps_median"] >= 1 and b["mean_candidates"] > 0
    floor = b["floor_ms"]
    steps = b["decoder_steps_median"]
    assert floor["decode"] == pytest.approx(floor["encoder"] + steps * floor["step"], abs=2e-3)
    assert b["step_ms"] == pytest.approx(b["median_ms"]["steps"] / steps, abs=1e-3)
    figures = {"latency": {}, "breakdown": b}
    (_, _), (title, rendered) = report._tutorial_size(figures)
    assert "Where one decode" in title and "floor: the decode" in rendered
