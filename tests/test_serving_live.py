"""The server on a real loopback socket: the web page in headless Chromium, and the load script.

The browser test needs Debian's `chromium` package (/usr/bin/chromium) and the Python
`playwright` package; it never downloads a browser (no `playwright install`).
"""

import importlib
import json
import os
import re

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _load_test_module():
    return importlib.import_module("benchmarks.load_test")


@pytest.fixture(scope="module")
def load_test():
    return _load_test_module()


@pytest.fixture(scope="module")
def server(tiny_export, load_test):
    with load_test.LocalServer(tiny_export[0], batch_timeout_ms=2) as running:
        yield running


def require_browser():
    """playwright's sync API; CI (which installs Chromium in .ci/run) fails instead of skipping."""
    missing = None
    try:
        from playwright import sync_api
    except ImportError:
        missing = "playwright is not installed (pip install -e .[test])"
    if missing is None and not os.access(CHROMIUM, os.X_OK):
        missing = f"{CHROMIUM} not installed (apt-get install chromium)"
    if missing and os.environ.get("CI"):
        pytest.fail(missing)
    if missing:
        pytest.skip(missing)
    return sync_api


def _post(url, body):
    import httpx

    return httpx.post(url, json=body, timeout=10).json()


@pytest.mark.browser
def test_page_in_headless_chromium(server):
    sync_api = require_browser()
    text = "tuesday 4 june 2001"
    seen = []
    console_errors = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60000)
        try:
            page = browser.new_page()
            page.on("request", lambda request: seen.append(request.url))
            page.on(
                "console", lambda m: console_errors.append(m.text) if m.type == "error" else None
            )
            page.goto(server.url + "/", timeout=30000)
            # Locator assertions run in Playwright's own world: a string predicate for
            # wait_for_function needs eval, which the page's CSP (rightly) refuses.
            sync_api.expect(page.locator("#model-name")).not_to_have_text("…", timeout=10000)
            beam = int(page.input_value("#beam"))
            page.fill("#source", text)
            page.click("#submit")
            page.wait_for_selector("#result:not([hidden])", timeout=20000)
            translation = page.text_content("#translation")
            header = page.locator("#heatmap thead th").count()
            rows = page.locator("#heatmap tbody tr")
            row_count = rows.count()
            cells = [rows.nth(i).locator("td").count() for i in range(row_count)]
            row_labels = page.locator("#heatmap tbody th").all_text_contents()
            weights = page.eval_on_selector_all(
                "#heatmap td", "cells => cells.map(c => Number(c.dataset.weight))"
            )
            status = page.text_content("#status")
        finally:
            browser.close()
    expected = _post(
        server.url + "/translate", {"text": text, "beam_width": beam, "return_attention": True}
    )
    target, source = expected["target_tokens"][0], expected["source_tokens"][0]
    assert translation == expected["translations"][0]
    assert status == "Done."
    assert row_count == len(target) and row_labels == target
    assert cells == [len(source)] * len(target)
    assert header == len(source) + 1  # a corner cell and one per source token
    flat = [w for row in expected["attention"][0] for w in row]
    assert weights == pytest.approx(flat, abs=1e-9)
    assert all(url.startswith(server.url) for url in seen), seen  # no other host is asked
    assert not console_errors


@pytest.mark.browser
def test_page_shows_errors(server):
    sync_api = require_browser()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60000)
        try:
            page = browser.new_page()
            page.goto(server.url + "/", timeout=30000)
            page.fill("#source", "   ")  # passes `required`, but the server refuses it
            page.click("#submit")
            sync_api.expect(page.locator("#status")).to_have_text(
                re.compile(r"^Error"), timeout=10000
            )
            status = page.text_content("#status")
        finally:
            browser.close()
    assert status == "Error 422: text 0 is empty"


def test_load_script(server, load_test, tmp_path):
    out = tmp_path / "load.json"
    argv = ["--url", server.url, "--levels", "1,4", "--requests", "12", "--max-words", "8"]
    code = load_test.main([*argv, "--out", str(out)])
    report = json.loads(out.read_text())["figures"]
    (configuration,) = report["configurations"]
    levels = configuration["levels"]
    assert [level["concurrency"] for level in levels] == [1, 4]
    for level in levels:
        assert level["errors"] == 0 and level["error_kinds"] == {}, level
        assert level["ok"] == 12 and level["statuses"] == {"200": 12}
        assert level["texts_ok"] == report["mix"]["texts"]
        assert 0 < level["throughput_rps"] <= level["throughput_texts_per_s"]
        latency = level["latency_ms"]
        assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
        assert level["ready_after"] == 200
    assert code == 0
    assert len(report["load_average_before"]) == len(report["load_average_after"]) == 3


def test_load_script_starts_its_own_server(tiny_export, load_test, tmp_path):
    """--export-dir: `seq2seq-attn serve` in a subprocess, stopped by SIGTERM, exit code 0."""
    out = tmp_path / "load.json"
    argv = ["--export-dir", str(tiny_export[0]), "--levels", "2", "--requests", "4"]
    argv += ["--max-words", "8", "--drain-seconds", "0", "--out", str(out)]
    assert load_test.main(argv) == 0
    (configuration,) = json.loads(out.read_text())["figures"]["configurations"]
    assert configuration["server_command"][:4] == ["-m", "seq2seq_attn.cli", "serve", argv[1]]
    assert configuration["server_exit_code"] == 0
    assert configuration["warmup"]["ok"] == configuration["warmup"]["requests"]
    (level,) = configuration["levels"]
    assert level["ok"] == 4 and level["errors"] == 0 and level["ready_after"] == 200


def test_load_script_reports_a_server_that_does_not_start(load_test, tmp_path):
    server = load_test.LocalServer(tmp_path / "missing", drain_s=0, start_timeout_s=60)
    with pytest.raises(RuntimeError, match="export directory not found") as error:
        with server:
            pass
    assert server.exit_code == 2 and "exit code 2" in str(error.value)


def test_load_script_refuses_other_hosts(load_test):
    body = {"texts": ["In the beginning."], "beam_width": 1}
    with pytest.raises(SystemExit, match="loopback"):
        load_test.run_load("http://example.com:80", [body])
    with pytest.raises(SystemExit, match="loopback"):
        load_test.main(["--url", "http://10.0.0.1:8080", "--requests", "1"])
