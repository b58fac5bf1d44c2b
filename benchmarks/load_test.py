"""A bounded loopback load test of the translation server with a realistic request mix.

Every request is a `POST /translate` of 1..8 texts at a beam width drawn from 1..4, each text
1..60 words cut from English verses of the embedded Bible test split (see `request_mix`), so
short and long texts and every beam width meet in the server's micro-batcher. The same
requests (fixed `--seed`) run at each concurrency level of `--levels`, one level after the
other against the same server: `level` client threads, each with one keep-alive connection,
take the next request from the shared list until it is empty (a closed loop of `level`
users). Every request has a timeout (`--timeout`), every level a time budget
(`--max-seconds`). Only loopback addresses are accepted.

Per level the report has the requests, the 200s, the errors (any non-200, a timeout, a
dropped connection or a 200 whose body does not match the request) by kind, the statuses
(429 and 503, the server's overload answers, each under its own status), the first body and
`Retry-After` of each non-200 status, the throughput (200s only) in requests/s and texts/s,
latency p50/p90/p99/max over every answered request (non-200s included), and whether
`/readyz` still answered 200 after the level.

The results of the README (the pretrained SentencePiece model's export, 2 shared CPU cores):

    seq2seq-attn export seq2seq_attn/pretrained/bible-en-es --out runs/bible-export \\
        --samples 8 --force
    python -m benchmarks load_test --export-dir runs/bible-export --matrix --requests 200

(without `--url` or `--export-dir` it serves runs/bible-export, exporting it as above when it
is missing; `--small` serves the small benchmark model's export instead, 4 requests a level at
concurrency 1 and 2.)

`--matrix` runs five configurations (onnx and onnx with the int8 graphs, each with the export's
lexical shortlist, the server's default, and with `"full_vocabulary": true` in every request;
tflite), each at every
level on a fresh server in its own process (`LocalServer`: `python -m seq2seq_attn.cli serve
EXPORT_DIR --port P ...`, the way users run it, stopped with SIGTERM at the end; its exit code,
0 after a clean drain, is in the report). Other ways to run it:

    # one configuration
    python -m benchmarks load_test --export-dir EXPORT_DIR --backend tflite --levels 1,16
    python -m benchmarks load_test --export-dir EXPORT_DIR --quantized
    # against a running server (`seq2seq-attn serve EXPORT_DIR`)
    python -m benchmarks load_test --url http://127.0.0.1:8080 --requests 50

The client threads and the server share the machine's cores but not a process (nor a GIL).
Writes the numbers to benchmarks/results/load_test.json (see --out). The module imports
neither TensorFlow nor the server.
"""

import argparse
import concurrent.futures
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import numpy as np

from benchmarks import common, harness  # TensorFlow-free at import
from benchmarks.harness import ROOT, clock

LOOPBACK = ("127.0.0.1", "localhost", "::1")
PRETRAINED_EXPORT = ROOT / "runs" / "bible-export"  # the default export to serve
DEFAULT_LEVELS = (1, 8, 32, 64)
SMALL = {"levels": [1, 2], "requests": 4, "max_words": 8}
SPLITS = ("train", "dev", "test")
# (name, backend, quantized) of --matrix
# (name, backend, int8 graphs, `"full_vocabulary": true` in every body). The server's own
# default is the export's lexical shortlist where it has one.
MATRIX = (
    ("onnx", "onnx", False, False),
    ("onnx-full-vocabulary", "onnx", False, True),
    ("tflite", "tflite", False, False),
    ("onnx-int8", "onnx", True, False),
    ("onnx-int8-full-vocabulary", "onnx", True, True),
)
OVERLOAD_STATUSES = ("429", "503")
BODY_SAMPLE_CHARS = 500


# ---- the requests ----


