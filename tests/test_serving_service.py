"""The server under faults and overload (serving/service.py, serving/batching.py via the app).

Runtime faults are injected by wrapping the tiny export's runtime; everything goes through
the app as a client sees it (TestClient, in-process).
"""

import collections
import concurrent.futures
import threading
import time

import pytest
from fastapi.testclient import TestClient

from seq2seq_attn.inference.runtime import OnnxModel
from seq2seq_attn.serving.app import create_app
from seq2seq_attn.serving.service import Limits

TEXTS = ["March 3, 1999", "tuesday 4 june 2001", "12/05/1970", "1 de agosto de 1964"]


class Faulty:
    """A runtime that raises on chosen decode calls (1-based) and can be held on a gate."""

    def __init__(self, model, fail_calls=(), delay=0.0):
        self.model, self.fail_calls, self.delay = model, set(fail_calls), delay
        self.calls = 0
        self.gate = threading.Event()
        self.gate.set()

    def decode(self, *args, **kwargs):
        return self._call(self.model.decode, *args, **kwargs)

    def greedy_graph(self, *args, **kwargs):  # plain greedy batches run the single graph
        return self._call(self.model.greedy_graph, *args, **kwargs)

    def _call(self, fn, *args, **kwargs):
        self.calls += 1
        self.gate.wait(30)
        time.sleep(self.delay)
        if self.calls in self.fail_calls:
            raise RuntimeError(f"injected fault in decode call {self.calls}")
        return fn(*args, **kwargs)


class Counting:
    """A runtime that counts which of its decodes the server calls."""

    def __init__(self, model, graph=True):
        self.model, self.calls = model, collections.Counter()
        if graph:
            self.greedy_graph = lambda *a, **k: self._count("greedy_graph", *a, **k)

    def decode(self, *args, **kwargs):
        return self._count("decode", *args, **kwargs)

    def _count(self, name, *args, **kwargs):
        self.calls[name] += 1
        return getattr(self.model, name)(*args, **kwargs)


@pytest.fixture(scope="module")
def export_dir(tiny_export):
    return tiny_export[0]


@pytest.fixture(scope="module")
def runtime(export_dir):
    return OnnxModel(export_dir)


def _metric(client, name):
    text = client.get("/metrics").text
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def _post_all(client, bodies):
    with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda b: client.post("/translate", json=b), bodies))


def _wait_for_calls(model, n):
    deadline = time.monotonic() + 10
    while model.calls < n:
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_a_fault_fails_only_its_batch(export_dir, runtime, caplog):
    faulty = Faulty(runtime, fail_calls={2})
    app = create_app(export_dir, model=faulty, max_batch_size=16, batch_timeout_ms=0)
    with TestClient(app) as client:
        expected = client.post("/translate", json={"texts": TEXTS, "beam_width": 1}).json()
        faulty.gate.clear()  # call 2 waits at the gate, holding one text; the rest queue
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            held = pool.submit(client.post, "/translate", json={"text": TEXTS[0], "beam_width": 1})
            _wait_for_calls(faulty, 2)
            queued = [
                pool.submit(client.post, "/translate", json={"text": t, "beam_width": 1})
                for t in TEXTS
            ]
            while app.state.service.batcher.depth() < len(TEXTS):
                time.sleep(0.005)
            faulty.gate.set()
            failed, after = held.result(), [f.result() for f in queued]
        assert failed.status_code == 500 and failed.json()["code"] == "internal"
        assert "injected" not in failed.text  # the cause is logged, not sent to clients
        # the next batch (call 3) holds the queued texts and succeeds
        assert [r.status_code for r in after] == [200] * len(TEXTS)
        assert [r.json()["translations"][0] for r in after] == expected["translations"]
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        assert _metric(client, "seq2seq_failed_batches_total") == 1
        assert _metric(client, "seq2seq_failed_texts_total") == 1
        assert _metric(client, "seq2seq_worker_healthy") == 1
    logged = [r for r in caplog.records if "injected fault" in str(r.exc_info)]
    assert len(logged) == 1


def test_a_burst_gets_200_or_429_with_retry_after(export_dir, runtime):
    slow = Faulty(runtime, delay=0.02)
    limits = Limits(max_queue=8, retry_after_s=2)
    app = create_app(export_dir, model=slow, limits=limits, max_batch_size=4, batch_timeout_ms=1)
    bodies = [
        {"texts": TEXTS[: 1 + i % 3], "beam_width": 1 + i % 3, "max_length": 5 + i % 20}
        for i in range(96)
    ]
    with TestClient(app) as client:
        responses = _post_all(client, bodies)
        statuses = sorted({r.status_code for r in responses})
        assert statuses == [200, 429], statuses
        for response in responses:
            if response.status_code == 429:
                assert response.headers["retry-after"] == "2"
                assert response.json()["code"] == "overloaded"
        assert client.get("/readyz").status_code == 200  # overload passes, ready again
        assert client.post("/translate", json={"text": TEXTS[0]}).status_code == 200
        assert _metric(client, 'seq2seq_rejected_total{reason="overloaded"}') > 0
        assert app.state.service.batcher.depth() == 0


