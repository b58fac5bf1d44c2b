"""Every private name of TensorFlow, Keras, tf2onnx and LiteRT that seq2seq_attn uses.

A private name can move in any release. Each one lives here, in the section of its package,
with the reason no public entry point does the job, the upstream issue, and the versions it
was checked on (`CHECKED`). A section checks every name it needs the first time it is used,
before any is used, and a missing one raises `CompatibilityError` naming the package, its
installed version and the name (the way pandas' `compat/` and scikit-learn's
`utils/fixes.py` guard theirs). The sections import their package only when first used: the
serving-only install has no TensorFlow and never reaches them.

tests/test_compat.py fails on a private name of these packages used anywhere else in
`seq2seq_attn/`, `export/` or `serving/`, and its canary test checks every name here against
the installed versions.
"""

import functools
import importlib
import importlib.metadata
from pathlib import Path

# The versions each section was checked on (the `.venv` of the repository, 2026-12-06).
CHECKED = {"tensorflow": "2.21.0", "keras": "3.15.1", "tf2onnx": "1.17.0"}
_MISSING = object()


class CompatibilityError(ImportError):
    """An installed dependency lacks a private name seq2seq_attn relies on."""


def installed_version(package):
    """The installed version of distribution `package`, or "not installed"."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _describe(owner):
    if isinstance(owner, type):
        return f"{owner.__module__}.{owner.__qualname__}"
    return getattr(owner, "__name__", type(owner).__name__)


def _error(package, name, purpose):
    checked = CHECKED.get(package, "no version")
    return CompatibilityError(
        f"{package} {installed_version(package)} has no `{name}`, which seq2seq_attn uses "
        f"for {purpose} (checked on {package} {checked}): install {package}=={checked} or "
        "update seq2seq_attn/_compat.py"
    )


def require(owner, name, package, purpose):
    """`owner.name`, or a `CompatibilityError` naming `package`, its version and the name.

    Args:
        owner: a module, class or object.
        name: the attribute `owner` must have.
        package: the distribution that provides `owner` ("tensorflow", "keras", ...).
        purpose: what seq2seq_attn needs the name for, for the message.
    """
    value = getattr(owner, name, _MISSING)
    if value is _MISSING:
        raise _error(package, f"{_describe(owner)}.{name}", purpose)
    return value


def require_module(module, package, purpose):
    """The module named `module`, or a `CompatibilityError` as `require` raises it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if not module.startswith(error.name or "\0"):
            raise  # a dependency of the module is missing, not the module
        raise _error(package, module, purpose) from None


# ---------------------------------------------------------------------------------------
# TensorFlow
# ---------------------------------------------------------------------------------------
# `convert_variables_to_constants_v2` folds a ConcreteFunction's variables into constants.
# TensorFlow 2 has no public way to freeze a function (tensorflow/tensorflow#27614, #48639:
# `tf.compat.v1.graph_util` needs a session); LiteRT cannot read resource variables inside
# WHILE bodies (READ_VARIABLE fails at invoke), so the TFLite graphs are converted from
# frozen functions. Checked on TensorFlow 2.21.0.
_FREEZE = "freezing the TFLite step graphs"


@functools.cache
def _tensorflow():
    module = "tensorflow.python.framework.convert_to_constants"
    module = require_module(module, "tensorflow", _FREEZE)
    return require(module, "convert_variables_to_constants_v2", "tensorflow", _FREEZE)


def freeze(concrete_function):
    """`concrete_function` with its variables folded into constants: a new ConcreteFunction."""
    return _tensorflow()(concrete_function)


