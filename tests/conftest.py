import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from filelock import FileLock

from benchmarks import common

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# Under pytest-xdist the workers split the cores: TensorFlow's default of one op thread per
# core in every worker oversubscribes them (on 2 cores, 2 workers: test_model, test_training
# and test_optimizers took 284 s with the default, 173 s with one thread each, one after the
# other; the whole suite: 850 s before, 840 s after, on a noisy day, so the gain is unproven).
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    _share = (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(max(1, _share)))

# Every test file belongs to one layer and its tests get that marker (pyproject.toml declares
# them; a test that carries a layer marker of its own keeps it, like the two Chromium tests of
# test_serving_live.py). A file missing here fails at collection: classify it when you add it.
#   unit     the library and the inference layer (layers, model, search, tokenizer, data, CLI)
#   export   export, conversion and parity (SavedModel, TFLite, ONNX)
#   serving  the HTTP server, its load and schema tests
#   browser  tests that drive headless Chromium
# `canary` (upstream bugs we work around, private names we rely on) and `slow` are marked on
# the tests themselves.
LAYERS = {
    "test_artifact_integrity.py": "export",
    "test_alignment.py": "unit",
    "test_attention.py": "unit",
    "test_benchmarks.py": "unit",  # the benchmarks' premises: the library's maths, naive twins
    "test_bible_data.py": "unit",
    "test_bulk.py": "unit",  # translate-corpus on Apache Beam, TensorFlow-free
    "test_callbacks.py": "unit",
    "test_candidate_softmax.py": "unit",
    "test_cli.py": "unit",
    "test_compat.py": "unit",
    "test_config.py": "unit",
    "test_corpora.py": "unit",
    "test_data.py": "unit",
    "test_decode_options.py": "serving",  # one bad option through CLI, library and server
    "test_decoder.py": "unit",
    "test_distribute.py": "unit",
    "test_docs.py": "unit",
    "test_docstrings.py": "unit",
    "test_edge_example.py": "export",
    "test_encoder.py": "unit",
    "test_evaluation.py": "unit",
    "test_export.py": "export",
    "test_export_options.py": "export",
    "test_graph_tokenizer.py": "unit",
    "test_greedy_graph.py": "export",
    "test_inference_runtime.py": "unit",
    "test_inference_search.py": "unit",
    "test_interface.py": "unit",
    "test_layers.py": "unit",
    "test_logs.py": "unit",
    "test_losses.py": "unit",
    "test_model.py": "unit",
    "test_native_logs.py": "unit",
    "test_placeholders.py": "unit",
    "test_optimizers.py": "unit",
    "test_packaging.py": "unit",
    "test_plots.py": "unit",
    "test_po_pairs.py": "unit",  # tools/po_pairs.py, data this project has never seen
    "test_recurrence.py": "unit",
    "test_saved_model_merge.py": "export",
    "test_schedules.py": "unit",
    "test_search.py": "unit",
    "test_search_parity.py": "export",
    "test_serving_app.py": "serving",
    "test_serving_batching.py": "serving",
    "test_serving_concurrency.py": "serving",
    "test_serving_disconnect.py": "serving",
    "test_serving_fuzz.py": "serving",
    "test_serving_live.py": "serving",
    "test_serving_options.py": "serving",
    "test_serving_prefix.py": "serving",
    "test_serving_placeholders.py": "serving",
    "test_serving_schema.py": "serving",
    "test_serving_server.py": "serving",
    "test_serving_service.py": "serving",
    "test_serving_shortlist.py": "serving",
    "test_shortlist.py": "unit",
    "test_storage.py": "unit",
    "test_shortlist_decoding.py": "unit",
    "test_shortlist_export.py": "export",
    "test_target_prefix.py": "unit",
    "test_tf_serving_loader.py": "export",
    "test_tokenizer.py": "unit",
    "test_tracing.py": "unit",
    "test_training.py": "unit",
    "test_translate_onnx.py": "export",
    "test_translate_stream.py": "unit",
    "test_validate.py": "export",
    "test_warm_start.py": "unit",
    "test_web_export.py": "browser",  # export --web: the folder, and the page in Chromium
}
LAYER_MARKERS = ("unit", "export", "serving", "browser")

