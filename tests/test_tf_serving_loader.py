"""The SavedModel as TF Serving loads it: TF1 loader, saver restore, signatures in a session."""

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from seq2seq_attn.export.signatures import (
    FULL_VOCABULARY_SIGNATURES as FULL_VOCABULARY,
)
from seq2seq_attn.export.signatures import SHORTLIST_SIGNATURES, SIGNATURES, ExportModule
from seq2seq_attn.export.tf_serving_loader import SessionSignatures
from seq2seq_attn.translator import Translator

TEXTS = ["March 3, 2021", "the 7th of october 1999", "1/2/03", "Friday, June 14, 1968", "x"]


def padded_ids(translator, texts):
    return np.asarray(translator.tokenizers.source.encode_batch(texts), np.int32)


def test_every_signature_computes_what_tf_saved_model_load_computes(tiny_export, tiny_run):
    out, report = tiny_export
    translator = Translator.load(tiny_run)
    ids = padded_ids(translator, TEXTS)  # mixed lengths, padded
    eager = tf.saved_model.load(str(out / "saved_model")).signatures
    with SessionSignatures(out / "saved_model") as session:
        # The tiny run has a shortlist (train builds one): its three signatures come too, and
        # the full-vocabulary twins of translate_ids and serving_default.
        assert set(session) == set(SIGNATURES) | set(SHORTLIST_SIGNATURES) | set(FULL_VOCABULARY)
        for name in ("greedy", "translate_ids"):
            got, want = session[name](source_ids=ids), eager[name](source_ids=tf.constant(ids))
            assert set(got) == set(want)
            np.testing.assert_array_equal(got["tokens"], want["tokens"].numpy())
            np.testing.assert_allclose(got["scores"], want["scores"].numpy(), atol=1e-5)
        served = session["serving_default"](text=TEXTS)
        expected = eager["serving_default"](text=tf.constant(TEXTS))
        assert list(served["translation"]) == list(expected["translation"].numpy())
        np.testing.assert_array_equal(served["tokens"], expected["tokens"].numpy())
        encoded = session["encode"](source_ids=ids)
        np.testing.assert_allclose(
            encoded["memory"], eager["encode"](source_ids=tf.constant(ids))["memory"], atol=1e-6
        )
    # The export's own parity report ran the same loader over every parity sentence.
    loader = report["artifacts"]["saved_model/tf_serving_loader"]
    assert loader["greedy_graph_agreement"] + loader["greedy_graph_ties"] == 1.0
    assert loader["serving_default_agreement"] == 1.0


def test_the_saved_model_holds_each_weight_once(tiny_export, tiny_run):
    out, _ = tiny_export
    model = Translator.load(tiny_run).model
    saved = tf.train.load_checkpoint(str(out / "saved_model" / "variables" / "variables"))
    tensors = [k for k in saved.get_variable_to_shape_map() if k.endswith("VARIABLE_VALUE")]
    # and, with a shortlist and an untied output layer, its kernel transposed once more, which
    # the shortlist signatures gather from (`ExportModule(output_rows=True)`)
    rows = [k for k in tensors if k.startswith("output_rows/")]
    assert not model.tie_embeddings and (out / "shortlist.onnx").exists() and len(rows) == 1
    assert len(tensors) == len(model.variables) + 1
    kernel = model.decoder_cell.output_layer.kernel.numpy()
    np.testing.assert_array_equal(saved.get_tensor(rows[0]), kernel.T)


@pytest.mark.canary
def test_a_saved_model_tracking_keras_variables_fails_here_not_in_production(tiny_run, tmp_path):
    """What the export did before: it tracked the Keras model, so `tf.saved_model.load` worked
    and TF Serving's loader restored nothing. The loader check sees it."""
    model = Translator.load(tiny_run).model
    module = tf.Module()
    module.model = model
    spec = tf.TensorSpec([None, None], tf.int32, name="source_ids")
    module.encode = tf.function(
        lambda ids: {"memory": model.encode(ids)[0]}, input_signature=[spec], autograph=False
    )
    tf.saved_model.save(module, str(tmp_path), signatures={"encode": module.encode})
    ids = padded_ids(Translator.load(tiny_run), TEXTS)
    assert tf.saved_model.load(str(tmp_path)).signatures["encode"](source_ids=ids)["memory"].shape
    with SessionSignatures(tmp_path) as session:
        with pytest.raises(tf.errors.FailedPreconditionError, match="Could not find variable"):
            session["encode"](source_ids=ids)


def test_unknown_inputs_are_named(tiny_export):
    out, _ = tiny_export
    with SessionSignatures(out / "saved_model") as session:
        with pytest.raises(KeyError, match="no inputs \\['ids'\\]"):
            session["greedy"](ids=[[5, 6]])


def test_export_module_tracks_tf_variables_not_the_model(tiny_run):
    model = Translator.load(tiny_run).model
    module = ExportModule(model)
    assert all(isinstance(v, tf.Variable) for v in module.model_variables)
    assert len(module.model_variables) == len(model.variables)
    assert len(module.variables) == len(model.variables)  # tf.Module's own walk: no twice


@pytest.mark.canary  # TensorFlow's CLI module is private (`tensorflow.python.tools`)
def test_saved_model_cli_runs_serving_default_with_the_text_ops_registered(tiny_export):
    """The README's `saved_model_cli run` line: TensorFlow's own CLI, the TF1 loader, text in."""
    out, _ = tiny_export
    command = [
        sys.executable,
        "-c",
        "import tensorflow_text; from tensorflow.python.tools import saved_model_cli; "
        "saved_model_cli.main()",
        *("run", "--dir", str(out / "saved_model"), "--tag_set", "serve"),
        *("--signature_def", "serving_default", "--input_exprs", f"text={TEXTS[:2]!r}"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for key in ("scores", "tokens", "translation"):
        assert f"Result for output key {key}:" in done.stdout