# ---------------------------------------------------------------------------------------
# LiteRT's converter (`tensorflow.lite.python.lite`, shipped in the tensorflow package)
# ---------------------------------------------------------------------------------------
# `tf.lite.TFLiteConverter.from_saved_model` loads the whole SavedModel in Python
# (`tf.saved_model.load`) only to look its signatures up, and its `convert()` loads it twice
# more (a TF1 graph for statistics, `tf.saved_model.load` for debug info,
# tensorflow/tensorflow#122598, fixed by #123818 after 2.21) before MLIR reads the SavedModel
# from disk, which is the conversion itself. Each Python load turns the frozen weights into
# graph constants: at the benchmark size (175 MB frozen) the public converter peaked at
# 3.26 GB, this one at 2.29 GB, byte-identical flatbuffers (docs/decisions/0006).
# `from_concrete_functions` with several functions saves them to a temporary SavedModel and
# converts that with the same loads: 4.39 GB from the loaded model, against 2.50 GB for
# `save_frozen_steps` and this converter (fresh processes, 2026-12-06).
# `DiskConverter` is the class `from_saved_model` returns, with the statistics graph read as
# a plain proto and no debug-info load. Private names: the class itself, the class-level
# `_set_original_model_type` every public factory calls (it fills the flatbuffer's
# conversion metadata), `_convert_and_export_metrics` (the metrics and metadata wrapper of
# every `convert`) and `_convert_from_saved_model` (the conversion from disk).
# Checked on TensorFlow 2.21.0.
_TFLITE = "the TFLite conversion without Python loads of the SavedModel"


@functools.cache
def _tflite():
    def need(owner, name):
        return require(owner, name, "tensorflow", _TFLITE)

    lite = require_module("tensorflow.lite.python.lite", "tensorflow", _TFLITE)
    metadata = "tensorflow.lite.python.conversion_metadata_schema_py_generated"
    metadata = require_module(metadata, "tensorflow", _TFLITE)
    base = need(lite, "TFLiteSavedModelConverterV2")
    set_model_type = need(need(lite, "TFLiteConverterBase"), "_set_original_model_type")
    saved_model = need(need(metadata, "ModelType"), "TF_SAVED_MODEL")
    for name in ("_convert_and_export_metrics", "_convert_from_saved_model"):
        need(base, name)
    from tensorflow.core.protobuf import saved_model_pb2

    class DiskConverter(base):
        """`TFLiteSavedModelConverterV2` whose `convert()` loads nothing in Python."""

        def __init__(self, saved_model_dir, signature_keys):
            set_model_type(saved_model)  # read by the constructor, as in `from_saved_model`
            super().__init__(saved_model_dir, {"serve"}, signature_keys)

        def convert(self):
            return self._convert_and_export_metrics(DiskConverter._convert_from_disk)

        def _convert_from_disk(self):
            proto = saved_model_pb2.SavedModel()
            proto.ParseFromString((Path(self.saved_model_dir) / "saved_model.pb").read_bytes())
            # The graph is read for statistics only; debug info stays None.
            return self._convert_from_saved_model(proto.meta_graphs[0].graph_def)

    return DiskConverter


def tflite_converter(saved_model_dir, signature_keys):
    """A TFLite converter of the SavedModel at `saved_model_dir` that reads it only from disk.

    It takes the public converter's settings (`target_spec`, `optimizations`, ...) and
    writes the same flatbuffer as `tf.lite.TFLiteConverter.from_saved_model`.
    """
    return _tflite()(str(saved_model_dir), list(signature_keys))


# ---------------------------------------------------------------------------------------
# Keras
# ---------------------------------------------------------------------------------------
# Checked on Keras 3.15.1 (TensorFlow backend).
# - `Optimizer._clip_gradients`: `distribute.CrossReplicaAdam` clips the gradient of the
#   global batch with Keras' own clipping (clipnorm / global_clipnorm / clipvalue), so that
#   training under a strategy matches one device to the bit; there is no public clipping
#   function taking an optimizer's settings.
# - `Optimizer._get_variable_index`, `Adam._momentums`, `Adam._velocities`: Adam's slots of a
#   variable, which `optimizers.FusedAdam` hands to TensorFlow's fused `ResourceApplyAdam`.
# - `Model._distribute_strategy`: `distribute.forget_creation_strategy` clears it to skip
#   `fit`'s build peek (keras-team/keras#20585; guarded by `distribute.WORKAROUND_KERAS`).
# - `BaseOptimizer._update_model_variables_moving_average` (overridden by
#   `MovingAverageHook`), `._model_variables_moving_average` and `._iterations`: Keras'
#   `use_ema` averages with a constant `ema_momentum` from the first update (and, with
#   gradient accumulation, at every micro-batch); `optimizers.WarmUpAverage` replaces that
#   one step with TensorFlow's warm-up, min(decay, (1 + t) / (10 + t)), keeping the average
#   in Keras' own variables, where `finalize_variable_values`, checkpoints and
#   `callbacks.averaged_weights` find it. Keras has no public hook or decay schedule for it
#   (`ema_momentum` is a float; no upstream issue found asking for `num_updates`' warm-up).
#   Called from `_backend_apply_gradients` after each `apply` (keras/src/optimizers/
#   base_optimizer.py), before `_iterations` (micro-batches) is incremented.
# Instance attributes exist only once the object is built, so they are checked at use.
_CLIP = "clipping the global batch's gradient (distribute.CrossReplicaAdam)"
_FUSED = "the fused Adam update (optimizers.FusedAdam)"
_PEEK = "the keras-team/keras#20585 workaround (distribute.forget_creation_strategy)"
_EMA = "the moving average with warm-up (optimizers.WarmUpAverage)"
_EMA_STEP = "_update_model_variables_moving_average"


