"""Property-based fuzzing of the request schema against the server's own OpenAPI document.

Hypothesis sends JSON bodies that are near the schema (right keys, any JSON values), arbitrary
JSON, and arbitrary bytes. Every answer must be a 2xx or a 4xx (never a 5xx), a 4xx carries a
JSON error, and every 2xx body validates against the response schema that /openapi.json
publishes for that path.
"""

import json

import jsonschema
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seq2seq_attn.serving.app import DEFAULT_MODEL_NAME, create_app
from seq2seq_attn.serving.service import Limits

PREDICT = f"/v1/models/{DEFAULT_MODEL_NAME}:predict"
OPENAPI_PATHS = {"/translate": "/translate", PREDICT: "/v1/models/{name}:predict"}
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure always reproduces
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
texts = st.text(max_size=60) | st.sampled_from(["March 3, 1999", "12/05/1970", "1 de mayo"])
SEEN = {"2xx": 0, "4xx": 0}  # answers checked so far, to show both kinds were exercised
small_ints = st.integers(min_value=-2, max_value=12)


def near(fields):
    """Dicts with a subset of `fields`, each value from its strategy or any JSON value."""
    return st.fixed_dictionaries(
        {}, optional={k: v | json_values for k, v in fields.items()}
    ) | st.dictionaries(st.sampled_from(sorted(fields) + ["extra"]), json_values, max_size=4)


words = st.text(min_size=1, max_size=25).filter(str.strip) | st.sampled_from(["12/05/1970"])
valid_translate = st.fixed_dictionaries(
    {},
    optional={
        "beam_width": st.integers(min_value=1, max_value=8),
        "max_length": st.integers(min_value=1, max_value=30),
        "return_attention": st.booleans(),
    },
).flatmap(
    lambda rest: st.one_of(
        st.fixed_dictionaries({"text": words, **{k: st.just(v) for k, v in rest.items()}}),
        st.fixed_dictionaries(
            {"texts": st.lists(words, min_size=1, max_size=4)}
            | {k: st.just(v) for k, v in rest.items()}
        ),
    )
)
translate_bodies = valid_translate | near(
    {
        "text": texts,
        "texts": st.lists(texts, max_size=6),
        "beam_width": small_ints,
        "max_length": small_ints | st.integers(min_value=200, max_value=400),
        "return_attention": st.booleans(),
    }
)
valid_predict = st.fixed_dictionaries(
    {"instances": st.lists(words | st.fixed_dictionaries({"text": words}), min_size=1, max_size=4)}
) | st.fixed_dictionaries({"inputs": st.lists(words, min_size=1, max_size=4)})
predict_bodies = valid_predict | near(
    {
        "instances": st.lists(texts | st.fixed_dictionaries({"text": texts}), max_size=6),
        "inputs": st.lists(texts, max_size=6) | st.fixed_dictionaries({"text": st.lists(texts)}),
        "signature_name": st.sampled_from(["serving_default", "other"]),
    }
)


@pytest.fixture(scope="module")
def client(tiny_export):
    limits = Limits(max_body_bytes=2048, max_texts=4, max_text_chars=50, max_source_tokens=30)
    with TestClient(create_app(tiny_export[0], limits=limits, batch_timeout_ms=0)) as c:
        yield c


@pytest.fixture(scope="module")
def validators(client):
    """Path -> a JSON Schema validator of that path's 200 response, from /openapi.json."""
    spec = client.get("/openapi.json").json()
    out = {}
    for path, template in OPENAPI_PATHS.items():
        schema = spec["paths"][template]["post"]["responses"]["200"]["content"]
        root = dict(schema["application/json"]["schema"], components=spec["components"])
        out[path] = jsonschema.Draft202012Validator(root)
    return out


def check(client, validators, path, content):
    response = client.post(path, content=content)
    assert 200 <= response.status_code < 500, (content, response.status_code, response.text)
    body = response.json()
    if response.status_code >= 400:
        assert isinstance(body["error"], str) and body["error"], body
        SEEN["4xx"] += 1
        return
    validators[path].validate(body)
    SEEN["2xx"] += 1


@FUZZ
@given(body=translate_bodies)
def test_translate_schema_fuzz(client, validators, body):
    check(client, validators, "/translate", json.dumps(body).encode())


@FUZZ
@given(body=predict_bodies)
def test_predict_schema_fuzz(client, validators, body):
    check(client, validators, PREDICT, json.dumps(body).encode())


@FUZZ
@given(
    path=st.sampled_from(sorted(OPENAPI_PATHS)),
    content=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()),
)
def test_arbitrary_bodies_fuzz(client, validators, path, content):
    check(client, validators, path, content)


def test_still_serving_after_fuzz(client):
    if sum(SEEN.values()):  # the fuzz tests ran in this session: both outcomes came up
        assert SEEN["2xx"] >= 10 and SEEN["4xx"] >= 10, SEEN
    assert client.get("/readyz").status_code == 200
    response = client.post("/translate", json={"text": "March 3, 1999", "return_attention": True})
    assert response.status_code == 200
    assert client.get("/metrics").status_code == 200