def bible_sources(split="test"):
    """English source sentences of one split of the embedded Bible corpus (no TensorFlow).

    Args:
        split: "train", "dev" or "test" (the split stored in the corpus file).

    Returns:
        A list of English verses, in corpus order.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    from seq2seq_attn.corpora import load_bible  # plain Python, no TensorFlow

    return [source for source, _ in getattr(load_bible("en", "es"), split)]


def request_mix(texts, count, seed, max_beam_width=4, max_texts=8, max_words=60):
    """`count` JSON bodies for `POST /translate`, drawn from `texts` with a fixed seed.

    Each body is `{"texts": [...], "beam_width": b}` with b uniform in 1..max_beam_width and
    a number of texts uniform in 1..max_texts. Each text has a word count uniform in
    1..max_words: it starts at a random verse of `texts`, runs on into the following verses
    (wrapping around) until it has that many words, and is cut there.

    Args:
        texts: source sentences (non-empty strings), e.g. `bible_sources()`.
        count: number of bodies, >= 0.
        seed: seed of the `numpy.random.Generator`; the same seed gives the same bodies.
        max_beam_width: largest beam width, >= 1.
        max_texts: most texts per request, >= 1.
        max_words: most words per text, >= 1.

    Returns:
        A list of `count` dicts.

    Example:
        >>> bodies = request_mix(["In the beginning God created the heavens."], 3, seed=0)
        >>> len(bodies), sorted(bodies[0]), bodies[0]["texts"][0].split()[0]
        (3, ['beam_width', 'texts'], 'In')
    """
    texts = list(texts)
    if not any(text.split() for text in texts):
        raise ValueError(f"texts must hold at least one word, got {len(texts)} empty texts")
    for name, value, least in (
        ("count", count, 0),
        ("max_beam_width", max_beam_width, 1),
        ("max_texts", max_texts, 1),
        ("max_words", max_words, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    rng = np.random.default_rng(seed)
    bodies = []
    for _ in range(count):
        beam_width = int(rng.integers(1, max_beam_width + 1))
        n_texts = int(rng.integers(1, max_texts + 1))
        body_texts = [_cut_text(texts, rng, max_words) for _ in range(n_texts)]
        bodies.append({"texts": body_texts, "beam_width": beam_width})
    return bodies


def _cut_text(texts, rng, max_words):
    """A text of a drawn word count from consecutive verses, starting at a random one."""
    wanted = int(rng.integers(1, max_words + 1))
    start = int(rng.integers(len(texts)))
    words = []
    for i in range(start, start + len(texts)):
        words.extend(texts[i % len(texts)].split())
        if len(words) >= wanted:
            break
    return " ".join(words[:wanted])


# ---- the clients ----


class _Requests:
    """The shared list of request bodies; client threads take the next index in turn."""

    def __init__(self, bodies, stop_at):
        self.bodies, self.stop_at = bodies, stop_at
        self.next = 0
        self.lock = threading.Lock()

    def take(self):
        """The next body's index, or None when all are taken or the time is up."""
        with self.lock:
            if self.next >= len(self.bodies) or time.monotonic() > self.stop_at:
                return None
            self.next += 1
            return self.next - 1


def _check_body(request, status, raw):
    """None if a 200 answers `request`, else the error kind."""
    if status != 200:
        return f"HTTP {status}"
    try:
        answer = json.loads(raw)
    except ValueError:
        return "bad_response: not JSON"
    if len(answer.get("translations", ())) != len(request["texts"]):
        return "bad_response: translation count"
    if answer.get("beam_width") != request["beam_width"]:
        return "bad_response: beam_width"
    return None


def _client(host, port, timeout, queue):
    """One client thread on one connection; a list of per-request outcome dicts."""
    outcomes = []
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        while (index := queue.take()) is not None:
            request = queue.bodies[index]
            payload = json.dumps(request).encode()
            start = clock()
            try:
                connection.request(
                    "POST", "/translate", payload, {"Content-Type": "application/json"}
                )
                response = connection.getresponse()
                raw = response.read()
            except (OSError, http.client.HTTPException) as error:
                outcomes.append({"error": type(error).__name__, "texts": len(request["texts"])})
                connection.close()
                connection = http.client.HTTPConnection(host, port, timeout=timeout)
                continue
            outcomes.append(
                {
                    "latency": clock() - start,
                    "status": response.status,
                    "error": _check_body(request, response.status, raw),
                    "body": raw[:BODY_SAMPLE_CHARS].decode("utf-8", "replace"),
                    "retry_after": response.getheader("Retry-After"),
                    "texts": len(request["texts"]),
                }
            )
    finally:
        connection.close()
    return outcomes


def _check_url(url):
    """(host, port) of an http:// loopback URL; SystemExit for any other."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "http" or parsed.hostname not in LOOPBACK:
        raise SystemExit(f"only http:// loopback URLs are allowed, got {url!r}")
    return parsed.hostname, parsed.port or 80


def _ready_status(host, port, timeout):
    """The status of GET /readyz, or the exception's name."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/readyz")
        response = connection.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException) as error:
        return type(error).__name__
    finally:
        connection.close()


