"""Every `>>>` example in the package's docstrings runs and prints what it says (doctest).

Each module's examples run in a fresh interpreter, as a reader would paste them (some, like
splitting the CPU into logical devices, only work before TensorFlow starts). Examples that
need a trained run or a server are marked `# doctest: +SKIP` where they are.
"""

import subprocess
import sys

import pytest

from tests.test_layers import modules

WITH_EXAMPLES = sorted(
    name for name, path in modules() if ">>>" in path.read_text() and not name.endswith("cli")
)
RUN = """
import doctest, importlib, sys
module = importlib.import_module(sys.argv[1])
flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
result = doctest.testmod(module, optionflags=flags)
print(f"{result.attempted} examples")
sys.exit(1 if result.failed else 0)  # 0 attempted: every example is +SKIP
"""


def test_examples_are_found():
    assert "seq2seq_attn.interface" in WITH_EXAMPLES and len(WITH_EXAMPLES) >= 10


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples_run(name):
    done = subprocess.run(
        [sys.executable, "-c", RUN, name], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]
