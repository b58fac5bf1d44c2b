"""The page of `export --web`: download size, time to first translation, latency vs Python.

For each model (the tutorial-size model of `tutorial_size.py` and the shipped pretrained
model), the export's `web/` folder is served on loopback (`StaticFolder`, what
`python -m http.server` does) and opened in Debian's headless Chromium (`open_page`, the
way tests/test_serving_live.py drives it: no browser download). Figures:

- the folder's size, float32 and int8: what the page downloads (runtime, tokenizer bundle,
  page modules, the two step graphs and the SentencePiece models), raw and gzip-compressed
  (`gzip -6`, what a static host typically sends);
- time to first translation: navigation to the first result, model loading included;
- batch-1 latency, greedy and beam 4, float32 and int8 graphs, of the page's own worker
  (`translate.js`: JavaScript host search over onnxruntime-web, WebAssembly, one thread),
  against Python onnxruntime
  on the same step graphs with the project's host search (`OnnxModel.decode`, one intra-op
  thread, what `seq2seq-attn serve` runs for requests with options), against the
  export's `greedy.onnx` (what the server runs for plain greedy) and, where the export has
  a vocabulary shortlist, against the host search over it (`shortlist=True`; the page
  decodes over the full vocabulary), on the same sentences,
  taking turns sentence by sentence. Text to text on both sides (tokenize, decode,
  detokenize). The machine is shared and loaded: the ratios are the figures to read.

    python -m benchmarks web_page                  # both models, ~5 min once exported
    python -m benchmarks web_page --small          # tutorial_size's small model, 5 sentences
    python -m benchmarks web_page --tutorial-export DIR --tutorial-run RUN \
        --pretrained-export DIR                    # exports made elsewhere (`export --web`)

Full runs read runs/tutorial-export and runs/tutorial-model (`tutorial_size.py` makes them)
and runs/pretrained-export (`seq2seq-attn export seq2seq_attn/pretrained/bible-en-es --out
runs/pretrained-export --web`); a folder without `web/` gets one (`export.web.write_web`).

Writes benchmarks/results/web_page.json.
"""

import contextlib
import functools
import gzip
import http.server
import statistics
import threading
from pathlib import Path

from benchmarks.harness import ROOT, clock, fill_defaults

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
READY = "document.body.dataset.ready"
# What the page downloads besides the graphs and tokenizers it picks.
PAGE_FILES = (
    "index.html",
    "style.css",
    "page.js",
    "worker.js",
    "translate.js",
    "model.js",
    "search.js",
    "tokenizer.js",
    "sentencepiece.js",
    "ort.wasm.min.mjs",
    "ort-wasm-simd-threaded.mjs",
    "ort-wasm-simd-threaded.wasm",
    "manifest.json",
)


class StaticFolder:
    """Serves `folder` on a loopback port in a thread, as `python -m http.server` does;
    paths in `hidden` (e.g. `{"/decoder_step.onnx"}`) answer 404.

    `with StaticFolder(folder) as url:` gives the base URL, ending in "/".
    """

    def __init__(self, folder, hidden=()):
        self.folder, self.hidden = str(folder), set(hidden)

    def __enter__(self):
        hidden = self.hidden

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                if self.path.split("?")[0] in hidden:
                    self.send_error(404)
                    return
                super().do_GET()

            def log_message(self, *args):
                pass

        handler = functools.partial(Handler, directory=self.folder)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def chromium():
    """A headless Debian Chromium through Playwright's sync API."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60000
        )
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, url, timeout_ms=120000):
    """A new page at `url`, once its model is loaded (or failed to); `page.requests` lists
    every URL it requested, its worker's included."""
    page = browser.new_page()
    page.requests = []
    page.on("request", lambda request: page.requests.append(request.url))
    page.goto(url)
    page.wait_for_function(READY, timeout=timeout_ms)
    return page


def folder_sizes(web_dir):
    """Bytes the page downloads with the float32 and with the int8 graphs: raw and gzip."""
    import json

    web_dir = Path(web_dir)
    manifest = json.loads((web_dir / "manifest.json").read_text())
    out = {}
    for kind, graphs in manifest["graphs"].items():
        names = {*PAGE_FILES, *graphs.values(), *manifest["tokenizer"].values()}
        raw = sum((web_dir / n).stat().st_size for n in names)
        packed = sum(len(gzip.compress((web_dir / n).read_bytes(), 6)) for n in names)
        out[kind] = {"raw_mb": raw / 1e6, "gzip_mb": packed / 1e6, "files": len(names)}
    return out


def _timed(fn):
    """`fn(text)` as `(output, seconds)`, timed here."""

    def run(text):
        started = clock()
        out = fn(text)
        return out, clock() - started

    return run


def _python_translators(export_dir, quantized=False):
    """Python onnxruntime, text -> text: host search (greedy, beam 4) and greedy.onnx (their
    int8 twins with `quantized`)."""
    import numpy as np

    from seq2seq_attn.inference.runtime import OnnxModel
    from seq2seq_attn.tokenizer import TokenizerPair

    model = OnnxModel(export_dir, quantized=quantized)
    tokenizers = TokenizerPair.load(Path(export_dir) / "tokenizer")

    def host(text, beam, shortlist=False):
        ids = np.array([tokenizers.source.encode(text)], np.int32)
        tokens = model.decode(ids, 2, 3, beam_width=beam, shortlist=shortlist)["tokens"][0]
        return tokenizers.target.decode(tokens)

    def graph(text):
        ids = np.array([tokenizers.source.encode(text)], np.int32)
        return tokenizers.target.decode(model.greedy_graph(ids)["tokens"][0])

    runners = {
        "python_host_greedy": _timed(lambda t: host(t, 1)),
        "python_host_beam4": _timed(lambda t: host(t, 4)),
        "python_greedy_onnx": _timed(graph),
    }
    if (
        model.has_shortlist and not quantized
    ):  # the export's vocabulary shortlist (the page does not use it)
        runners["python_host_greedy_shortlist"] = _timed(lambda t: host(t, 1, True))
        runners["python_host_beam4_shortlist"] = _timed(lambda t: host(t, 4, True))
    return runners


