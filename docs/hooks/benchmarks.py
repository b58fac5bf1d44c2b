"""MkDocs hook: the benchmark tables of docs/benchmarks.md, rendered from the result files.

Each line `<!-- benchmark: NAME -->` of docs/benchmarks.md becomes the tables of
`benchmarks/results/NAME.json`, rendered by `benchmarks/report.py` (the same code that writes
README's headline block), so the page, the README and the results cannot disagree. A marker
naming a benchmark without a result file fails the build.
"""

import importlib
import importlib.util
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = "benchmarks.md"
MARKER = re.compile(r"^<!-- benchmark: (\w+) -->[ \t]*$", re.MULTILINE)


def benchmarks_report():
    """`benchmarks.report` of this checkout (the package is loaded from its folder by path:
    the repository root need not be on `sys.path` when `mkdocs` runs)."""
    package = sys.modules.get("benchmarks")
    if package is None or Path(package.__file__).resolve().parent != ROOT / "benchmarks":
        init = ROOT / "benchmarks" / "__init__.py"
        spec = importlib.util.spec_from_file_location(
            "benchmarks", init, submodule_search_locations=[str(init.parent)]
        )
        package = importlib.util.module_from_spec(spec)
        sys.modules["benchmarks"] = package
        spec.loader.exec_module(package)
    return importlib.import_module("benchmarks.report")


def render_markers(markdown):
    """`markdown` with every benchmark marker replaced by that benchmark's tables."""
    report = benchmarks_report()

    def tables(match):
        return report.render(report.load(match.group(1)), with_plots=False)

    return MARKER.sub(tables, markdown)


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri != PAGE:
        return markdown
    return render_markers(markdown)
