"""Tracing: the package's graph functions skip AutoGraph (checked on the source).

The model's loops are explicit `tf.while_loop`s, so AutoGraph has nothing to convert; left
on, it rewrites the package's source (and tensorflow-text's) at every first trace: tracing
greedy `generate` of the tiny model took 1.5 s with it and 0.3 s without, and
`seq2seq-attn translate` takes 0.71x as long (README, "Start-up"). Every `tf.function` is
therefore created with `autograph=False`, and every `tf.data` function is wrapped in
`do_not_convert`; the tests that trace them (export, parity, translate, training) show they
need no conversion. The entry points users trace themselves (`generate`, `encode`,
`decode_step`, `teacher_forced`, the graph tokenizers) are marked `do_not_convert`, so a user's
own `tf.function`, AutoGraph on, does not convert them either (checked through AutoGraph's own
log of the functions it converts, `tf.autograph.set_verbosity`).
"""

import ast
import logging
import os
from pathlib import Path

import pytest
import tensorflow as tf

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(
    path
    for folder in ("seq2seq_attn", "export", "serving")
    for path in (ROOT / folder).rglob("*.py")
)


def _is_tf_function(node):
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "function"
        and isinstance(node.value, ast.Name)
        and node.value.id == "tf"
    )


def _autograph_off(call):
    return any(
        k.arg == "autograph" and isinstance(k.value, ast.Constant) and k.value.value is False
        for k in call.keywords
    )


def _named(node, name):
    target = node.func if isinstance(node, ast.Call) else node
    return getattr(target, "id", getattr(target, "attr", None)) == name


def tf_functions_with_autograph(tree):
    """Line numbers of `tf.function` uses that leave AutoGraph on."""
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    lines = []
    for node in ast.walk(tree):
        if not _is_tf_function(node):
            continue
        call = parents.get(node)
        # tf.function(fn, ..., autograph=False) or functools.partial(tf.function, autograph=False)
        if not (isinstance(call, ast.Call) and _autograph_off(call)):
            lines.append(node.lineno)
    return lines


def dataset_functions_converted(tree):
    """Line numbers of `.map(fn)` / `.filter(fn)` whose `fn` is not `do_not_convert`ed."""
    wrapped = {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
        and any(_named(d, "do_not_convert") for d in node.decorator_list)
    }
    lines = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("map", "filter")
            and node.args
        ):
            continue
        fn = node.args[0]
        if not (_named(fn, "do_not_convert") or (isinstance(fn, ast.Name) and fn.id in wrapped)):
            lines.append(node.lineno)
    return lines


def test_every_graph_function_skips_autograph():
    found = {}
    for path in SOURCES:
        text = path.read_text()
        if "tensorflow" not in text:
            continue
        tree = ast.parse(text)
        lines = tf_functions_with_autograph(tree) + dataset_functions_converted(tree)
        if lines:
            found[str(path.relative_to(ROOT))] = lines
    assert not found, f"AutoGraph left on (add autograph=False / do_not_convert): {found}"


def test_the_check_sees_autograph_left_on():
    source = """
import tensorflow as tf
from tensorflow.autograph.experimental import do_not_convert

a = tf.function(f)  # on
b = tf.function(f, autograph=False)
c = functools.partial(tf.function, autograph=False)
@tf.function  # on
def d(x):
    return x
ds = ds.map(lambda x: x)  # converted
ds = ds.map(do_not_convert(lambda x: x))
@do_not_convert
def keep(x):
    return x
ds = ds.filter(keep).map(g)  # g converted
"""
    tree = ast.parse(source)
    assert sorted(tf_functions_with_autograph(tree)) == [5, 8]
    assert sorted(dataset_functions_converted(tree)) == [11, 16]


# What AutoGraph logs, at verbosity 1 and 3, for each function it converts or takes from its
# cache of converted functions (`tensorflow/python/autograph/pyct/transpiler.py`).
CONVERSION_LOGS = ("%s is not cached for subkey %s", "Cache hit for %s subkey %s: %s")


class _Conversions(logging.Handler):
    def __init__(self):
        super().__init__()
        self.modules = []

    def emit(self, record):
        if record.msg in CONVERSION_LOGS:
            self.modules.append(getattr(record.args[0], "__module__", None) or "?")


@pytest.fixture
def converted_modules():
    """The modules of every function AutoGraph converts while the fixture is active, read from
    AutoGraph's own log (`tf.autograph.set_verbosity`, the "tensorflow" logger)."""
    logger, spy = logging.getLogger("tensorflow"), _Conversions()
    level = logger.level
    logger.addHandler(spy)
    logger.setLevel(logging.INFO)
    tf.autograph.set_verbosity(3)
    try:
        yield spy.modules
    finally:
        tf.autograph.set_verbosity(int(os.environ.get("AUTOGRAPH_VERBOSITY", "0")))
        logger.setLevel(level)
        logger.removeHandler(spy)


def test_a_users_own_tf_function_does_not_convert_the_package(tiny_run, converted_modules):
    """`tf.function(model.generate)` with AutoGraph on (the default) runs the package's entry
    points unconverted: `generate`, `encode`, `decode_step`, `teacher_forced` and the graph
    tokenizer's `tokenize` / `detokenize` are marked `do_not_convert`."""
    from seq2seq_attn.graph_tokenizer import GraphTokenizerPair
    from seq2seq_attn.translator import Translator

    translator = Translator.load(tiny_run)
    model, pair = translator.model, GraphTokenizerPair(translator.tokenizers)
    ids = tf.TensorSpec([None, None], tf.int32)

    def user_code(x):  # converted: it is the user's
        return x

    traced = [
        tf.function(lambda s, b=b: user_code(model.generate(s, beam_width=b)["tokens"]))
        .get_concrete_function(ids)
        .structured_outputs
        for b in (1, 3)
    ]
    tf.function(lambda s, t: model.teacher_forced(s, t)[0]).get_concrete_function(ids, ids)
    tf.function(lambda t: pair.target.detokenize(pair.source.tokenize(t))).get_concrete_function(
        tf.TensorSpec([None], tf.string)
    )
    assert all(out.dtype == tf.int32 for out in traced)
    assert __name__ in converted_modules  # the log shows conversions (the user's own code)
    ours = [m for m in converted_modules if m.startswith(("seq2seq_attn", "tensorflow_text"))]
    assert ours == []
