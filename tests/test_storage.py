"""seq2seq_attn/storage.py: model files with float16 weights, and `seq2seq-attn compress`."""

import json
import shutil
import zipfile

import keras
import numpy as np
import pytest

from seq2seq_attn import Seq2SeqAttention
from seq2seq_attn.errors import UserError
from seq2seq_attn.storage import WEIGHTS_MEMBER, compress_run, store_float16


def _model_file(path, scale=1.0):
    """A small built model saved to `path`, its weights multiplied by `scale`."""
    keras.utils.set_random_seed(0)
    model = Seq2SeqAttention(300, 280, embedding_dim=16, units=24, attention_units=20)
    model.build()
    model.set_weights([w * scale for w in model.get_weights()])
    model.save(path)
    return model


def _ids(batch=3, length=7, vocab=280):
    rng = np.random.default_rng(1)
    return rng.integers(4, vocab, size=(batch, length)).astype("int32")


def test_float16_file_loads_the_rounded_weights_into_float32_variables(tmp_path):
    model = _model_file(tmp_path / "model.keras")
    stats = store_float16(tmp_path / "model.keras", tmp_path / "half.keras")
    loaded = keras.saving.load_model(tmp_path / "half.keras", compile=False)

    assert all(v.dtype == "float32" for v in loaded.weights)
    for original, stored in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(stored, original.astype(np.float16).astype(np.float32))
    assert stats["weights"] == model.count_params()
    assert 0 < stats["max_rel_error"] <= 2.0**-11
    assert 0 < stats["max_abs_error"] < 1e-3
    assert stats["bytes_after"] < 0.6 * stats["bytes_before"]
    with (
        zipfile.ZipFile(tmp_path / "model.keras") as a,
        zipfile.ZipFile(tmp_path / "half.keras") as b,
    ):
        assert a.read("config.json") == b.read("config.json")
        assert WEIGHTS_MEMBER in b.namelist()

    source, target = _ids(), _ids(length=5, vocab=260)
    before = model((source, target), training=False)  # (3, 5, 280) logits
    after = loaded((source, target), training=False)
    difference = float(np.max(np.abs(np.asarray(before) - np.asarray(after))))
    assert 0 < difference < 1e-2


def test_a_weight_beyond_float16_is_refused_and_nothing_is_written(tmp_path):
    _model_file(tmp_path / "model.keras", scale=1e6)
    with pytest.raises(UserError, match="beyond float16's 65504"):
        store_float16(tmp_path / "model.keras", tmp_path / "half.keras")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]


def test_not_a_model_file(tmp_path):
    (tmp_path / "model.keras").write_text("not a zip")
    with pytest.raises(UserError, match="not a .keras model file"):
        store_float16(tmp_path / "model.keras", tmp_path / "half.keras")


def test_compressed_run_translates_as_the_run_and_passes_export_parity(tiny_run, tmp_path):
    from seq2seq_attn.export.main import export_run
    from seq2seq_attn.translator import Translator

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "eval_test.json").write_text("{}")  # scores of the float32 weights: not copied
    out = tmp_path / "f16"
    record = compress_run(run, out)

    kept = {p.relative_to(run) for p in run.rglob("*") if p.is_file()}
    copied = {p.relative_to(out) for p in out.rglob("*") if p.is_file()}
    skipped = [p for p in kept if p.parts[0] in ("logs", "backup") or p.match("eval_*.json")]
    assert copied == kept - set(skipped)
    assert {"logs", "eval_test.json"} <= {p.parts[0] for p in skipped}
    assert json.loads((out / "run.json").read_text())["weights_storage"] == record
    assert record["dtype"] == "float16" and record["bytes_after"] < 0.6 * record["bytes_before"]
    assert record["bytes_before"] == (run / "model.keras").stat().st_size
    with zipfile.ZipFile(out / "model.keras") as archive:
        assert b'"optimizer"' not in archive.read("config.json")
        assert b"optimizer" not in archive.read(WEIGHTS_MEMBER)  # no group of that name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f16", "run"]  # no staging left

    sources = ["Saturday, 14 March 2015", "3 avril 1987", "July 4, 1976", "1 ene 2000", "9/12/31"]
    expected = [h.text for h in Translator.load(tiny_run).translate(sources)]
    assert [h.text for h in Translator.load(out).translate(sources)] == expected
    report = export_run(out, tmp_path / "exported", samples=12, echo=lambda *_: None)
    assert report["artifacts"]  # export_run raises ParityError where an artifact differs


def test_compress_refuses_what_would_lose_something(tiny_run, tmp_path, monkeypatch):
    from seq2seq_attn import storage

    for inside in (tiny_run, tiny_run / "f16"):
        with pytest.raises(UserError, match="must be a new directory outside the run"):
            compress_run(tiny_run, inside)
    assert not (tiny_run / "f16").exists()
    with pytest.raises(UserError, match="does not exist"):
        compress_run(tmp_path / "no-run", tmp_path / "out")

    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="exists; pass --force"):
        compress_run(tiny_run, out)

    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="is a file, not a directory"):
        compress_run(tiny_run, tmp_path / "file", force=True)
    (tmp_path / "file").unlink()

    def fail(source, target):
        raise UserError("injected")

    monkeypatch.setattr(storage, "store_float16", fail)
    with pytest.raises(UserError, match="injected"):
        compress_run(tiny_run, out, force=True)
    assert (out / "keep.txt").read_text() == "mine"  # a failed --force replaces nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_cli_compress_prints_the_sizes_and_errors_without_a_traceback(tiny_run, tmp_path, capsys):
    from seq2seq_attn.cli import main

    out = tmp_path / "f16"
    assert main(["compress", str(tiny_run), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "weights in float16: model file" in printed and f"run written to {out}" in printed
    assert main(["compress", str(tiny_run), "--out", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["compress", str(tiny_run), "--out", str(out), "--force"]) == 0
