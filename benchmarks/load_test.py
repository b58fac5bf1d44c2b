"""A bounded loopback load test of the translation server.

Sends a fixed number of POST /translate requests from a fixed number of client threads (each
with one keep-alive connection), every request with a timeout, and reports throughput,
latency percentiles and the error count. Only loopback addresses are accepted.

    # against a running server (`seq2seq-attn serve EXPORT_DIR`)
    python benchmarks/load_test.py --url http://127.0.0.1:8080 --requests 500 --concurrency 16
    # or start one in-process on a free loopback port for the run
    python benchmarks/load_test.py --export-dir EXPORT_DIR

Writes the numbers to benchmarks/results/load_test.json (see --out).
"""

import argparse
import concurrent.futures
import http.client
import json
import platform
import socket
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np

LOOPBACK = ("127.0.0.1", "localhost", "::1")
DEFAULT_OUT = Path(__file__).parent / "results" / "load_test.json"
TEXTS = [
    "March 3, 1999",
    "tuesday 4 june 2001",
    "12/05/1970",
    "1 de agosto de 1964",
    "den 23 oktober 1989",
    "may 5 2020",
    "sunday, 31 december 1961",
    "17 september 2012",
]


def _client(host, port, timeout, body, count, stop_at):
    """One client thread: `count` requests on one connection; (latencies, errors, statuses)."""
    latencies, errors, statuses = [], [], {}
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        for i in range(count):
            if time.monotonic() > stop_at:
                errors.append("deadline")
                continue
            payload = json.dumps(body(i)).encode()
            start = time.perf_counter()
            try:
                connection.request(
                    "POST", "/translate", payload, {"Content-Type": "application/json"}
                )
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as error:
                errors.append(type(error).__name__)
                connection.close()
                connection = http.client.HTTPConnection(host, port, timeout=timeout)
                continue
            latencies.append(time.perf_counter() - start)
            statuses[status] = statuses.get(status, 0) + 1
            if status != 200:
                errors.append(f"HTTP {status}")
    finally:
        connection.close()
    return latencies, errors, statuses


def run_load(url, requests=200, concurrency=8, timeout=10.0, beam_width=1, max_seconds=120.0):
    """Sends `requests` requests from `concurrency` threads; returns the report dict."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "http" or parsed.hostname not in LOOPBACK:
        raise SystemExit(f"only http:// loopback URLs are allowed, got {url!r}")
    if requests < 1 or concurrency < 1:
        raise SystemExit("--requests and --concurrency must be positive")
    host, port = parsed.hostname, parsed.port or 80

    def body(i):
        return {"text": TEXTS[i % len(TEXTS)], "beam_width": beam_width}

    shares = [requests // concurrency + (i < requests % concurrency) for i in range(concurrency)]
    stop_at = time.monotonic() + max_seconds
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        futures = [pool.submit(_client, host, port, timeout, body, n, stop_at) for n in shares if n]
        parts = [f.result() for f in futures]
    elapsed = time.perf_counter() - start
    latencies = np.array([x for part in parts for x in part[0]])
    errors = [e for part in parts for e in part[1]]
    statuses = {}
    for part in parts:
        for status, n in part[2].items():
            statuses[str(status)] = statuses.get(str(status), 0) + n
    ok = int(statuses.get("200", 0))
    ms = lambda q: float(np.percentile(latencies, q) * 1000) if latencies.size else None  # noqa: E731
    return {
        "url": url,
        "requests": requests,
        "concurrency": concurrency,
        "beam_width": beam_width,
        "timeout_s": timeout,
        "seconds": round(elapsed, 3),
        "ok": ok,
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "statuses": statuses,
        "throughput_rps": round(ok / elapsed, 2) if elapsed > 0 else None,
        "latency_ms": {
            "p50": ms(50),
            "p90": ms(90),
            "p99": ms(99),
            "max": float(latencies.max() * 1000) if latencies.size else None,
        },
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
    }


def _cpus():
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalServer:
    """The server on a free 127.0.0.1 port in a background thread (context manager)."""

    def __init__(self, export_dir, backend="onnx", max_batch_size=16, batch_timeout_ms=5):
        import uvicorn

        from serving.app import create_app

        app = create_app(
            export_dir, backend, max_batch_size=max_batch_size, batch_timeout_ms=batch_timeout_ms
        )
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        for _ in range(600):  # up to 30 s
            if self.server.started:
                return self
            if not self.thread.is_alive():
                break
            time.sleep(0.05)
        raise RuntimeError("the server did not start")

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=15)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="a running server, e.g. http://127.0.0.1:8080")
    where.add_argument("--export-dir", help="start a server on this export for the run")
    parser.add_argument("--backend", default="onnx", choices=["onnx", "tflite"])
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--batch-timeout-ms", type=float, default=5)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--beam-width", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="whole run")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    load = dict(
        requests=args.requests,
        concurrency=args.concurrency,
        timeout=args.timeout,
        beam_width=args.beam_width,
        max_seconds=args.max_seconds,
    )
    if args.url:
        report = run_load(args.url, **load)
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        with LocalServer(
            args.export_dir, args.backend, args.max_batch_size, args.batch_timeout_ms
        ) as server:
            report = run_load(server.url, **load)
        report["server"] = {
            "export_dir": str(args.export_dir),
            "backend": args.backend,
            "max_batch_size": args.max_batch_size,
            "batch_timeout_ms": args.batch_timeout_ms,
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    latency = report["latency_ms"]
    print(
        f"{report['ok']}/{report['requests']} ok, {report['errors']} errors in "
        f"{report['seconds']} s: {report['throughput_rps']} req/s, "
        f"p50 {latency['p50']:.1f} ms, p99 {latency['p99']:.1f} ms -> {args.out}"
        if report["ok"]
        else f"no successful request; errors: {report['error_kinds']}"
    )
    return 0 if report["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