def run_load(url, bodies=None, concurrency=8, timeout=60.0, max_seconds=300.0, requests=None):
    """Sends `bodies` from `concurrency` client threads; returns the level's report dict.

    Args:
        url: an http:// loopback URL of the server.
        bodies: `POST /translate` bodies, e.g. from `request_mix`; None for `requests`
            bodies of the Bible test mix with seed 0.
        concurrency: client threads, each with one connection.
        timeout: seconds per request.
        max_seconds: time budget of the level; bodies not sent by then count as
            "deadline" errors.
        requests: how many bodies to draw when `bodies` is None (default 200).

    Raises:
        SystemExit: `url` is not loopback, or a count is not positive.
    """
    host, port = _check_url(url)
    if bodies is None:
        bodies = request_mix(bible_sources("test"), requests or 200, seed=0)
    if not bodies or concurrency < 1:
        raise SystemExit("the requests and the concurrency must be positive")
    queue = _Requests(bodies, time.monotonic() + max_seconds)
    start = clock()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        futures = [
            pool.submit(_client, host, port, timeout, queue)
            for _ in range(min(concurrency, len(bodies)))
        ]
        outcomes = [outcome for future in futures for outcome in future.result()]
    elapsed = clock() - start
    report = _summary(outcomes, len(bodies), elapsed)
    report.update(
        url=url,
        concurrency=concurrency,
        timeout_s=timeout,
        max_seconds=max_seconds,
        ready_after=_ready_status(host, port, timeout=5),
    )
    return report


def _summary(outcomes, sent, elapsed):
    """Counts, throughput and latency percentiles of one level's outcomes."""
    kinds, statuses, bodies = {}, {}, {}
    for outcome in outcomes:
        if outcome["error"]:
            kinds[outcome["error"]] = kinds.get(outcome["error"], 0) + 1
        if "status" in outcome:
            status = str(outcome["status"])
            statuses[status] = statuses.get(status, 0) + 1
            if outcome["status"] != 200:
                sample = {"body": outcome["body"], "retry_after": outcome["retry_after"]}
                bodies.setdefault(status, sample)
    unsent = sent - len(outcomes)
    if unsent:
        kinds["deadline"] = unsent
    good = [o for o in outcomes if not o["error"]]
    latencies = np.array([o["latency"] for o in outcomes if "latency" in o])
    ok_texts = sum(o["texts"] for o in good)

    def ms(q):
        return round(float(np.percentile(latencies, q) * 1000), 1) if latencies.size else None

    return {
        "requests": sent,
        "ok": len(good),
        "errors": sum(kinds.values()),
        "error_kinds": dict(sorted(kinds.items())),
        "statuses": dict(sorted(statuses.items())),
        "overload": {status: statuses.get(status, 0) for status in OVERLOAD_STATUSES},
        "error_bodies": bodies,
        "texts_ok": ok_texts,
        "seconds": round(elapsed, 3),
        "throughput_rps": round(len(good) / elapsed, 2) if elapsed > 0 else None,
        "throughput_texts_per_s": round(ok_texts / elapsed, 2) if elapsed > 0 else None,
        "latency_ms": {"p50": ms(50), "p90": ms(90), "p99": ms(99), "max": ms(100)},
    }


def run_levels(url, bodies, levels, timeout, max_seconds, echo=print):
    """`run_load` at each concurrency of `levels` in turn; a list of level reports."""
    reports = []
    for level in levels:
        report = run_load(url, bodies, level, timeout=timeout, max_seconds=max_seconds)
        echo(_line(report))
        reports.append(report)
    return reports


def _line(report):
    latency = report["latency_ms"]
    line = (
        f"  concurrency {report['concurrency']:3d}: {report['ok']}/{report['requests']} ok, "
        f"{report['errors']} errors in {report['seconds']} s, "
        f"{report['throughput_rps']} req/s, {report['throughput_texts_per_s']} texts/s"
    )
    if latency["p50"] is not None:
        line += f", p50 {latency['p50']} ms, p99 {latency['p99']} ms"
    if report["errors"]:
        line += f"; errors: {report['error_kinds']}"
    return line