# The fast subset (`pytest -m fast`, `python3 tasks.py test --fast`): the unit tests that are
# neither slow nor canaries, less the files and tests below, which train or export a model,
# start fresh interpreters or build the wheel. A key is a file or `file::test function`.
# Seconds in one process, without the slow tests, on 2 cores shared with other jobs, 2026-12-06.
NOT_FAST = {
    "test_target_prefix.py::test_cli_prefix_equals_the_library": "the tiny model",
    "test_target_prefix.py::test_cli_prefix_column_equals_the_library": "the tiny model",
    "test_target_prefix.py::test_cli_bad_prefix_arguments": "the tiny model",
    "test_target_prefix.py::test_library_output_starts_with_the_prefix": "the tiny model",
    "test_target_prefix.py::test_library_empty_prefix_is_no_prefix": "the tiny model",
    "test_target_prefix.py::test_library_prefix_changes_the_output_and_is_scored": "the tiny model",
    "test_target_prefix.py::test_library_bad_prefix_count": "the tiny model",
    "test_alignment.py::test_token_log_probs_sum_to_the_score_and_words_are_the_texts": (
        "needs the tiny model trained, 30 s"
    ),
    "test_alignment.py::test_no_output_token_gives_empty_scores": "needs the tiny model trained",
    "test_alignment.py::test_nothing_is_computed_unless_asked": "needs the tiny model trained",
    "test_alignment.py::test_row_i_of_the_attention_belongs_to_token_i": "decodes the pretrained",
    "test_benchmarks.py": "trains the tiny model and the benchmarks' recipes",
    "test_placeholders.py::test_library_puts_every_placeholder_back": "the tiny model",
    "test_placeholders.py::test_library_text_without_placeholders_is_byte_identical": "tiny",
    "test_placeholders.py::test_library_off_translates_the_markup_as_text": "the tiny model",
    "test_placeholders.py::test_pretrained_model_ui_strings": "decodes the pretrained",
    "test_placeholders.py::test_cli_on_by_default_and_no_placeholders": "the tiny model",
    "test_placeholders.py::test_cli_bad_placeholder_arguments": "the tiny model",
    "test_cli.py": "trains and exports the tiny model",
    "test_bulk.py": "the tiny export, Beam jobs and worker processes",
    "test_distribute.py::test_mirrored_steps_equal_one_device_steps": "fits in subprocesses, 100 s",
    "test_distribute.py::test_cli_trains_mirrored_over_two_cpu_devices": "trains, 66 s",
    "test_distribute.py::test_mixed_precision_trains_with_float32_logits": "fits, 21 s",
    "test_docs.py": "builds the documentation site",
    "test_docstrings.py": "runs every example in fresh interpreters, 25 s",
    "test_graph_tokenizer.py": "trains SentencePiece on the Bible, 35 s",
    "test_inference_runtime.py": "needs the tiny model trained and exported",
    "test_logs.py": "trains the tiny model in fresh interpreters",
    "test_model.py::test_deep_tied_model_fits_with_dropout": "fits, 41 s",
    "test_model.py::test_jit_compiled_train_step_matches_eager_graph": "fits, 29 s",
    "test_model.py::test_mixed_precision_trains_without_nan": "fits, 18 s",
    "test_model.py::test_fit_reduces_masked_loss_and_padding_is_ignored": "fits, 15 s",
    "test_native_logs.py::test_a_command_starts_without_tensorflow_notices": (
        "starts TensorFlow in fresh interpreters, 9 s"
    ),
    "test_native_logs.py::test_verbose_shows_tensorflows_own_startup_lines": (
        "starts TensorFlow in a fresh interpreter, 14 s"
    ),
    "test_packaging.py": "builds and installs the wheel, 40 s",
    "test_shortlist.py::test_train_builds_the_shortlist": "needs the tiny model trained, 40 s",
    "test_shortlist.py::test_cli_builds_a_runs_shortlist_and_prints_one_summary": (
        "needs the tiny model trained"
    ),
    "test_shortlist_decoding.py::test_translator_decodes_inside_each_batchs_candidates": (
        "needs the tiny model trained"
    ),
    "test_shortlist_decoding.py::test_translator_without_a_shortlist_decodes_as_before": (
        "needs the tiny model trained"
    ),
    "test_shortlist_decoding.py::test_cli_translate_full_vocabulary_flag": "tiny model trained",
    "test_shortlist_decoding.py::test_a_batch_with_too_many_candidates_decodes_in_full": (
        "needs the tiny model trained"
    ),
    "test_shortlist_decoding.py::test_cli_evaluate_full_vocabulary_writes_its_own_file": (
        "needs the tiny model trained"
    ),
    "test_storage.py::test_compressed_run_translates_as_the_run_and_passes_export_parity": (
        "needs the tiny model trained, exports it again"
    ),
    "test_storage.py::test_compress_refuses_what_would_lose_something": "the tiny model",
    "test_storage.py::test_cli_compress_prints_the_sizes_and_errors_without_a_traceback": (
        "the tiny model"
    ),
    "test_tracing.py": "needs the tiny model trained",
    "test_training.py": "trains the tiny model, 108 s",
}


class _UnclassifiedModule(pytest.Module):
    """A test file missing from LAYERS: one collection error that says what to do."""

    def collect(self):
        raise self.CollectError(
            f"{self.path.name} has no layer: add it to LAYERS in tests/conftest.py "
            f"(one of {', '.join(LAYER_MARKERS)})"
        )


def pytest_pycollect_makemodule(module_path, parent):
    """A test file of tests/ that LAYERS does not list collects as one error."""
    unlisted = module_path.name.startswith("test_") and module_path.name not in LAYERS
    if unlisted and module_path.parent == Path(__file__).parent:
        return _UnclassifiedModule.from_parent(parent, path=module_path)
    return None


