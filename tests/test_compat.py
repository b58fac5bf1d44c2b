"""Private names of TensorFlow, Keras, tf2onnx and LiteRT live in `seq2seq_attn/_compat.py`.

A scan of the production code (`seq2seq_attn/`, `export/`, `serving/`) fails on any other
use: imports of private modules (`tensorflow.python`, `keras.src`, ...) or private names,
`tf.__internal__`, attributes with a leading underscore that the package does not define
itself (read or written), methods that override a dependency's private method, and
`unittest.mock`. `tensorflow.core.protobuf` (the SavedModel file format's protos) counts as
public. `_compat`'s own check is tested on stand-in objects, and the canary test checks every
name it needs against the installed versions.
"""

import ast
import importlib
import subprocess
import sys
import types
from pathlib import Path

import pytest

from seq2seq_attn import _compat

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {"seq2seq_attn/_compat.py"}  # the one module that may use private names
DEPENDENCIES = ("tensorflow", "keras", "tf2onnx", "ai_edge_litert", "tflite_runtime")
PRIVATE_MODULES = ("tensorflow.python", "tensorflow.lite.python", "keras.src", "tf2onnx._")
TUPLE_API = {"_replace", "_asdict", "_fields", "_make"}  # namedtuple's public methods


def production_sources():
    return {
        str(path.relative_to(ROOT)): path.read_text()
        for folder in ("seq2seq_attn", "export", "serving")
        for path in sorted((ROOT / folder).rglob("*.py"))
    }


def _private(name):
    return name.startswith("_") and not name.startswith("__")


def _is_self(node):
    return isinstance(node, ast.Name) and node.id in ("self", "cls")


def own_names(trees):
    """Names the package defines: functions, classes, module names, `self._x = ...`."""
    names = set(TUPLE_API)
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                if _is_self(node.value):
                    names.add(node.attr)
    return names


def _import_uses(node):
    if isinstance(node, ast.Import):
        modules = [alias.name for alias in node.names]
        names = []
    else:
        modules, names = [node.module or ""], [alias.name for alias in node.names]
    for module in modules:
        if module.split(".")[0] == "mock" or module.startswith("unittest.mock"):
            yield f"import {module}"
        if module.split(".")[0] in DEPENDENCIES:
            if module.startswith(PRIVATE_MODULES) or any(map(_private, module.split("."))):
                yield f"import {module}"
            yield from (f"from {module} import {n}" for n in names if _private(n))
    if modules == ["unittest"] and "mock" in names:
        yield "from unittest import mock"


def private_uses(tree, own):
    """(line, what) of every private name of a dependency that `tree` uses."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found += [(node.lineno, use) for use in _import_uses(node)]
        elif isinstance(node, ast.Attribute):
            if node.attr == "__internal__" or (
                node.attr == "src" and getattr(node.value, "id", None) == "keras"
            ):
                found.append((node.lineno, f".{node.attr}"))
            elif _private(node.attr) and node.attr not in own:
                found.append((node.lineno, f".{node.attr}"))
            elif _private(node.attr) and isinstance(node.ctx, ast.Store):
                if not _is_self(node.value):  # another object's private attribute
                    found.append((node.lineno, f".{node.attr} ="))
    return sorted(found)


def test_no_private_dependency_name_outside_the_compat_module():
    sources = production_sources()
    trees = {path: ast.parse(text) for path, text in sources.items()}
    own = own_names(tree for path, tree in trees.items() if path not in ALLOWED)
    found = {
        path: uses
        for path, tree in trees.items()
        if path not in ALLOWED and (uses := private_uses(tree, own))
    }
    assert not found, f"private names outside seq2seq_attn/_compat.py (move them there): {found}"


def test_the_scan_sees_each_kind_of_private_use():
    source = """
import tensorflow as tf
from tensorflow.python.framework import convert_to_constants
from tensorflow.lite.python import lite
from keras.src import ops
from tf2onnx import optimizer, _private_helper
from unittest import mock
import keras

@tf.__internal__.tracking.no_automatic_dependency_tracking
def f(self, model, optimizer):
    self._own = 1
    model._distribute_strategy = None
    optimizer._get_optimizers = lambda: {}
    variables = optimizer._trainable_variables
    return self._own, point._replace(x=1), keras.src.ops
"""
    tree = ast.parse(source)
    lines = [line for line, _ in private_uses(tree, own_names([tree]))]
    assert lines == [3, 4, 5, 6, 7, 10, 13, 14, 15, 16]


def _dependency_classes(cls):
    return [c for c in cls.__mro__[1:] if c.__module__.split(".")[0] in DEPENDENCIES]


def private_overrides(module):
    """`Class._method` of `module` that overrides a private method of a dependency's class."""
    found = []
    for cls in vars(module).values():
        if not (isinstance(cls, type) and cls.__module__ == module.__name__):
            continue
        bases = _dependency_classes(cls)
        for name in vars(cls):
            if _private(name) and any(hasattr(base, name) for base in bases):
                found.append(f"{cls.__name__}.{name}")
    return found


