"""Prometheus metrics of the translation server and the ASGI middleware that records them.

Each app gets its own `CollectorRegistry`, so several apps (tests) never share counters.

    seq2seq_requests_total{endpoint, method, status}     requests, by status (499: dropped)
    seq2seq_request_duration_seconds{endpoint}          latency histogram
    seq2seq_errors_total{endpoint, status}              4xx and 5xx answers
    seq2seq_batch_size                                  texts per decoded batch (histogram)
    seq2seq_batch_duration_seconds                      decode time per batch (histogram)
    seq2seq_queue_depth                                 texts waiting for the worker (gauge)
    seq2seq_texts_total{beam_width}                     texts translated
    seq2seq_failed_batches_total                        batches whose decode raised (answered 500)
    seq2seq_failed_texts_total                          texts in those batches
    seq2seq_worker_restarts_total                       restarts of the decode worker loop
    seq2seq_rejected_total{reason}                      429/503 answers: overloaded, timeout,
                                                        unavailable
    seq2seq_worker_healthy                              1 while /healthz passes (gauge)
    seq2seq_dropped_requests_total{reason}              requests not answered because their
                                                        client disconnected first
                                                        (reason="client_disconnected")
    seq2seq_dropped_texts_total                         texts taken off the queue undecoded
                                                        because their request ended first
                                                        (client gone, or timed out)

A request whose client disconnected counts in `seq2seq_requests_total` with status 499
(nginx's "client closed request"), not in `seq2seq_errors_total`: nothing was answered.

`endpoint` is the route template (`/v1/models/{name}:predict`), never the raw path, so the
number of label values stays bounded; paths that match no route count as `other`.
"""

import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
CLIENT_DISCONNECTED = "client_disconnected"  # the `reason` of a dropped request
CLIENT_CLOSED_REQUEST = 499  # the status recorded for it (nginx's): no answer was sent


class ServerMetrics:
    """The server's metrics in a registry of their own."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "seq2seq_requests",
            "HTTP requests answered.",
            ["endpoint", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "seq2seq_request_duration_seconds",
            "Time from request to the end of the response.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "seq2seq_errors",
            "Answers with a 4xx or 5xx status.",
            ["endpoint", "status"],
            registry=r,
        )
        self.batch_size = Histogram(
            "seq2seq_batch_size", "Texts per decoded batch.", buckets=BATCH_BUCKETS, registry=r
        )
        self.batch_duration = Histogram(
            "seq2seq_batch_duration_seconds",
            "Decode time per batch.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "seq2seq_queue_depth", "Texts waiting for the decode worker.", registry=r
        )
        self.texts = Counter("seq2seq_texts", "Texts translated.", ["beam_width"], registry=r)
        self.failed_batches = Counter(
            "seq2seq_failed_batches", "Batches whose decode raised.", registry=r
        )
        self.failed_texts = Counter(
            "seq2seq_failed_texts", "Texts in batches whose decode raised.", registry=r
        )
        self.worker_restarts = Counter(
            "seq2seq_worker_restarts", "Restarts of the decode worker loop.", registry=r
        )
        self.rejected = Counter(
            "seq2seq_rejected", "Requests refused with 429 or 503.", ["reason"], registry=r
        )
        self.dropped_requests = Counter(
            "seq2seq_dropped_requests",
            "Requests not answered because their client disconnected first.",
            ["reason"],
            registry=r,
        )
        self.dropped_requests.labels(CLIENT_DISCONNECTED)  # shown, at 0, from the start
        self.dropped_texts = Counter(
            "seq2seq_dropped_texts",
            "Texts taken off the queue undecoded because their request ended first.",
            registry=r,
        )
        self.worker_healthy = Gauge(
            "seq2seq_worker_healthy", "1 while the decode worker runs and progresses.", registry=r
        )

    def observe_batch(self, size, seconds):
        self.batch_size.observe(size)
        self.batch_duration.observe(seconds)

    def observe_failed_batch(self, size):
        self.failed_batches.inc()
        self.failed_texts.inc(size)

    def observe_dropped_request(self):
        """A request whose client disconnected before its answer."""
        self.dropped_requests.labels(CLIENT_DISCONNECTED).inc()

    def observe_request(self, endpoint, method, status, seconds):
        self.requests.labels(endpoint, method, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)
        if status >= 400 and status != CLIENT_CLOSED_REQUEST:  # 499: nothing was answered
            self.errors.labels(endpoint, str(status)).inc()

    def render(self):
        """The text exposition format."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware: counts every HTTP request by route template, status and latency.

    The route is the one the router matched (`scope["route"]`, set while routing), so the
    label is its template; a request that matched none counts as `other`.

    Args:
        app: the ASGI app to wrap.
        metrics: a `ServerMetrics`.
    """

    def __init__(self, app, metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": CLIENT_CLOSED_REQUEST}  # no answer started: the client went first

        async def send_and_record(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        except BaseException:
            if status["code"] == CLIENT_CLOSED_REQUEST:
                status["code"] = 500
            raise
        finally:
            endpoint = getattr(scope.get("route"), "path", None) or "other"
            seconds = time.perf_counter() - start
            self.metrics.observe_request(endpoint, scope["method"], status["code"], seconds)
