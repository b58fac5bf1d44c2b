"""`seq2seq-attn serve` as an orchestrator sees it: a real process on a loopback port, SIGTERM.

On SIGTERM the server must report not ready first, keep answering while it drains, finish
the batch in flight, and exit 0 (serving/server.py).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request

import pytest

TEXT = "March 3, 1999"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _translate(url, out):
    request = urllib.request.Request(
        url + "/translate", json.dumps({"text": TEXT}).encode(), method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            out.append((response.status, json.loads(response.read())))
    except urllib.error.HTTPError as error:
        out.append((error.code, json.loads(error.read())))


def _start(args, port):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        try:
            if _get(url + "/readyz") == 200:
                return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    pytest.fail("the server did not become ready in 60 s")


SLOW_SERVER = """
import sys, time
from seq2seq_attn.serving.app import create_app, load_model
from seq2seq_attn.serving.server import run_app

class Slow:
    def __init__(self, model):
        self.model = model
    def decode(self, *args, **kwargs):
        time.sleep(1.5)  # a batch in flight when SIGTERM comes
        return self.model.decode(*args, **kwargs)

export_dir, port = sys.argv[1], int(sys.argv[2])
app = create_app(export_dir, model=Slow(load_model(export_dir, "onnx")))
run_app(app, port=port, drain_s=1.5, shutdown_timeout_s=20, log_level="warning")
print("exited cleanly")
"""


def test_sigterm_drains_then_exits_0(tiny_export, tmp_path):
    script = tmp_path / "slow_server.py"
    script.write_text(textwrap.dedent(SLOW_SERVER))
    port = _free_port()
    process, url = _start([sys.executable, str(script), str(tiny_export[0]), str(port)], port)
    try:
        answers = []
        in_flight = threading.Thread(target=_translate, args=(url, answers))
        in_flight.start()
        time.sleep(0.3)  # the request is in the worker's batch now
        process.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        assert _get(url + "/readyz") == 503  # not ready first ...
        assert _get(url + "/healthz") == 200  # ... but alive, and still answering
        late = []
        _translate(url, late)
        in_flight.join(30)
        assert answers and answers[0][0] == 200, answers
        assert late and late[0][0] == 200, late
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert "exited cleanly" in process.stdout.read()


def test_cli_serve_exits_0_on_sigterm(tiny_export):
    port = _free_port()
    args = [sys.executable, "-m", "seq2seq_attn.cli", "serve", str(tiny_export[0])]
    args += ["--port", str(port), "--drain-seconds", "0.5"]
    process, url = _start(args, port)
    try:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    with pytest.raises(OSError):
        _get(url + "/healthz")  # the port is closed
