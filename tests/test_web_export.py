"""`export --web`: the folder, and the page in headless Chromium against Python onnxruntime.

The browser tests serve the folder written from the session's tiny export on loopback
(`benchmarks.web_page.StaticFolder`, what `python -m http.server` does) and drive Debian's
chromium through Playwright, as tests/test_serving_live.py does (no browser download).
"""

import json
import random
import shutil

import numpy as np
import pytest

from seq2seq_attn.corpora import generate_dates
from seq2seq_attn.errors import UserError
from seq2seq_attn.export.web import GRAPHS, LIMITS, write_web
from seq2seq_attn.inference.runtime import OnnxModel, sha256_of
from seq2seq_attn.tokenizer import TokenizerPair
from tests.test_serving_live import require_browser
from tests.tokenizer_inputs import HARD, SENTENCES

SENTENCE_COUNT = 56
SCORE_ATOL = 1e-4  # float32 log-probs: onnxruntime-web's kernels against Python's


@pytest.fixture(scope="module")
def web_dir(tiny_export, tmp_path_factory):
    out = tmp_path_factory.mktemp("web") / "web"
    write_web(tiny_export[0], out)
    return out


@pytest.fixture(scope="module")
def tokenizers(tiny_export):
    return TokenizerPair.load(tiny_export[0] / "tokenizer")


def _sentences():
    """Dates in many styles, alone and joined in twos to fives: 1 to ~90 source tokens."""
    texts = [source for source, _ in generate_dates(120, seed=36)]
    rng = random.Random(36)
    out = texts[:30]
    for i in range(SENTENCE_COUNT - len(out)):
        out.append(" ; ".join(rng.sample(texts, 2 + i % 4)))
    return out


def test_folder_has_the_page_the_graphs_and_a_manifest_of_hashes(web_dir, tiny_export):
    from seq2seq_attn.serving.service import Limits

    manifest = json.loads((web_dir / "manifest.json").read_text())
    files = sorted(p.relative_to(web_dir).as_posix() for p in web_dir.rglob("*") if p.is_file())
    assert sorted(manifest["files"]) == [f for f in files if f != "manifest.json"]
    for name, digest in manifest["files"].items():
        assert sha256_of(web_dir / name) == digest, name
        assert (web_dir / name).stat().st_size == manifest["sizes"][name]
    for graphs in GRAPHS.values():
        for name in graphs.values():
            assert sha256_of(web_dir / name) == sha256_of(tiny_export[0] / name)
    assert {"index.html", "translate.js", "worker.js", "sentencepiece.js"} <= set(files)
    assert "ort-wasm-simd-threaded.wasm" in files
    assert not [f for f in files if "jsep" in f or "webgpu" in f or f.endswith(".map")]
    assert "greedy.onnx" not in files and "translate.onnx" not in files  # the page runs steps
    defaults = Limits()
    assert LIMITS == {k: getattr(defaults, k) for k in LIMITS}  # the server's limits
    assert (
        manifest["limits"]["max_beam_width"] == 8 and manifest["limits"]["default_beam_width"] == 4
    )
    assert manifest["versions"]["javascript"]["onnxruntime-web"]


def test_write_web_refuses_a_full_folder_and_a_missing_graph(tiny_export, tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x").write_text("x")
    with pytest.raises(UserError, match="not empty"):
        write_web(tiny_export[0], taken)
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("manifest.json", "encoder.onnx", "decoder_step.onnx"):
        (partial / name).write_bytes((tiny_export[0] / name).read_bytes())
    with pytest.raises(UserError, match="encoder_int8.onnx is missing"):
        write_web(partial, tmp_path / "out")
    with pytest.raises(UserError, match="cannot read"):
        write_web(tmp_path / "nowhere", tmp_path / "out2")


def test_cli_export_web_passes_the_flag(monkeypatch, tmp_path, capsys):
    import seq2seq_attn.export.main as export_main
    from seq2seq_attn.cli import main

    calls = []

    def fake_export_run(run_dir, out, **kwargs):
        calls.append(kwargs)
        return {"artifacts": {}}

    monkeypatch.setattr(export_main, "export_run", fake_export_run)
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "o"), "--web"]) == 0
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "o")]) == 0
    assert [c["web"] for c in calls] == [True, False]
    assert "http.server" in capsys.readouterr().out


