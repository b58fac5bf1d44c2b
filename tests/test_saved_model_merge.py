"""One-signature SavedModels merged into one: every signature loads and computes as before."""

import numpy as np
import pytest
import tensorflow as tf

from seq2seq_attn.export.saved_model_merge import merge_signature_saved_models

SPEC = tf.TensorSpec([None, 3], tf.float32, name="x")


def _functions():
    weights = tf.constant(np.arange(12, dtype=np.float32).reshape(3, 4) / 10)

    @tf.function(input_signature=[SPEC])
    def project(x):
        return {"y": tf.matmul(x, weights)}

    @tf.function(input_signature=[SPEC])
    def loop(x):  # a while loop, like the decoders: the frozen graphs carry control flow
        total = tf.while_loop(lambda i, s: i < 3, lambda i, s: (i + 1, s * 2.0 + x), (0, x))[1]
        return {"total": total, "rows": tf.shape(x)[0]}

    @tf.function(input_signature=[SPEC])
    def same_output_name(x):
        return {"y": tf.nn.relu(x - 0.5)}

    return {"project": project, "loop": loop, "same_output_name": same_output_name}


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("parts")
    dirs = []
    for name, function in _functions().items():
        dirs.append(root / name)
        tf.saved_model.save(tf.Module(), str(dirs[-1]), signatures={name: function})
    return dirs


def test_every_signature_computes_what_it_did_alone(parts, tmp_path):
    merge_signature_saved_models(parts, tmp_path / "merged")
    merged = tf.saved_model.load(str(tmp_path / "merged")).signatures
    assert set(merged) == {"project", "loop", "same_output_name"}
    x = tf.constant(np.random.default_rng(0).normal(size=(5, 3)), tf.float32)
    for directory in parts:
        ((name, alone),) = tf.saved_model.load(str(directory)).signatures.items()
        expected, got = alone(x=x), merged[name](x=x)
        assert set(got) == set(expected)
        for key in expected:
            np.testing.assert_array_equal(got[key].numpy(), expected[key].numpy())


def test_the_tflite_converter_reads_the_merged_model(parts, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    merge_signature_saved_models(parts[:2], tmp_path / "merged")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "merged"))
    interpreter = Interpreter(model_content=converter.convert())
    assert set(interpreter.get_signature_list()) == {"project", "loop"}
    x = np.ones((2, 3), np.float32)
    got = interpreter.get_signature_runner("loop")(x=x)["total"]
    np.testing.assert_allclose(got, x * 15)  # ((x * 2 + x) * 2 + x) * 2 + x


def test_bad_inputs_are_named(parts, tmp_path):
    with pytest.raises(ValueError, match="repeat"):
        merge_signature_saved_models([parts[0], parts[0]], tmp_path / "twice")
    both = tmp_path / "both"
    functions = _functions()
    tf.saved_model.save(
        tf.Module(), str(both), signatures={k: functions[k] for k in ("project", "loop")}
    )
    with pytest.raises(ValueError, match="one signature"):
        merge_signature_saved_models([parts[0], both], tmp_path / "out")