def _mark_layer_and_fast(item):
    """Adds the item's file's layer marker (unless it has one) and, if it qualifies, `fast`."""
    name = item.path.name
    own = [marker for marker in LAYER_MARKERS if item.get_closest_marker(marker)]
    layer = own[0] if own else LAYERS[name]
    if not own:
        item.add_marker(layer)
    function = getattr(item, "originalname", item.name)  # the name without parameters
    listed = name in NOT_FAST or f"{name}::{function}" in NOT_FAST
    cheap = not item.get_closest_marker("slow") and not item.get_closest_marker("canary")
    if layer == "unit" and cheap and not listed:
        item.add_marker("fast")


# Under pytest-xdist's `--dist loadfile` each file goes whole to one worker, in this order
# (`tasks.py` turns xdist's own reordering, by number of tests, off): the longest files first,
# so that none of them starts last while the other worker idles, and the first two are one
# that builds the shared tiny model and one that does not need it, so that the other worker
# does not wait for the build. Seconds summed over a file's tests, 2 cores, 2026-12-03:
# cli 224 (and the tiny model's build), model 341, distribute 417, serving_concurrency 125
# (and the pretrained export, 76), benchmarks 132, training 111, export 106.
LONGEST_FIRST = (
    "test_cli.py",
    "test_model.py",
    "test_distribute.py",
    "test_serving_concurrency.py",
    "test_benchmarks.py",
    "test_training.py",
    "test_export.py",
    "test_logs.py",  # fresh interpreters that train and export: 52 s + 47 s + ..., 2026-12-06
)


@pytest.hookimpl(tryfirst=True)  # the markers must be there before `-m` deselects by them
def pytest_collection_modifyitems(items):
    for item in items:
        _mark_layer_and_fast(item)

    def rank(item):
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the other files, and every file's tests, keep their order


# A dates model small enough to train in seconds, shared by the CLI, export and serving tests:
# `benchmarks.common.TINY_CONFIG` (its training keys pin the recipe the tests' expectations were
# written for, float32 and the full softmax), one copy for the tests and the benchmarks' --small
# runs.
TINY_CONFIG = common.TINY_CONFIG


@pytest.fixture(autouse=True)
def float32_policy_after_each_test():
    """Keras' dtype policy is global and `training.build_model` sets it from the config (the
    default, `auto`, is bfloat16 on a CPU with AMX): each test leaves float32 behind, so that
    no test depends on which ran before it in the same worker."""
    yield
    keras = sys.modules.get("keras")  # never imported here by a TensorFlow-free test
    if keras is not None:
        keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_CONFIG))
    return path


def _built_once(tmp_path_factory, config, name, build):
    """`build(path)` once per test session, shared by every xdist worker; returns `path`.

    pytest-xdist's recipe for session fixtures: the first worker builds under a file lock in
    the directory all workers share, the others wait for it and reuse the result. Without
    xdist (`-p no:xdist`, or not installed) the session builds it alone.
    """
    if not hasattr(config, "workerinput"):  # not an xdist worker
        path = tmp_path_factory.getbasetemp() / name
    else:
        path = tmp_path_factory.getbasetemp().parent / name
    with FileLock(f"{path}.lock"):
        if not (path / ".built").exists():
            shutil.rmtree(path, ignore_errors=True)  # a worker that failed half way
            path.mkdir()
            build(path)
            (path / ".built").touch()
    return path


def _train_and_export(path, config):
    from seq2seq_attn.cli import main
    from seq2seq_attn.export.main import export_run

    run = path / "dates"
    assert main(["train", "--data", "dates", "--config", str(config), "--out", str(run)]) == 0
    export_run(run, path / "exported", samples=12, echo=lambda *_: None)


@pytest.fixture(scope="session")
def tiny_dates(tiny_config, tmp_path_factory, pytestconfig):
    """The tiny dates model trained and exported once for the whole session."""
    return _built_once(
        tmp_path_factory, pytestconfig, "tiny", lambda path: _train_and_export(path, tiny_config)
    )


@pytest.fixture(scope="session")
def tiny_run(tiny_dates):
    """A trained run directory of the tiny dates model."""
    return tiny_dates / "dates"


@pytest.fixture(scope="session")
def tiny_export(tiny_dates):
    """`(export_dir, parity_report)` of the tiny run: every artifact, parity passed."""
    out = tiny_dates / "exported"
    return out, json.loads((out / "parity.json").read_text())


@pytest.fixture
def own_tiny_export(tiny_export, tmp_path):
    """A copy of the tiny export for one test: for tests that write into an export folder
    (parity spills its Keras logits there), which must not show up in the shared one that
    tests on other workers read at the same time."""
    copy = tmp_path / "exported"
    shutil.copytree(tiny_export[0], copy)
    return copy


@pytest.fixture(scope="session")
def pretrained_export(tmp_path_factory):
    """The shipped pretrained en-es model, exported (every artifact, parity on 8 verses)."""
    from seq2seq_attn.commands import PRETRAINED_DIR
    from seq2seq_attn.export.main import export_run

    out = tmp_path_factory.mktemp("pretrained") / "bible-export"
    export_run(PRETRAINED_DIR, out, samples=8, echo=lambda *_: None)
    return out


@pytest.fixture(scope="session")
def load_test():
    """benchmarks/load_test.py as a module: the realistic request mix and the loopback server."""
    from benchmarks import load_test

    return load_test
