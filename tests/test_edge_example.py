"""docs/edge_translate.py, the README's phone-app example: SentencePiece + LiteRT + NumPy only,
and the same translations as the project's own TensorFlow-free path on the same export."""

import json
import subprocess
import sys
from pathlib import Path

from seq2seq_attn.inference.runtime import LiteRTModel
from seq2seq_attn.interface import trim_after_end
from seq2seq_attn.tokenizer import END_ID, TokenizerPair

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "edge_translate.py"
TEXTS = ["March 3, 1999", "1 de agosto de 1964", "sunday, 31 december 1961", " 12/05/1970"]
RUN = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("edge", sys.argv[1])
edge = importlib.util.module_from_spec(spec)
spec.loader.exec_module(edge)
source, target, greedy = edge.load(sys.argv[2])
out = [edge.translate(t, source, target, greedy) for t in json.loads(sys.argv[3])]
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "seq2seq_attn"))
print(json.dumps({"translations": out, "heavy": heavy}))
"""


def test_edge_example_matches_the_project_path(tiny_export):
    export_dir = tiny_export[0]
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(EXAMPLE), str(export_dir), json.dumps(TEXTS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []  # neither TensorFlow nor this package
    tokenizers = TokenizerPair.load(export_dir / "tokenizer")
    model = LiteRTModel(export_dir / "model.tflite")
    expected = []
    for text in TEXTS:
        ids = tokenizers.source.encode_batch([text])
        tokens = model.greedy_graph(ids)["tokens"][0]
        expected.append(tokenizers.target.decode(trim_after_end(tokens, END_ID)))
    assert result["translations"] == expected


def test_edge_example_usage_message():
    done = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True)
    assert done.returncode == 2 and "EXPORT_DIR" in done.stderr