def test_a_request_that_waits_too_long_gets_503(export_dir, runtime):
    held = Faulty(runtime)
    held.gate.clear()
    app = create_app(export_dir, model=held, limits=Limits(request_timeout_s=0.3))
    with TestClient(app) as client:
        response = client.post("/translate", json={"text": TEXTS[0]})
        assert response.status_code == 503 and response.json()["code"] == "timeout"
        assert response.headers["retry-after"] == "1"
        held.gate.set()
        assert client.post("/translate", json={"text": TEXTS[1]}).status_code == 200


def test_health_reports_a_stuck_worker(export_dir, runtime):
    stuck = Faulty(runtime)
    app = create_app(export_dir, model=stuck, limits=Limits(stall_timeout_s=0.2))
    with TestClient(app) as client:
        stuck.gate.clear()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            first = pool.submit(client.post, "/translate", json={"text": TEXTS[0]})
            _wait_for_calls(stuck, 1)
            second = pool.submit(client.post, "/translate", json={"text": TEXTS[1]})
            time.sleep(0.4)
            health = client.get("/healthz")
            assert health.status_code == 503 and health.json()["code"] == "unhealthy"
            assert "no progress" in health.json()["error"]
            assert client.get("/readyz").status_code == 503
            assert _metric(client, "seq2seq_worker_healthy") == 0
            stuck.gate.set()
            assert first.result().status_code == 200 and second.result().status_code == 200
        assert client.get("/healthz").status_code == 200


def test_a_dead_worker_fails_health(export_dir, runtime):
    app = create_app(export_dir, model=runtime)
    with TestClient(app) as client:
        app.state.service.batcher.stop()  # as if the thread had died
        health = client.get("/healthz")
        assert health.status_code == 503 and "not running" in health.json()["error"]
        response = client.post("/translate", json={"text": TEXTS[0]})
        assert response.status_code == 503 and response.headers["retry-after"] == "1"


def test_405_names_the_allowed_methods(export_dir, runtime):
    with TestClient(create_app(export_dir, model=runtime)) as client:
        response = client.get("/translate")
        assert response.status_code == 405 and response.headers["allow"] == "POST"
        assert response.json()["code"] == "method_not_allowed"
        assert "GET" in client.delete("/healthz").headers["allow"]


def test_openapi_says_exactly_one_of_text_and_texts(export_dir, runtime):
    jsonschema = pytest.importorskip("jsonschema")
    with TestClient(create_app(export_dir, model=runtime)) as client:
        spec = client.get("/openapi.json").json()
        components = spec["components"]  # an item of `texts` may be a $ref to PrefixedText
        schema = dict(components["schemas"]["TranslateRequest"], components=components)
        validator = jsonschema.Draft202012Validator(schema)
        for body in ({}, {"text": "a", "texts": ["b"]}, {"text": None}, {"beam_width": 2}):
            assert not validator.is_valid(body), body
            assert client.post("/translate", json=body).status_code == 422, body
        for body in ({"text": "March 3, 1999"}, {"texts": ["March 3, 1999"], "beam_width": 2}):
            assert validator.is_valid(body), body
            assert client.post("/translate", json=body).status_code == 200, body


def test_plain_greedy_runs_the_single_graph_with_the_host_searchs_results(export_dir, runtime):
    both, host_only = Counting(runtime), Counting(runtime, graph=False)
    answers = {}
    for name, model in (("graph", both), ("host", host_only)):
        app = create_app(export_dir, model=model, max_batch_size=16, batch_timeout_ms=0)
        with TestClient(app) as client:  # one batch of mixed lengths
            greedy = {"texts": TEXTS, "beam_width": 1}  # the export's default is beam 4
            answers[name] = client.post("/translate", json=greedy).json()
            one = client.post("/translate", json={"text": TEXTS[1], "beam_width": 1})
            assert one.status_code == 200
    assert both.calls == {"greedy_graph": 2} and host_only.calls == {"decode": 2}
    assert answers["graph"]["translations"] == answers["host"]["translations"]


@pytest.mark.parametrize(
    "options",
    [
        {},  # the export's default beam width, 4
        {"beam_width": 1, "max_length": 5},
        {"beam_width": 1, "no_repeat_ngram": 2},
        {"beam_width": 1, "max_length_ratio": 1.5},
        {"beam_width": 1, "max_length_offset": 4},
        {"beam_width": 1, "top_k": 3, "seed": 1},
    ],
)
def test_any_option_runs_the_host_search(export_dir, runtime, options):
    counting = Counting(runtime)
    app = create_app(export_dir, model=counting, max_batch_size=16, batch_timeout_ms=0)
    with TestClient(app) as client:
        response = client.post("/translate", json={"text": TEXTS[0], **options})
    assert response.status_code == 200, response.text
    assert counting.calls == {"decode": 1}