# ---- the server ----


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalServer:
    """`seq2seq-attn serve` in its own process on a free 127.0.0.1 port (context manager).

    Starts `python -m seq2seq_attn.cli serve EXPORT_DIR --port P ...` with this interpreter,
    the way users run the server, so the client threads of the load test share neither a
    process nor a GIL with it. Entering waits until `GET /readyz` answers 200; leaving sends
    SIGTERM (the server reports not ready for `drain_s`, lets the requests in flight finish
    and exits) and records the exit code (`exit_code`, 0 after a clean shutdown) and the
    seconds the shutdown took (`stop_seconds`). The server's log goes to a temporary file,
    whose end is in the error when it does not start.

    Args:
        export_dir: the export directory to serve.
        backend: "onnx" or "tflite".
        max_batch_size: the server's `--max-batch-size`.
        batch_timeout_ms: the server's `--batch-timeout-ms`.
        quantized: serve the int8 artifacts (`--quantized`).
        drain_s: the server's `--drain-seconds`.
        start_timeout_s: seconds to wait for `/readyz` 200.
    """

    def __init__(
        self,
        export_dir,
        backend="onnx",
        max_batch_size=16,
        batch_timeout_ms=5,
        quantized=False,
        drain_s=1.0,
        start_timeout_s=120.0,
    ):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [
            sys.executable, "-m", "seq2seq_attn.cli", "serve", str(export_dir),
            "--port", str(self.port),
            "--backend", backend,
            "--max-batch-size", str(max_batch_size),
            "--batch-timeout-ms", str(batch_timeout_ms),
            "--drain-seconds", str(drain_s),
        ] + (["--quantized"] if quantized else [])  # fmt: skip
        self.drain_s, self.start_timeout_s = drain_s, start_timeout_s
        self.process = self.log = None
        self.exit_code = self.stop_seconds = None

    def __enter__(self):
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            self.command, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline and self.process.poll() is None:
            if _ready_status("127.0.0.1", self.port, timeout=5) == 200:
                return self
            time.sleep(0.1)
        self.__exit__(None, None, None)
        raise RuntimeError(
            f"the server did not start (exit code {self.exit_code}): "
            f"{' '.join(self.command)}\n{self.log_tail()}"
        )

    def __exit__(self, *exc):
        if self.process.poll() is None:
            start = clock()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=self.drain_s + 60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.stop_seconds = round(clock() - start, 2)
        self.exit_code = self.process.returncode

    def log_tail(self, chars=2000):
        """The end of the server's log (stdout and stderr)."""
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")[-chars:]


def _warm_up(url, max_beam_width, timeout):
    """One short request per beam width (first-call setup out of the timed levels)."""
    bodies = [{"texts": ["In the beginning."], "beam_width": b + 1} for b in range(max_beam_width)]
    report = run_load(url, bodies, 1, timeout=timeout, max_seconds=timeout * len(bodies))
    return {key: report[key] for key in ("requests", "ok", "errors", "error_kinds", "statuses")}


# ---- the command line ----


def _load_average():
    return [round(x, 2) for x in os.getloadavg()]


def _levels(text):
    try:
        levels = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError(f"levels must be positive integers, got {text!r}")
    return levels


def add_arguments(parser):
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--url", help="a running server, e.g. http://127.0.0.1:8080")
    where.add_argument("--export-dir", help="start a server on this export for the run")
    parser.add_argument("--backend", default="onnx", choices=["onnx", "tflite"])
    parser.add_argument("--quantized", action="store_true", help="serve the int8 artifacts")
    parser.add_argument(
        "--full-vocabulary",
        action="store_true",
        help='send "full_vocabulary": true (default: the export\'s lexical shortlist if any)',
    )
    parser.add_argument(
        "--matrix",
        action="store_true",
        help="onnx, tflite and onnx --quantized, a fresh server each (needs --export-dir)",
    )
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--batch-timeout-ms", type=float, default=5)
    parser.add_argument(
        "--levels",
        type=_levels,
        help="concurrency levels, run in turn (default 1,8,32,64; small 1,2)",
    )
    parser.add_argument("--requests", type=int, help="requests per level (200, small 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", default="test", choices=SPLITS, help="Bible split of texts")
    parser.add_argument("--max-beam-width", type=int, default=4)
    parser.add_argument("--max-texts", type=int, default=8, help="most texts per request")
    parser.add_argument("--max-words", type=int, help="most words per text (60, small 8)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="seconds per level")
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=1.0,
        help="the started server's --drain-seconds before it stops on SIGTERM (default 1)",
    )


def main(argv=None):
    """`python -m benchmarks load_test ARGV`, for callers that hold this module."""
    return harness.main(["load_test", *(sys.argv[1:] if argv is None else argv)])


