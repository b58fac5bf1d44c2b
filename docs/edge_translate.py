"""Translate on an edge device the way a phone app does: SentencePiece + LiteRT + NumPy only.

No TensorFlow and no seq2seq_attn code: the app ships `model.tflite` and the `.model` files
named in `manifest.json`, checks each file against the SHA-256 the manifest records (an app
does the same with its platform's SHA-256), tokenizes with SentencePiece (its C++ library on
Android/iOS, the `sentencepiece` wheel here), runs the `greedy` signature and decodes the ids.

    python docs/edge_translate.py EXPORT_DIR "In the beginning God created the heavens."
"""

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import sentencepiece as spm
from ai_edge_litert.interpreter import Interpreter


class ArtifactError(Exception):
    """A file of the export does not match the SHA-256 in `manifest.json`."""


def verified(export_dir, manifest, name):
    """The path of `name` in the export, once its SHA-256 equals the manifest's."""
    path = export_dir / name
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != manifest.get("files", {}).get(name):  # None: not recorded
        raise ArtifactError(
            f"{path} does not match the SHA-256 in manifest.json (changed or corrupted since "
            "the export); export the run again, or restore the file from the original export"
        )
    return str(path)


def load(export_dir):
    """(source tokenizer, target tokenizer, greedy runner) of an export directory."""
    export_dir = Path(export_dir)
    manifest = json.loads((export_dir / "manifest.json").read_text())
    files = manifest["tokenizer"]  # {"source": {"file": ...}, "target": {"file": ...}}
    source = spm.SentencePieceProcessor(
        model_file=verified(export_dir, manifest, files["source"]["file"])
    )
    target = spm.SentencePieceProcessor(
        model_file=verified(export_dir, manifest, files["target"]["file"])
    )
    interpreter = Interpreter(model_path=verified(export_dir, manifest, "model.tflite"))
    return source, target, interpreter.get_signature_runner("greedy")


def translate(text, source, target, greedy):
    """One text in, its translation out."""
    ids = [source.bos_id(), *source.encode(text), source.eos_id()]  # [START] ... [END]
    out = greedy(source_ids=np.array([ids], np.int32))
    tokens = out["tokens"][0].tolist()  # 0 ([PAD]) after [END]
    if target.eos_id() in tokens:
        tokens = tokens[: tokens.index(target.eos_id())]
    return target.decode(tokens)


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        source, target, greedy = load(argv[0])
    except ArtifactError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for text in argv[1:]:
        print(translate(text, source, target, greedy))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
