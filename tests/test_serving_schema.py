"""Schemathesis against the server's own OpenAPI document, with every check, bounded.

In-process (ASGI): every operation of /openapi.json is called with bodies generated from
the schema (valid and, in the negative phases, invalid ones) and every answer is checked: no
5xx, status codes and headers and bodies as documented, schema-invalid data refused, and
schema-valid data accepted (`positive_data_acceptance`): the schema states every limit the
server enforces. Live: schemathesis' command line, all checks, its coverage phase (the
bounds themselves) and fuzzing, against `seq2seq-attn serve` in its own process.

One limit has no JSON Schema form: source tokens per text (NFKC can turn one character into
18, byte fallback one into 4 tokens), so a text within `maxLength` characters can still be
refused with 422 `text_too_long`; the schema's descriptions say so. The generated texts of
these bounded, seeded runs stay within it.
"""

import json
import re
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings

jsonschema = pytest.importorskip("jsonschema")

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.checks import CHECKS  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402

from seq2seq_attn.interface import (  # noqa: E402
    MAX_LENGTH_RATIO_LIMIT,
    MAX_SEED,
    MAX_TEMPERATURE,
    MIN_TEMPERATURE,
)
from seq2seq_attn.serving.app import create_app  # noqa: E402
from seq2seq_attn.serving.schemas import NOT_BLANK  # noqa: E402
from seq2seq_attn.serving.service import Limits  # noqa: E402

EXAMPLES = 25  # per operation and mode
LEFT_OUT = set()  # every check runs
LIVE_EXAMPLES = 40  # per operation and phase of the command line (about 30 s in all)


@pytest.fixture(scope="module")
def app(tiny_export):
    app = create_app(tiny_export[0], limits=Limits(max_texts=4), batch_timeout_ms=1)
    app.state.service.batcher.start()  # schemathesis' ASGI client does not run the lifespan
    yield app
    app.state.service.batcher.stop()


@pytest.fixture(scope="module")
def client(tiny_export):
    from fastapi.testclient import TestClient

    with TestClient(create_app(tiny_export[0], limits=Limits(max_texts=4))) as client:
        yield client


@pytest.fixture(scope="module")
def operations(app):
    """label -> APIOperation, for every operation of /openapi.json."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    found = [result.ok() for result in schema.get_all_operations()]
    return {operation.label: operation for operation in found}


LABELS = [
    "GET /healthz",
    "GET /metrics",
    "GET /readyz",
    "GET /v1/models/{name}",
    "POST /translate",
    "POST /v1/models/{name}/versions/{version}:predict",
    "POST /v1/models/{name}:predict",
]
CHECKS_RUN = [check for check in CHECKS.get_all() if check.__name__ not in LEFT_OUT]


def test_every_operation_is_fuzzed(operations):
    assert sorted(operations) == sorted(LABELS)


# Invalid data exists only for the bodies (a GET here has no parameter but a free string).
CASES = [(label, GenerationMode.POSITIVE) for label in LABELS] + [
    (label, GenerationMode.NEGATIVE) for label in LABELS if label.startswith("POST")
]


@pytest.mark.parametrize("label, mode", CASES, ids=lambda x: getattr(x, "value", x))
def test_api_conforms_to_its_schema(operations, label, mode):
    @given(case=operations[label].as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case):
        case.call_and_validate(checks=CHECKS_RUN)

    run()


def test_schema_states_the_servers_limits(app):
    service, limits = app.state.service, app.state.service.limits
    schemas = app.openapi()["components"]["schemas"]
    props = schemas["TranslateRequest"]["properties"]
    texts = props["texts"]
    assert (texts["minItems"], texts["maxItems"]) == (1, limits.max_texts)
    string, prefixed = texts["items"]["oneOf"]  # a string, or a text with its target prefix
    assert string["maxLength"] == props["text"]["maxLength"] == limits.max_text_chars
    assert prefixed == {"$ref": "#/components/schemas/PrefixedText"}
    assert f"{service.max_source_tokens} source tokens" in props["text"]["description"]
    assert (props["beam_width"]["minimum"], props["beam_width"]["maximum"]) == (
        1,
        service.max_beam_width,
    )
    assert props["max_length"]["maximum"] == limits.max_output_length
    assert props["max_length_ratio"]["maximum"] == MAX_LENGTH_RATIO_LIMIT
    temperature = props["temperature"]
    assert (temperature["minimum"], temperature["maximum"]) == (MIN_TEMPERATURE, MAX_TEMPERATURE)
    assert props["seed"]["maximum"] == MAX_SEED  # an int: FastAPI's float would be 2**63
    instances = schemas["PredictRequest"]["properties"]["instances"]
    assert (instances["minItems"], instances["maxItems"]) == (1, limits.max_texts)
    assert schemas["TextInstance"]["properties"]["text"]["maxLength"] == limits.max_text_chars
    assert json.dumps(app.openapi()) == json.dumps(app.openapi())  # written in once, not twice


@pytest.mark.parametrize(
    "body, valid",
    [
        ({"texts": []}, False),
        ({"text": " \t\u3000\x1d"}, False),  # blank to Python's str.strip
        ({"text": "a", "top_k": 2, "top_p": 0.5}, False),
        ({"text": "a", "top_k": 2, "beam_width": 2}, False),
        ({"text": "a", "top_k": 2, "n_best": 2}, False),
        ({"text": "a", "temperature": 0.5}, False),
        ({"text": "a", "n_best": 5}, False),  # the tiny export's default beam is 4
        ({"text": "a", "n_best": 5, "beam_width": 4}, False),
        ({"text": "a", "n_best": 4}, True),
        ({"text": "a", "n_best": 5, "beam_width": 5}, True),
        ({"text": "a", "top_p": 0.5, "temperature": 0.5, "n_best": 1}, True),
        ({"text": "a", "beam_width": 2.0}, True),  # JSON Schema's integers include 2.0
    ],
)
def test_schema_and_server_agree(client, body, valid):
    """What the schema refuses the server refuses (422), and what it allows is answered."""
    components = client.app.openapi()["components"]
    schema = {"$ref": "#/components/schemas/TranslateRequest", "components": components}
    assert jsonschema.Draft202012Validator(schema).is_valid(body) == valid
    response = client.post("/translate", json=body)
    assert response.status_code == (200 if valid else 422), response.text


def test_not_blank_is_str_isspace_spelled_out():
    blank = re.compile(NOT_BLANK)
    for code in range(0x3001):  # every white space character is below U+3001
        assert (blank.fullmatch(chr(code)) is None) == chr(code).isspace(), hex(code)


def test_command_line_passes_every_check_against_a_live_server(tiny_export, load_test, tmp_path):
    """`schemathesis run URL --checks all` as the issue ran it, with a seed: deterministic."""
    with load_test.LocalServer(tiny_export[0], batch_timeout_ms=2) as server:
        command = [sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/openapi.json"]
        command += ["--checks", "all", "--phases", "coverage,fuzzing", "--seed", "1"]
        command += ["--max-examples", str(LIVE_EXAMPLES), "--no-color", "--report", "ndjson"]
        command += ["--report-dir", str(tmp_path)]
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "No issues found" in done.stdout
    events = [json.loads(line) for line in next(tmp_path.glob("*.ndjson")).open()]
    assert events, "schemathesis wrote no events"