# Timed in the page, around the call to its worker (so Playwright's round trip is left out).
_PAGE_CALL = """async ([text, beam]) => {
  const started = performance.now();
  const result = await window.seq2seqAttn.translate(text, {beamWidth: beam});
  return [result.text, (performance.now() - started) / 1000, result.ms / 1000];
}"""


def _page_translators(page):
    def run(beam):
        return lambda text: tuple(page.evaluate(_PAGE_CALL, [text, beam]))  # + worker's own

    return {"browser_greedy": run(1), "browser_beam4": run(4)}


def measure_model(export_dir, texts, repeats, browser):
    """Sizes, and per kind of graphs (float32, int8) the time to first translation and each
    runner's latency, for one export."""
    web_dir = Path(export_dir) / "web"
    figures = {"sizes": folder_sizes(web_dir)}
    for key in ("first_translation_s", "latency_ms", "agreement", "ratios"):
        figures[key] = {}
    with StaticFolder(web_dir) as url:
        for kind in ("float32", "int8"):
            started = clock()
            page = open_page(browser, url + ("?graphs=int8" if kind == "int8" else ""))
            page.evaluate(_PAGE_CALL, [texts[0], 1])
            figures["first_translation_s"][kind] = clock() - started
            runners = {**_python_translators(export_dir, kind == "int8"), **_page_translators(page)}
            latency, agreement = _latencies(runners, texts, repeats)
            figures["latency_ms"][kind], figures["agreement"][kind] = latency, agreement
            figures["ratios"][kind] = {
                "greedy_vs_python_host": _ratio(latency, "browser_greedy", "python_host_greedy"),
                "greedy_vs_python_greedy_onnx": _ratio(
                    latency, "browser_greedy", "python_greedy_onnx"
                ),
                "beam4_vs_python_host": _ratio(latency, "browser_beam4", "python_host_beam4"),
            }
            page.close()
    return figures


def _latencies(runners, texts, repeats):
    """Median ms per sentence of each runner (best of `repeats`), taking turns sentence by
    sentence; `NAME_in_worker` for the page's runners: the worker's own time, without the
    message to and from the page. And how often the browser's text equals Python's."""
    seconds, outputs = {}, {name: [] for name in runners}
    for text in texts:
        for name, run in runners.items():
            best = None
            for _ in range(repeats):
                out, *elapsed = run(text)
                best = elapsed if best is None or elapsed[0] < best[0] else best
            seconds.setdefault(name, []).append(best[0])
            if len(best) > 1:
                seconds.setdefault(f"{name}_in_worker", []).append(best[1])
            outputs[name].append(out)
    latency = {name: 1000 * statistics.median(values) for name, values in seconds.items()}

    def same(a, b):
        return sum(x == y for x, y in zip(outputs[a], outputs[b], strict=True)) / len(texts)

    agreement = {
        "greedy": same("browser_greedy", "python_host_greedy"),
        "beam4": same("browser_beam4", "python_host_beam4"),
    }
    return latency, agreement


def _ratio(latency, a, b):
    return latency[a] / latency[b]


def add_arguments(parser):
    parser.add_argument("--sentences", type=int, help="test sentences per model (40)")
    parser.add_argument("--repeats", type=int, help="timed runs per sentence, best kept (3)")
    parser.add_argument(
        "--tutorial-export", type=Path, help="export of the tutorial-size model, with web/"
    )
    parser.add_argument("--pretrained-export", type=Path, help="export of the shipped model")
    parser.add_argument("--tutorial-run", type=Path, help="the tutorial-size run (its test split)")


def _ensure_web(export_dir):
    from seq2seq_attn.export.web import write_web

    if not (Path(export_dir) / "web" / "manifest.json").is_file():
        write_web(export_dir, Path(export_dir) / "web")


def run(args):
    fill_defaults(args, {"sentences": 40, "repeats": 3}, {"sentences": 5, "repeats": 1})
    from benchmarks import tutorial_size
    from seq2seq_attn.commands import PRETRAINED_DIR

    tutorial_run, tutorial_export, _, _ = tutorial_size.paths(args.small)
    models = {  # name: (export, run whose test split gives the sentences)
        "tutorial_size": (
            args.tutorial_export or tutorial_export,
            args.tutorial_run or tutorial_run,
        )
    }
    if not args.small:
        export = args.pretrained_export or ROOT / "runs" / "pretrained-export"
        models["pretrained"] = (export, PRETRAINED_DIR)
    figures = {"models": {}}
    texts = {
        name: tutorial_size.test_sentences(run, args.sentences) for name, (_, run) in models.items()
    }
    with chromium() as browser:
        for name, (export_dir, _) in models.items():
            _ensure_web(export_dir)
            result = measure_model(export_dir, texts[name], args.repeats, browser)
            figures["models"][name] = {
                "export": str(export_dir),
                "sentences": len(texts[name]),
                **result,
            }
    return figures
