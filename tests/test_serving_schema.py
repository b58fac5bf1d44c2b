"""Schemathesis against the server's own OpenAPI document, in-process (ASGI), bounded.

Every operation of /openapi.json is called with bodies generated from the schema (valid and,
in the negative phases, invalid ones) and every answer is checked: no 5xx, status codes and
headers and bodies as documented, schema-invalid data refused. `positive_data_acceptance` is
left out: the server refuses some schema-valid requests by design (a text longer than the
model's source length in tokens, an unknown model name), with a documented 4xx.
"""

import pytest
from hypothesis import HealthCheck, given, settings

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.checks import CHECKS  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402
from seq2seq_attn.serving.app import create_app  # noqa: E402
from seq2seq_attn.serving.service import Limits  # noqa: E402

EXAMPLES = 25  # per operation and mode
LEFT_OUT = {"positive_data_acceptance"}


@pytest.fixture(scope="module")
def app(tiny_export):
    app = create_app(tiny_export[0], limits=Limits(max_texts=4), batch_timeout_ms=1)
    app.state.service.batcher.start()  # schemathesis' ASGI client does not run the lifespan
    yield app
    app.state.service.batcher.stop()


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
