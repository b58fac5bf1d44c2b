"""Every `>>>` example in the package's docstrings runs and prints what it says (doctest).

The examples run in a fresh interpreter, as a reader would paste them: one interpreter for
every module, one of its own for a module whose examples must run before TensorFlow starts
(splitting the CPU into logical devices). Examples that need a trained run or a server are
marked `# doctest: +SKIP` where they are.
"""

import json
import subprocess
import sys

import pytest

from tests.test_layers import modules

WITH_EXAMPLES = sorted(
    name for name, path in modules() if ">>>" in path.read_text() and not name.endswith("cli")
)
BEFORE_TENSORFLOW = ["seq2seq_attn.distribute"]  # each in an interpreter of its own
RUN = """
import contextlib, doctest, importlib, io, json, sys
flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
for name in sys.argv[1:]:
    report = io.StringIO()
    with contextlib.redirect_stdout(report):
        result = doctest.testmod(importlib.import_module(name), optionflags=flags)
    print(json.dumps({"name": name, "failed": result.failed, "report": report.getvalue()}))
"""


def _run(names):
    done = subprocess.run(
        [sys.executable, "-c", RUN, *names], capture_output=True, text=True, timeout=600
    )
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {r["name"]: r for r in results}, done.stderr[-2000:]


@pytest.fixture(scope="module")
def results():
    together = [name for name in WITH_EXAMPLES if name not in BEFORE_TENSORFLOW]
    found, stderr = _run(together)
    for name in BEFORE_TENSORFLOW:
        alone, alone_stderr = _run([name])
        found.update(alone)
        stderr += alone_stderr
    return found, stderr


def test_examples_are_found():
    assert "seq2seq_attn.interface" in WITH_EXAMPLES and len(WITH_EXAMPLES) >= 10
    assert set(BEFORE_TENSORFLOW) <= set(WITH_EXAMPLES)


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples_run(name, results):
    found, stderr = results
    assert name in found, stderr  # the interpreter died before this module's examples
    assert found[name]["failed"] == 0, found[name]["report"][-3000:]
