"""How a run's model file stores its weights: float32 as trained, or float16 in half the bytes.

A `model.keras` file is a zip holding `config.json`, `metadata.json` and `model.weights.h5`,
one HDF5 dataset per variable. `store_float16` writes a copy whose float32 datasets are
float16; the config is untouched, so the model still computes in float32: Keras casts each
stored array to its variable's dtype as it loads (`keras.saving.load_model`, `Translator`,
`evaluate` and `export` need nothing new). Only the weights are rounded (to 11 significant
bits, a relative error of at most 2^-11), as in CTranslate2's `--quantization float16`
models. `seq2seq-attn compress RUN --out NEW_RUN` writes such a run, without the optimizer
state; `evaluate` then tells what the rounding cost, and `export` checks every artifact of
it for parity.

Example:

>>> from seq2seq_attn.storage import compress_run
>>> compress_run("runs/bible", "runs/bible-f16")["dtype"]  # doctest: +SKIP
'float16'
"""

import json
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from seq2seq_attn.errors import UserError
from seq2seq_attn.translator import MODEL_FILE, check_run_dir

WEIGHTS_MEMBER = "model.weights.h5"
RUN_FILE = "run.json"
FLOAT16_MAX = float(np.finfo(np.float16).max)  # 65504
NORMAL_MIN = float(np.finfo(np.float16).tiny)  # 6.1e-05, the smallest normal float16
# TensorBoard events, BackupAndRestore's state, and evaluations of the float32 weights
SKIPPED = ("logs", "backup", "eval_*.json")


def _copy_group(source, target, stats):
    """Copies HDF5 group `source` into `target`, float32 datasets as float16; counts into
    `stats` the weights cast and the largest absolute and relative rounding errors."""
    for key, value in source.attrs.items():
        target.attrs[key] = value
    for name, item in source.items():
        if hasattr(item, "items"):  # a group
            _copy_group(item, target.create_group(name), stats)
            continue
        data = item[()]
        if getattr(data, "dtype", None) == np.float32:
            peak = float(np.max(np.abs(data))) if data.size else 0.0
            if not np.isfinite(peak) or peak > FLOAT16_MAX:
                raise UserError(
                    f"weight {item.name} reaches {peak:g}, beyond float16's {FLOAT16_MAX:g}: "
                    "this model cannot be stored in float16"
                )
            rounded = data.astype(np.float16)
            error = np.abs(rounded.astype(np.float32) - data)
            stats["weights"] += data.size
            stats["max_abs_error"] = max(stats["max_abs_error"], float(error.max(initial=0)))
            normal = np.abs(data) >= NORMAL_MIN  # below it float16 is subnormal: max_abs_error
            relative = error[normal] / np.abs(data[normal])
            stats["max_rel_error"] = max(stats["max_rel_error"], float(relative.max(initial=0)))
            data = rounded
        target.create_dataset(name, data=data)
        for key, value in item.attrs.items():
            target[name].attrs[key] = value


def store_float16(source, target):
    """Writes model file `source` to `target` with its float32 weights stored as float16.

    Args:
        source: a `.keras` model file.
        target: the file to write (replaced if it exists; not `source`).

    Returns:
        A dict: `weights` (how many values were cast), `max_abs_error` (the largest
        rounding error), `max_rel_error` (the largest relative one, among weights of at least
        float16's smallest normal magnitude, 6.1e-5: at most 2^-11), `bytes_before` and
        `bytes_after` (file sizes).

    Raises:
        UserError: `source` is not a model file, or a weight does not fit float16.
    """
    import h5py

    source, target = Path(source), Path(target)
    if not zipfile.is_zipfile(source):
        raise UserError(f"{source} is not a .keras model file")
    stats = {"weights": 0, "max_abs_error": 0.0, "max_rel_error": 0.0}
    with zipfile.ZipFile(source) as archive, tempfile.TemporaryDirectory() as scratch:
        if WEIGHTS_MEMBER not in archive.namelist():
            raise UserError(f"{source} has no {WEIGHTS_MEMBER}: is it a Keras 3 model file?")
        weights_in = Path(archive.extract(WEIGHTS_MEMBER, scratch))
        weights_out = Path(scratch) / "float16.h5"
        with h5py.File(weights_in, "r") as read, h5py.File(weights_out, "w") as write:
            _copy_group(read, write, stats)
        partial = target.with_name(target.name + ".partial")
        with zipfile.ZipFile(partial, "w") as out:
            for info in archive.infolist():
                if info.filename == WEIGHTS_MEMBER:
                    out.write(weights_out, WEIGHTS_MEMBER, compress_type=info.compress_type)
                else:
                    out.writestr(info, archive.read(info.filename))
        partial.replace(target)  # nothing half-written under the real name
    return {**stats, "bytes_before": source.stat().st_size, "bytes_after": target.stat().st_size}


def _store_model(source, staging):
    """`source` saved into `staging` without its optimizer state, its weights in float16."""
    import keras

    plain = staging / "float32.keras"
    keras.saving.load_model(source, compile=False).save(plain)  # no optimizer: not compiled
    record = store_float16(plain, staging / MODEL_FILE)
    plain.unlink()
    return {**record, "bytes_before": source.stat().st_size}


def compress_run(run_dir, out_dir, force=False):
    """Copies run `run_dir` to `out_dir` with its model file's weights stored in float16.

    The new run is one to translate, evaluate, export and ship: its `model.keras` holds the
    model's weights in float16 and no optimizer state (which only training reads; `train
    --init-from` starts a new optimizer anyway). Everything else a run is used with comes
    along (tokenizer, shortlist, config, `run.json`, history); TensorBoard logs, resume
    state and the `eval_*.json` of the float32 weights do not (`evaluate` the new run).
    `run.json` gains `weights_storage`: the dtype, the rounding errors and both model file
    sizes.

    Args:
        run_dir: a training run directory.
        out_dir: the new run directory; must not exist unless `force`.
        force: replace an existing `out_dir`.

    Returns:
        The `weights_storage` record.
    """
    run_dir, out_dir = check_run_dir(run_dir), Path(out_dir)
    if run_dir.resolve() in (out_dir.resolve(), *out_dir.resolve().parents):
        raise UserError("--out must be a new directory outside the run, which is left as it is")
    if out_dir.exists() and not force:
        raise UserError(f"{out_dir} exists; pass --force to replace it")
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir} is a file, not a directory: give another --out")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", dir=out_dir.parent))
    try:
        shutil.copytree(
            run_dir,
            staging,
            ignore=shutil.ignore_patterns(MODEL_FILE, *SKIPPED),
            dirs_exist_ok=True,
        )
        record = {"dtype": "float16", **_store_model(run_dir / MODEL_FILE, staging)}
        info_path = staging / RUN_FILE
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        info_path.write_text(json.dumps({**info, "weights_storage": record}, indent=2) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return record