@functools.cache
def _keras():
    import keras

    optimizer = keras.optimizers.Optimizer
    require(optimizer, "_clip_gradients", "keras", _CLIP)
    require(optimizer, "_get_variable_index", "keras", _FUSED)
    require(optimizer, _EMA_STEP, "keras", _EMA)
    return keras


def clip_gradients(optimizer, grads):
    """`grads` clipped by `optimizer`'s clipnorm, global_clipnorm or clipvalue, as Keras does."""
    _keras()
    return optimizer._clip_gradients(grads)


def adam_slots(optimizer, variable):
    """The (first moment, second moment) Keras variables `optimizer` keeps for `variable`."""
    _keras()
    momentums = require(optimizer, "_momentums", "keras", _FUSED)
    velocities = require(optimizer, "_velocities", "keras", _FUSED)
    index = optimizer._get_variable_index(variable)
    return momentums[index], velocities[index]


def moving_averages(optimizer):
    """The averages (Keras variables, None where not averaged) of a `use_ema` optimizer."""
    _keras()
    return require(optimizer, "_model_variables_moving_average", "keras", _EMA)


class MovingAverageHook:
    """Mixin for a Keras optimizer: its `use_ema` step calls `self.update_moving_averages`.

    `update_moving_averages(variables, averages, updates, is_update)` gets the trainable
    variables, their averages (`moving_averages`), the number of optimizer updates done
    before this one (`iterations`; 0 at the first update) and, with gradient accumulation, a
    boolean tensor that is true when this `apply` updated the weights (else None).
    """

    def _update_model_variables_moving_average(self, trainable_variables):
        _keras()
        if not self.use_ema:
            return
        is_update = None
        if self.gradient_accumulation_steps:
            micro_batches = require(self, "_iterations", "keras", _EMA)
            is_update = (micro_batches + 1) % self.gradient_accumulation_steps == 0
        averages = moving_averages(self)
        self.update_moving_averages(trainable_variables, averages, self.iterations, is_update)


def forget_distribute_strategy(model):
    """Makes `model` forget the strategy it was created under (see `_PEEK`)."""
    _keras()
    require(model, "_distribute_strategy", "keras", _PEEK)
    model._distribute_strategy = None


# ---------------------------------------------------------------------------------------
# tf2onnx
# ---------------------------------------------------------------------------------------
# No private name. `export.convert.to_onnx` used to swap `tf2onnx.optimizer._get_optimizers`
# to run 3 of tf2onnx's 12 ONNX passes, because `tf2onnx.convert.from_function` takes no list
# of passes; it now calls the public steps `from_function` is made of
# (`tf_loader.from_function`, `tfonnx.process_tf_graph`, `optimizer.optimize_graph(...,
# optimizers=...)`), checked on tf2onnx 1.17.0.

# ---------------------------------------------------------------------------------------
# LiteRT runtime (ai-edge-litert)
# ---------------------------------------------------------------------------------------
# No private name: `ai_edge_litert.interpreter.Interpreter` only.


def check_tensorflow():
    """Checks the TensorFlow and TFLite converter sections now (it imports TensorFlow)."""
    _tensorflow()
    _tflite()


def check_keras():
    """Checks the Keras section now (it imports Keras)."""
    _keras()


def check_all():
    """Checks every section whose package is installed; returns the names of those checked."""
    checked = []
    sections = (("tensorflow", _tensorflow), ("tensorflow", _tflite), ("keras", _keras))
    for package, section in sections:
        if installed_version(package) != "not installed":
            section()
            checked.append(section.__name__.lstrip("_"))
    return checked
