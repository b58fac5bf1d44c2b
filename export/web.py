"""`seq2seq-attn export --web`: a folder any static host can serve that translates in the page.

`write_web(export_dir, out_dir)` copies into `out_dir` (`DIR/web/` of an export):

- the page and its ES modules (`index.html`, `page.js`, `worker.js`, `translate.js`,
  `model.js`, `search.js`, `tokenizer.js`, `style.css`), the SentencePiece WebAssembly
  bundle (`sentencepiece.js`) and onnxruntime-web's WebAssembly build (`ort.wasm.min.mjs`,
  `ort-wasm-simd-threaded.mjs`, `ort-wasm-simd-threaded.wasm`): the pinned, built files
  of `web/` that ship in the wheel as `seq2seq_attn.export.web_assets`;
- the step graphs the page runs, float32 and int8 (`encoder.onnx`, `decoder_step.onnx`,
  `encoder_int8.onnx`, `decoder_step_int8.onnx`), and the SentencePiece `.model` files;
- `manifest.json`: the graphs and tokenizers, special ids, the limits the page enforces
  (the server's defaults, `serving.service.Limits`), the pinned JavaScript versions, and
  every file's size and SHA-256.

Nothing is fetched at run time from anywhere but the folder itself. The page decodes with
the host search of `web_assets/search.js`, the JavaScript twin of
`seq2seq_attn.inference.search` (decision 0033).
"""

import json
import shutil
from pathlib import Path

from seq2seq_attn.errors import UserError
from seq2seq_attn.inference.runtime import MANIFEST_FILE, sha256_of

ASSETS_DIR = Path(__file__).parent / "web_assets"
GRAPHS = {
    "float32": {"encoder": "encoder.onnx", "decoder_step": "decoder_step.onnx"},
    "int8": {"encoder": "encoder_int8.onnx", "decoder_step": "decoder_step_int8.onnx"},
}
# The server's default limits (`seq2seq_attn.serving.service.Limits`; export does not import
# serving, tests/test_web_export.py checks the two agree), enforced before the model runs.
LIMITS = {
    "max_text_chars": 1000,
    "max_source_tokens": 128,
    "max_beam_width": 8,
    "max_output_length": 300,
}
_NOT_COPIED = {"__init__.py", "versions.json"}


def _limits(manifest):
    """`LIMITS` capped as the server caps them: by the static source length and the target
    vocabulary; plus the export's default beam width."""
    limits = dict(LIMITS)
    if manifest.get("max_source_length"):
        limits["max_source_tokens"] = min(
            limits["max_source_tokens"], manifest["max_source_length"]
        )
    limits["max_beam_width"] = min(limits["max_beam_width"], manifest["vocab_size"]["target"])
    limits["default_beam_width"] = min(
        int(manifest.get("beam_width") or 1), limits["max_beam_width"]
    )
    return limits


def _copy_assets(out_dir):
    """The built page files into `out_dir`; their pinned versions."""
    if not (ASSETS_DIR / "index.html").is_file():
        raise UserError(
            f"the page's files are missing from {ASSETS_DIR}: rebuild them (make web) or "
            "reinstall seq2seq-attn"
        )
    for path in sorted(ASSETS_DIR.iterdir()):
        if path.is_file() and path.name not in _NOT_COPIED:
            shutil.copy2(path, out_dir / path.name)
    return json.loads((ASSETS_DIR / "versions.json").read_text())


def _copy_model(export_dir, out_dir, manifest):
    """The step graphs and tokenizer files into `out_dir`; the tokenizer names."""
    names = [name for graphs in GRAPHS.values() for name in graphs.values()]
    tokenizer = {side: spec["file"] for side, spec in manifest["tokenizer"].items()}
    for name in [*names, *sorted(set(tokenizer.values()))]:
        source = export_dir / name
        if not source.is_file():
            raise UserError(f"{source} is missing: export the run again")
        (out_dir / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, out_dir / name)
    return tokenizer


def write_web(export_dir, out_dir):
    """Writes the browser folder of an export; returns its manifest.

    Args:
        export_dir: an export directory (with `manifest.json`, the ONNX graphs and
            `tokenizer/`).
        out_dir: the folder to write (created; must not exist or be empty).

    Returns:
        The web manifest (also written as `out_dir/manifest.json`).

    Raises:
        UserError: a file of the export or of the page is missing, or `out_dir` is not empty.
    """
    export_dir, out_dir = Path(export_dir), Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise UserError(f"{out_dir} exists and is not empty")
    try:
        manifest = json.loads((export_dir / MANIFEST_FILE).read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read {export_dir / MANIFEST_FILE}: {error}") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    versions = _copy_assets(out_dir)
    tokenizer = _copy_model(export_dir, out_dir, manifest)
    files = sorted(p for p in out_dir.rglob("*") if p.is_file() and p.name != MANIFEST_FILE)
    web = {
        "format": "seq2seq_attn.web/1",
        "graphs": GRAPHS,
        "tokenizer": tokenizer,
        "special_ids": manifest["special_ids"],
        "state_names": manifest["state_names"],
        "vocab_size": manifest["vocab_size"],
        "max_source_length": manifest.get("max_source_length"),
        "limits": _limits(manifest),
        "signatures": {k: manifest["signatures"][k] for k in ("encode", "decode_step")},
        "versions": {"javascript": versions, "export": manifest.get("versions", {})},
        "sizes": {p.relative_to(out_dir).as_posix(): p.stat().st_size for p in files},
        "files": {p.relative_to(out_dir).as_posix(): sha256_of(p) for p in files},
    }
    (out_dir / MANIFEST_FILE).write_text(json.dumps(web, indent=2) + "\n")
    return web