@pytest.fixture(scope="module")
def browser():
    require_browser()
    from benchmarks.web_page import chromium

    with chromium() as running:
        yield running


@pytest.fixture(scope="module")
def served(web_dir):
    from benchmarks.web_page import StaticFolder

    with StaticFolder(web_dir) as url:
        yield url


def _python_results(export_dir, tokenizers, texts, quantized, beam, length_penalty=0.0):
    model = OnnxModel(export_dir, quantized=quantized)
    out = []
    for text in texts:
        ids = np.array([tokenizers.source.encode(text)], np.int32)
        result = model.decode(
            ids, 2, 3, beam_width=beam, n_best=min(beam, 2), length_penalty=length_penalty
        )
        rows = [list(map(int, t)) for t in result["nbest_tokens"][0]]
        rows = [row[: row.index(3) + 1] if 3 in row else row for row in rows]
        out.append((ids[0].tolist(), rows, result["nbest_scores"][0].tolist()))
    return out


@pytest.mark.browser
@pytest.mark.parametrize("kind", ["float32", "int8"])
def test_page_tokens_equal_python_host_search(browser, served, tiny_export, tokenizers, kind):
    from benchmarks.web_page import open_page

    texts = _sentences()
    lengths = [len(tokenizers.source.encode(t)) for t in texts]
    assert len(texts) >= 50 and min(lengths) <= 12 and max(lengths) >= 60  # mixed lengths
    page = open_page(browser, served + ("?graphs=int8" if kind == "int8" else ""))
    assert page.get_attribute("body", "data-ready") == "true", page.text_content("#status")
    for beam, alpha in [(1, 0.0), (4, 0.0)] + [(4, 1.0)] * (kind == "float32"):
        got = page.evaluate(
            "([t, b, a]) => window.seq2seqAttn.translateAll("
            "t, {beamWidth: b, nBest: Math.min(b, 2), lengthPenalty: a})",
            [texts, beam, alpha],
        )
        want = _python_results(tiny_export[0], tokenizers, texts, kind == "int8", beam, alpha)
        mismatches = []
        for text, js, (ids, rows, scores) in zip(texts, got, want, strict=True):
            assert js["sourceIds"] == ids
            if [one["tokens"] for one in js["nbest"]] != rows:
                mismatches.append((text, js["nbest"], rows))
                continue
            assert [one["score"] for one in js["nbest"]] == pytest.approx(scores, abs=SCORE_ATOL)
            assert js["text"] == tokenizers.target.decode(rows[0])
            assert len(js["attention"]) == len(rows[0])
            assert all(len(row) == len(ids) for row in js["attention"])
            assert all(abs(sum(row) - 1) < 1e-4 for row in js["attention"])
        count = f"{len(mismatches)} of {len(texts)} differ (beam {beam}, alpha {alpha})"
        assert not mismatches, f"{count}: {mismatches[:3]}"
    page.close()


