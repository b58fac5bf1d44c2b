"""The documentation: the site builds strictly, the README stays a front door, no link is broken.

`mkdocs build --strict` fails on a broken link between pages, a page missing from the nav's
files, a snippet that cannot be included (`--8<--`) and an API docstring griffe cannot parse,
so the site cannot drift from the code it documents.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_MAX_LINES = 200
# [text](target) and ![alt](target); the target ends at whitespace or ")"
MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")

pytestmark = pytest.mark.unit


class _ConfigLoader(yaml.SafeLoader):
    """mkdocs.yml's YAML, with `!!python/name:...` tags read as plain strings."""


_ConfigLoader.add_multi_constructor(
    "tag:yaml.org,2002:python/name:", lambda loader, suffix, node: suffix
)


def nav_pages(nav):
    """Every page path named in a MkDocs nav (nested lists of {title: page or list})."""
    for item in nav:
        entries = item.values() if isinstance(item, dict) else [item]
        for entry in entries:
            if isinstance(entry, list):
                yield from nav_pages(entry)
            elif "://" not in entry:
                yield entry


def relative_links(markdown):
    """The targets of a markdown text's links and images that are files of this repository."""
    for target in MARKDOWN_LINK.findall(markdown):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL (http:, mailto:) or an anchor in the same page
        yield target.split("#", 1)[0]


def test_site_builds_strictly(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    command = [sys.executable, "-m", "mkdocs", "build", "--strict"]
    command += ["-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}{result.stderr}"
    assert (tmp_path / "site" / "architecture" / "index.html").is_file()
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert 'id="seq2seq_attn.model.Seq2SeqAttention"' in api  # mkdocstrings rendered the API


def test_readme_is_a_front_door():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"
    first_screen = "\n".join(lines[:40])
    for command in ("python3 tasks.py demo", "python3 tasks.py test"):
        assert command in first_screen, f"{command!r} not in the README's first 40 lines"


def test_readme_links_point_at_files():
    targets = list(relative_links(README.read_text()))
    assert targets, "no relative link found in README.md"
    missing = [target for target in targets if not (ROOT / target).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_relative_links_finds_files_and_skips_urls():
    text = '[a](docs/a.md#x) ![b](docs/b.png) [c](https://x.org/c.md) [d](#top) [e](d/e.md "t")'
    assert list(relative_links(text)) == ["docs/a.md", "docs/b.png", "d/e.md"]


def test_every_nav_page_exists():
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_ConfigLoader)
    pages = list(nav_pages(config["nav"]))
    assert "index.md" in pages and "api.md" in pages and "architecture.md" in pages
    missing = [page for page in pages if not (ROOT / "docs" / page).is_file()]
    assert not missing, f"mkdocs.yml's nav names pages that do not exist: {missing}"


def test_architecture_page_names_every_module():
    """Each module's one job is in the table of docs/architecture.md, new modules included."""
    page = (ROOT / "docs" / "architecture.md").read_text()
    modules = [
        path.relative_to(ROOT).as_posix()
        for folder in ("seq2seq_attn", "export", "serving")
        for path in sorted((ROOT / folder).rglob("*.py"))
    ]
    assert len(modules) > 40
    missing = [module for module in modules if f"`{module}`" not in page]
    assert not missing, f"docs/architecture.md's module table lacks {missing}"