def _defaults(args):
    """Fills the options left out: the full-size defaults, or the small ones."""
    full = {"levels": list(DEFAULT_LEVELS), "requests": 200, "max_words": 60}
    harness.fill_defaults(args, full, SMALL)
    if args.matrix and args.url:
        raise SystemExit("--matrix starts its own servers: use it with --export-dir, not --url")
    if args.url and (args.quantized or args.backend != "onnx"):
        raise SystemExit("--backend and --quantized choose the server that --export-dir starts")
    if args.requests < 1:
        raise SystemExit(f"--requests must be positive, got {args.requests}")
    if args.url:
        _check_url(args.url)
    elif args.export_dir is None:
        args.export_dir = str(default_export(args.small))


def default_export(small):
    """The export served when none is named: runs/bible-export (the shipped model, exported
    with 8 parity sentences when missing) or, small, the small benchmark model's export."""
    if small:
        return common.bench_export(common.bench_run(small=True), small=True)[0]
    if not (PRETRAINED_EXPORT / "manifest.json").exists():
        from seq2seq_attn.commands import PRETRAINED_DIR

        common.run_export_cli(PRETRAINED_DIR, PRETRAINED_EXPORT, samples=8)
    return PRETRAINED_EXPORT


def run(args):
    _defaults(args)
    try:
        bodies = request_mix(
            bible_sources(args.split),
            args.requests,
            args.seed,
            max_beam_width=args.max_beam_width,
            max_texts=args.max_texts,
            max_words=args.max_words,
        )
    except ValueError as error:
        raise SystemExit(f"load_test: {error}") from None
    result = {
        "load_average_before": _load_average(),
        "mix": {
            "corpus": f"bible-en-es {args.split} split, English side",
            "seed": args.seed,
            "requests_per_level": args.requests,
            "texts": sum(len(b["texts"]) for b in bodies),
            "max_beam_width": args.max_beam_width,
            "max_texts": args.max_texts,
            "max_words": args.max_words,
        },
        "levels": args.levels,
        "configurations": [],
    }
    load = dict(timeout=args.timeout, max_seconds=args.max_seconds)
    if args.url:
        print(f"{args.url}:")
        levels = run_levels(args.url, bodies, args.levels, **load)
        result["configurations"].append({"name": "url", "url": args.url, "levels": levels})
    else:
        result["server"] = {
            "export_dir": str(args.export_dir),
            "max_batch_size": args.max_batch_size,
            "batch_timeout_ms": args.batch_timeout_ms,
            "drain_s": args.drain_seconds,
            "process": "own (python -m seq2seq_attn.cli serve), stopped with SIGTERM",
        }
        single = _name(args.backend, args.quantized, args.full_vocabulary)
        for name, backend, quantized, full in MATRIX if args.matrix else [single]:
            print(f"{name}:")
            before = _load_average()
            server = LocalServer(
                args.export_dir,
                backend,
                args.max_batch_size,
                args.batch_timeout_ms,
                quantized,
                drain_s=args.drain_seconds,
            )
            with server:
                warmup = _warm_up(server.url, args.max_beam_width, args.timeout)
                asked = [dict(b, full_vocabulary=True) for b in bodies] if full else bodies
                levels = run_levels(server.url, asked, args.levels, **load)
            print(f"  server stopped: exit code {server.exit_code} in {server.stop_seconds} s")
            if server.exit_code != 0:
                print(server.log_tail())
            result["configurations"].append(
                {
                    "name": name,
                    "backend": backend,
                    "quantized": quantized,
                    "full_vocabulary": full,
                    "server_command": server.command[1:],
                    "server_exit_code": server.exit_code,
                    "server_stop_seconds": server.stop_seconds,
                    "server_log_tail": server.log_tail() if server.exit_code != 0 else None,
                    "load_average_before": before,
                    "load_average_after": _load_average(),
                    "warmup": warmup,
                    "levels": levels,
                }
            )
    result["load_average_after"] = _load_average()
    errors, unclean = _failures(result)
    print(f"{errors} errors")
    if unclean:
        print(f"servers that did not exit 0 on SIGTERM: {', '.join(unclean)}")
    return result


def _failures(result):
    errors = sum(level["errors"] for c in result["configurations"] for level in c["levels"])
    unclean = [c["name"] for c in result["configurations"] if c.get("server_exit_code", 0) != 0]
    return errors, unclean


def exit_code(result):
    """The harness's exit code: 1 when a request failed or a server did not exit cleanly."""
    errors, unclean = _failures(result)
    return 0 if errors == 0 and not unclean else 1


def _name(backend, quantized, full=False):
    name = (f"{backend}-int8" if quantized else backend) + ("-full-vocabulary" if full else "")
    return name, backend, quantized, full
