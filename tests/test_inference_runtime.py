"""The TensorFlow-free runtimes of an export: bad source batches are errors, not crashes."""

import subprocess
import sys

import numpy as np
import pytest

from seq2seq_attn.inference.runtime import LiteRTModel, OnnxModel


@pytest.fixture(scope="module", params=["onnx", "onnx_int8", "litert"])
def runtime(request, tiny_export):
    out = tiny_export[0]
    if request.param == "litert":
        return LiteRTModel(out / "model.tflite")
    return OnnxModel(out, quantized=request.param == "onnx_int8")


@pytest.mark.parametrize(
    "ids",
    [np.zeros((0, 5), np.int32), np.zeros((2, 0), np.int32), np.array([4, 5, 3], np.int32)],
    ids=["no rows", "no columns", "one dimension"],
)
def test_an_empty_or_flat_batch_is_a_value_error(runtime, ids):
    # onnxruntime's GRU op ended the process with a segmentation fault on no rows
    for call in (runtime.encode, runtime.greedy_graph, lambda x: runtime.decode(x, 2, 3)):
        with pytest.raises(ValueError, match="source_ids"):
            call(ids)


def test_a_good_batch_still_decodes(runtime):
    ids = np.array([[5, 6, 7, 3], [8, 3, 0, 0]], np.int32)
    graph, host = runtime.greedy_graph(ids), runtime.decode(ids, 2, 3)
    np.testing.assert_array_equal(graph["tokens"], host["tokens"])


def test_loading_a_tflite_file_prints_nothing_not_even_the_xnnpack_notice(tiny_export):
    """In a fresh process: LiteRT prints its notice once per process, where it applies the
    XNNPACK delegate (the interpreter's first allocation or invoke)."""
    code = (
        "import sys, numpy as np; from seq2seq_attn.inference.runtime import LiteRTModel; "
        "model = LiteRTModel(sys.argv[1]); model.encode(np.full((2, 5), 4, np.int32)); "
        "print(sorted(model.runners))"
    )
    path = str(tiny_export[0] / "model.tflite")
    done = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    shortlist = "'decode_step_shortlist', "  # the tiny run has a shortlist: its signatures too
    assert done.stdout == (
        f"['decode_step', {shortlist}'encode', 'greedy', 'greedy_shortlist', 'shortlist_output']\n"
    )
    assert done.stderr == ""
