"""Request and response bodies of the server; FastAPI turns them into the OpenAPI document."""

from pydantic import BaseModel, ConfigDict, Field

from seq2seq_attn.interface import MAX_SEED

# Bounds of the server on top of the option rules: no overflowing length, no infinite logits.
MAX_LENGTH_RATIO = 100
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.01, 100


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _exactly_one_of(*names):
    """JSON Schema: exactly one of the properties `names` is present."""
    return {"oneOf": [{"required": [name]} for name in names]}


class TextInstance(_Strict):
    text: str


class ColumnarInputs(_Strict):
    text: list[str]


_AT_LEAST_1 = {"minimum": 1}  # in the schema; the route's own check gives the 422 message

# Optional fields default to None but are not nullable: `{"text": null}` is refused, as the
# schema says. "Exactly one of" is in the schema (oneOf) and checked by the routes.


class PredictRequest(_Strict):
    """TF Serving REST predict: row format (`instances`) or columnar format (`inputs`)."""

    model_config = ConfigDict(json_schema_extra=_exactly_one_of("instances", "inputs"))

    signature_name: str = Field(None, description='Only "serving_default".')
    instances: list[str | TextInstance] = Field(None, description="Row format.")
    inputs: list[str] | ColumnarInputs = Field(None, description="Columnar format.")


class TranslateRequest(_Strict):
    """Exactly one of `text` and `texts`."""

    model_config = ConfigDict(json_schema_extra=_exactly_one_of("text", "texts"))

    text: str = Field(None, description="One text (or use `texts`).")
    texts: list[str] = Field(None, description="Several texts (or use `text`).")
    beam_width: int = Field(
        None, json_schema_extra=_AT_LEAST_1, description="1 is greedy; default from the export."
    )
    max_length: int = Field(
        None,
        json_schema_extra=_AT_LEAST_1,
        description="Most target tokens; default 2 * source tokens + 10.",
    )
    return_attention: bool = Field(False, description="Add attention and tokens.")
    n_best: int = Field(
        None,
        json_schema_extra=_AT_LEAST_1,
        description="Return the K best hypotheses per text as `nbest` (K <= beam_width).",
    )
    max_length_ratio: float = Field(
        None,
        json_schema_extra={"minimum": 0, "maximum": MAX_LENGTH_RATIO},
        description="Default most target tokens: ratio * source tokens + offset (ratio 2).",
    )
    max_length_offset: int = Field(
        None, json_schema_extra={"minimum": 0}, description="See max_length_ratio (offset 10)."
    )
    no_repeat_ngram: int = Field(
        None, json_schema_extra=_AT_LEAST_1, description="Never repeat an n-gram of this size."
    )
    top_k: int = Field(
        None,
        json_schema_extra=_AT_LEAST_1,
        description="Sample among the K likeliest tokens (beam width 1).",
    )
    top_p: float = Field(
        None,
        json_schema_extra={"exclusiveMinimum": 0, "maximum": 1},
        description="Sample from the smallest set of tokens with mass >= P (beam width 1).",
    )
    temperature: float = Field(
        None,
        json_schema_extra={"minimum": MIN_TEMPERATURE, "maximum": MAX_TEMPERATURE},
        description="Sampling temperature (default 1).",
    )
    seed: int = Field(
        None,
        json_schema_extra={"minimum": 0, "maximum": MAX_SEED},
        description="Sampling seed: the same seed and text give the same translation.",
    )


class Prediction(BaseModel):
    translation: str
    tokens: list[int]
    scores: float


class ColumnarOutputs(BaseModel):
    translation: list[str]
    tokens: list[list[int]]
    scores: list[float]


class PredictResponse(BaseModel):
    predictions: list[Prediction] | None = None
    outputs: ColumnarOutputs | None = None


class Hypothesis(BaseModel):
    translation: str
    score: float


class TranslateResponse(BaseModel):
    model: str
    beam_width: int
    translations: list[str]
    scores: list[float]
    nbest: list[list[Hypothesis]] | None = Field(
        None, description="Per text, with `n_best`: the K best hypotheses, best first."
    )
    seed: int | None = Field(None, description="The sampling seed used, when sampling.")
    source_tokens: list[list[str]] | None = Field(
        None, description="Per text: source tokens, the columns of `attention`."
    )
    target_tokens: list[list[str]] | None = Field(
        None, description="Per text: output tokens through [END], the rows of `attention`."
    )
    attention: list[list[list[float]]] | None = Field(
        None, description="Per text: (target tokens, source tokens) attention weights."
    )


class Status(BaseModel):
    error_code: str
    error_message: str


class VersionStatus(BaseModel):
    version: str
    state: str
    status: Status


class ModelStatusResponse(BaseModel):
    model_version_status: list[VersionStatus]


class HealthResponse(BaseModel):
    status: str


class ErrorResponse(BaseModel):
    error: str
    code: str
    details: list[dict] | None = None


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer"},
    }
}
ERROR_RESPONSES = {
    code: {"model": ErrorResponse, "description": text}
    | ({"headers": _RETRY_AFTER} if code in (429, 503) else {})
    for code, text in [
        (400, "Malformed body: not JSON, not UTF-8, bad signature_name"),
        (404, "Unknown model name or version"),
        (413, "Body too large"),
        (422, "Valid JSON but not an acceptable request"),
        (429, "Too many texts waiting: retry after `Retry-After` seconds"),
        (500, "Decoding this request's batch failed (logged on the server)"),
        (503, "Not ready, shutting down, or no result in time: retry after `Retry-After`"),
    ]
}