@pytest.mark.browser
@pytest.mark.parametrize("model", ["tiny", "pretrained"])
def test_js_tokenizer_ids_equal_python_on_hard_strings(
    browser, web_dir, tiny_export, tmp_path, model
):
    """The tiny model's tokenizer, and the shipped model's (byte fallback on): the page's
    folder with the pretrained run's .model files in place of the tiny ones."""
    from benchmarks.web_page import StaticFolder, open_page
    from seq2seq_attn.commands import PRETRAINED_DIR

    folder = web_dir
    if model == "pretrained":
        folder = tmp_path / "web"
        shutil.copytree(web_dir, folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        for side in ("source", "target"):
            shutil.copy(PRETRAINED_DIR / "tokenizer" / f"{side}.model", folder / "tokenizer")
            name = f"tokenizer/{side}.model"
            manifest["files"][name] = sha256_of(folder / name)
        (folder / "manifest.json").write_text(json.dumps(manifest))
    run = tiny_export[0] if model == "tiny" else PRETRAINED_DIR
    source = TokenizerPair.load(run / "tokenizer").source
    texts = HARD + SENTENCES
    with StaticFolder(folder) as url:
        page = open_page(browser, url)
        got = page.evaluate("(t) => window.seq2seqAttn.tokenize(t)", texts)
        page.close()
    want = [source.encode(text) for text in texts]
    assert [t for t, g, w in zip(texts, got, want, strict=True) if g != w] == []
    if model == "pretrained":  # byte pieces <0x..> were used
        assert any(i in range(4, 260) for ids in want for i in ids[1:-1])


@pytest.mark.browser
def test_ui_translates_draws_attention_and_requests_only_its_folder(
    browser, served, tiny_export, tokenizers
):
    from benchmarks.web_page import open_page

    page = open_page(browser, served)
    text = "March 3, 2001"
    page.fill("#source", text)
    page.fill("#beam", "1")
    page.click("button[type=submit]")
    page.wait_for_function("document.getElementById('status').textContent === 'Done.'")
    ((ids, rows, _),) = _python_results(tiny_export[0], tokenizers, [text], False, 1)
    assert page.text_content("#translation") == tokenizers.target.decode(rows[0])
    assert page.locator("#heatmap tbody tr").count() == len(rows[0])
    assert page.locator("#heatmap thead th").count() == len(ids) + 1
    assert page.text_content("#time").endswith(" ms")
    assert "onnxruntime-web" in page.text_content("#backend")
    assert page.requests and all(url.startswith(served) for url in page.requests), page.requests
    requested = {url[len(served) :] for url in page.requests}
    assert {
        "decoder_step.onnx",
        "ort-wasm-simd-threaded.wasm",
        "tokenizer/source.model",
    } <= requested
    assert not any("int8" in name for name in requested)  # float graphs by default
    page.close()


@pytest.mark.browser
def test_messages_for_empty_and_too_long_input(browser, served):
    from benchmarks.web_page import open_page

    page = open_page(browser, served)
    page.fill("#source", "   ")
    page.click("button[type=submit]")
    assert "the text is empty" in page.text_content("#status")
    too_long = "1" * (LIMITS["max_text_chars"] + 1)
    message = page.evaluate(
        "(t) => window.seq2seqAttn.translate(t).then(() => 'translated', e => e.message)", too_long
    )
    assert message == f"the text has {len(too_long)} characters; the limit is 1000"
    many_tokens = " ".join(["March 3, 2001"] * 40)  # < 1000 characters, > 128 tokens
    message = page.evaluate(
        "(t) => window.seq2seqAttn.translate(t).then(() => 'translated', e => e.message)",
        many_tokens,
    )
    assert "tokens with [START] and [END]; the limit is 128" in message
    message = page.evaluate(
        "(t) => window.seq2seqAttn.translate(t, {beamWidth: 9}).then(() => 'ok', e => e.message)",
        "March 3",
    )
    assert message == "beam width 9: must be from 1 to 8"
    page.close()


@pytest.mark.browser
def test_message_for_a_browser_without_web_workers(browser, served):
    page = browser.new_page()
    page.add_init_script("delete window.Worker;")
    page.goto(served)
    page.wait_for_function("document.body.dataset.blocked === 'true'")
    assert "This browser is too old for this page" in page.text_content("#status")
    page.close()


@pytest.mark.browser
def test_messages_for_a_missing_changed_file_and_file_url(browser, web_dir, tmp_path):
    from benchmarks.web_page import StaticFolder, open_page

    with StaticFolder(web_dir, hidden={"/decoder_step.onnx"}) as url:
        page = open_page(browser, url)
        assert page.get_attribute("body", "data-ready") == "error"
        status = page.text_content("#status")
        assert "decoder_step.onnx is missing from the model folder (HTTP 404)" in status
        page.close()
    changed = tmp_path / "web"
    shutil.copytree(web_dir, changed)
    graph = bytearray((changed / "decoder_step.onnx").read_bytes())
    graph[-1] ^= 1
    (changed / "decoder_step.onnx").write_bytes(graph)
    with StaticFolder(changed) as url:
        page = open_page(browser, url)
        status = page.text_content("#status")
        assert "decoder_step.onnx does not match the SHA-256 in manifest.json" in status
        page.close()
    page = browser.new_page()
    page.goto((web_dir / "index.html").as_uri())
    assert "file://" in page.text_content("#status")
    assert "python -m http.server" in page.text_content("#status")
    page.close()