def _root(node):
    while isinstance(node, ast.Attribute):
        node = node.value
    return getattr(node, "id", None)


def _modules_subclassing_dependencies():
    for path, text in production_sources().items():
        if path in ALLOWED or "class " not in text:
            continue
        tree = ast.parse(text)
        roots = {
            _root(base)
            for node in ast.walk(tree)
            if isinstance(node, ast.ClassDef)
            for base in node.bases
        }
        if roots & {"keras", "tf"}:
            folder, _, rest = path.removesuffix(".py").partition("/")
            package = {"seq2seq_attn": "seq2seq_attn"}.get(folder, f"seq2seq_attn.{folder}")
            yield f"{package}.{rest.replace('/', '.')}"


def test_no_class_overrides_a_private_method_of_a_dependency():
    modules = sorted(_modules_subclassing_dependencies())
    assert "seq2seq_attn.callbacks" in modules and "seq2seq_attn.optimizers" in modules
    found = {m: o for m in modules if (o := private_overrides(importlib.import_module(m)))}
    assert not found, f"private overrides outside seq2seq_attn/_compat.py: {found}"


def test_the_override_check_sees_a_private_override():
    import keras

    module = types.ModuleType("fake_callbacks")

    class Saving(keras.callbacks.ModelCheckpoint):
        def _save_model(self, epoch, batch, logs):
            pass

        def _ours(self):
            pass

    Saving.__module__ = module.__name__
    module.Saving = Saving
    assert private_overrides(module) == ["Saving._save_model"]


def test_a_missing_name_raises_one_error_naming_package_version_and_name():
    owner = types.SimpleNamespace(present=1)
    assert _compat.require(owner, "present", "keras", "a test") == 1
    with pytest.raises(_compat.CompatibilityError) as raised:
        _compat.require(owner, "_gone", "keras", "the test's purpose")
    message = str(raised.value)
    assert f"keras {_compat.installed_version('keras')} has no `SimpleNamespace._gone`" in message
    assert "the test's purpose" in message and _compat.CHECKED["keras"] in message
    with pytest.raises(_compat.CompatibilityError, match="keras .* has no `keras.optimizers.Gone`"):
        _compat.require(importlib.import_module("keras.optimizers"), "Gone", "keras", "a test")
    assert _compat.installed_version("no-such-package-here") == "not installed"


def test_a_missing_module_raises_the_same_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow.lite.python.gone", None)
    with pytest.raises(_compat.CompatibilityError, match="has no `tensorflow.lite.python.gone`"):
        _compat.require_module("tensorflow.lite.python.gone", "tensorflow", "a test")
    assert _compat.require_module("json", "python", "a test").dumps([]) == "[]"


@pytest.mark.canary
def test_a_missing_tflite_converter_name_stops_the_conversion(monkeypatch):
    from tensorflow.lite.python import lite

    name = "_convert_from_saved_model"
    owner = next(c for c in lite.TFLiteSavedModelConverterV2.__mro__ if name in vars(c))
    _compat._tflite.cache_clear()
    monkeypatch.delattr(owner, name)
    try:
        with pytest.raises(_compat.CompatibilityError, match="_convert_from_saved_model"):
            _compat.tflite_converter("unused", ["encode"])
    finally:
        _compat._tflite.cache_clear()


def test_importing_compat_imports_no_tensorflow():
    """The serving-only install has no TensorFlow: `_compat` imports it only when used."""
    code = "import sys, seq2seq_attn._compat; print('tensorflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr[-2000:]


@pytest.mark.canary
def test_every_private_name_compat_needs_exists_in_the_installed_versions():
    """Fails, naming package, version and name, when an upgrade moved one of them."""
    import keras
    import numpy as np

    assert _compat.check_all() == ["tensorflow", "tflite", "keras"]
    for package, version in _compat.CHECKED.items():
        print(f"{package}: checked on {version}, installed {_compat.installed_version(package)}")
    # The instance attributes: Adam's slots and a model's creation strategy.
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    optimizer = keras.optimizers.Adam(clipnorm=1.0)
    model.compile(optimizer, loss="mse")
    model.train_on_batch(np.ones((4, 3), "float32"), np.zeros((4, 2), "float32"))
    kernel = model.trainable_weights[0]
    momentum, velocity = _compat.adam_slots(optimizer, kernel)
    assert momentum.shape == velocity.shape == kernel.shape
    clipped = _compat.clip_gradients(optimizer, [np.full((3, 2), 10.0, "float32")])
    np.testing.assert_allclose(np.linalg.norm(np.asarray(clipped[0])), 1.0, rtol=1e-6)
    _compat.forget_distribute_strategy(model)
