"""Request and response bodies of the server; FastAPI turns them into the OpenAPI document.

The document states every rule the server enforces, so that a request valid by the schema
is one the server accepts: the option bounds come from `seq2seq_attn.interface` (the ones
`DecodeOptions.check` enforces), the rules between options are written here, and the
server's own limits (`Limits`: texts, characters, beam width, output length) are written
into the document by `state_limits` when the app is built. One limit has no JSON Schema
form: source tokens per text (422 `text_too_long`); the descriptions state it.
"""

import warnings
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from seq2seq_attn.interface import (
    MAX_LENGTH_RATIO_LIMIT,
    MAX_SEED,
    MAX_TEMPERATURE,  # noqa: F401  (imported from here before 0.2)
    MIN_TEMPERATURE,
)

# A text holds a character other than white space (422 `empty_text`): a character outside
# Python's `str.isspace` (what `str.strip` removes), spelled out because regex dialects
# disagree on `\s` (ECMA-262 and Rust leave out U+001C..U+001F).
NOT_BLANK = (
    r"[^\u0009-\u000d\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a"
    r"\u2028\u2029\u202f\u205f\u3000]"
)


def __getattr__(name):
    if name == "MAX_LENGTH_RATIO":  # the 0.1 name of the bound
        message = f"{__name__}.{name} is deprecated; use interface.MAX_LENGTH_RATIO_LIMIT"
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        return MAX_LENGTH_RATIO_LIMIT
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _whole_number(value):
    """JSON Schema's integers include 8.0: a whole float becomes an int, the rest stays strict."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Integer = Annotated[int, BeforeValidator(_whole_number)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _exactly_one_of(*names):
    """JSON Schema: exactly one of the properties `names` is present."""
    return {"oneOf": [{"required": [name]} for name in names]}


_TEXT = {"pattern": NOT_BLANK}  # and `maxLength`, by `state_limits`
_TEXTS = {"minItems": 1, "items": {"type": "string", **_TEXT}}  # and `maxItems`


def _texts_schema(schema):
    """`texts`: at least one item, each a string or a `PrefixedText` (`oneOf`: the two are
    disjoint, a string is never an object)."""
    schema["minItems"] = 1
    schema["items"]["oneOf"] = schema["items"].pop("anyOf")


class PrefixedText(_Strict):
    """A text whose translation must start with `target_prefix`."""

    text: str = Field(json_schema_extra=_TEXT, description="The text, as an item of `texts`.")
    target_prefix: str = Field(
        "",
        description="The translation starts with this text verbatim and the model continues "
        "it (its pieces are forced and scored; `max_length` counts after them); '' is none.",
    )


class TextInstance(_Strict):
    text: str = Field(json_schema_extra=_TEXT)


class ColumnarInputs(_Strict):
    text: list[str] = Field(json_schema_extra=_TEXTS)


_AT_LEAST_1 = {"minimum": 1}  # in the schema; the service's own check gives the 422 message

# Optional fields default to None but are not nullable: `{"text": null}` is refused, as the
# schema says. "Exactly one of" is in the schema (oneOf) and checked by the routes. Bounds
# are schema only (`json_schema_extra`): the service checks them with `DecodeOptions.check`,
# whose message the 422 `bad_option` carries.
_SAMPLING = {"anyOf": [{"required": ["top_k"]}, {"required": ["top_p"]}]}
_OPTION_RULES = [  # `DecodeOptions.check`'s rules between options
    {"not": {"required": ["top_k", "top_p"]}},
    {  # sampling: beam width 1, one hypothesis; otherwise temperature 1
        "if": _SAMPLING,
        "then": {"properties": {"beam_width": {"const": 1}, "n_best": {"const": 1}}},
        "else": {"properties": {"temperature": {"const": 1}}},
    },
]


class PredictRequest(_Strict):
    """TF Serving REST predict: row format (`instances`) or columnar format (`inputs`)."""

    model_config = ConfigDict(json_schema_extra=_exactly_one_of("instances", "inputs"))

    signature_name: str = Field(
        None, json_schema_extra={"enum": ["serving_default"]}, description="The one signature."
    )
    instances: list[str | TextInstance] = Field(
        None,
        json_schema_extra={"minItems": 1},
        description="Row format. Each text has at most the characters and tokens of `text` "
        "in /translate.",
    )
    inputs: list[str] | ColumnarInputs = Field(None, description="Columnar format.")


class TranslateRequest(_Strict):
    """Exactly one of `text` and `texts`."""

    model_config = ConfigDict(
        json_schema_extra=_exactly_one_of("text", "texts") | {"allOf": _OPTION_RULES}
    )

    text: str = Field(
        None,
        json_schema_extra=_TEXT,
        description="One text (or use `texts`), not blank.",
    )
    texts: list[Annotated[str, Field(json_schema_extra=_TEXT)] | PrefixedText] = Field(
        None,
        json_schema_extra=_texts_schema,
        description="Several texts (or use `text`), each as `text`: a string, or an object "
        '`{"text": ..., "target_prefix": ...}` for a translation that starts with the '
        "given prefix.",
    )
    beam_width: Integer = Field(
        None, json_schema_extra=_AT_LEAST_1, description="1 is greedy; default from the export."
    )
    max_length: Integer = Field(
        None,
        json_schema_extra=_AT_LEAST_1,
        description="Most target tokens; default 2 * source tokens + 10.",
    )
    return_attention: bool = Field(False, description="Add attention and tokens.")
    n_best: Integer = Field(
        None,
        json_schema_extra=_AT_LEAST_1,
        description="Return the K best hypotheses per text as `nbest` (K <= beam_width).",
    )
    max_length_ratio: float = Field(
        None,
        json_schema_extra={"minimum": 0, "maximum": MAX_LENGTH_RATIO_LIMIT},
        description="Default most target tokens: ratio * source tokens + offset (ratio 2).",
    )
    max_length_offset: Integer = Field(
        None, json_schema_extra={"minimum": 0}, description="See max_length_ratio (offset 10)."
    )
    no_repeat_ngram: Integer = Field(
        None, json_schema_extra=_AT_LEAST_1, description="Never repeat an n-gram of this size."
    )
    top_k: Integer = Field(
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
        description="Sampling temperature (default 1; only when sampling).",
    )
    seed: Integer = Field(
        None,
        json_schema_extra={"minimum": 0, "maximum": MAX_SEED},
        description="Sampling seed: the same seed and text give the same translation.",
    )
    alignment: Literal["hard", "soft"] = Field(
        None,
        description="Add word alignments from the attention: `hard`, Pharaoh pairs "
        "`source-target` of word indices (each output word and its most attended source "
        "word); `soft`, per output word its source-word weights (sum 1). Words are split "
        "at spaces.",
    )
    scores: bool = Field(
        False,
        description="Add confidence: each output token's and word's log-probability and "
        "the sentence score, the mean log-probability per output token.",
    )
    full_vocabulary: bool = Field(
        False,
        description="True: decode over the whole target vocabulary. False (default): where "
        "the export has a lexical shortlist, decode each text over its own candidate target "
        "pieces (faster; a translation does not depend on the texts batched with it). Texts "
        "asking for scores or with a target prefix always use the whole vocabulary.",
    )
    placeholders: bool = Field(
        True,
        description="Take placeholders and markup (printf `%s` `%1$s` `%1` `%%`, `{name}`, "
        "`$(ARG)`, XML/HTML tags and entities) out of each text before translating and put "
        "each back into the translation, once, next to the aligned word; tags stay balanced. "
        "A text that is only placeholders is returned as it is. False: translate as sent.",
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


Alignment = str | list[list[float]]  # hard: a Pharaoh line; soft: (output words, source words)


class PlaceholdersPutBack(BaseModel):
    count: int = Field(description="Placeholders in the text; each is in the output once.")
    reinserted: int = Field(description="Those put back by alignment (the model lacked them).")
    removed: int = Field(description="Placeholder-like strings the model made up, taken out.")
    positions: list[int] = Field(description="Per placeholder, the output word it precedes.")


class Hypothesis(BaseModel):
    translation: str
    score: float
    alignment: Alignment | None = Field(None, description="With `alignment`, as `alignment`.")
    sentence_score: float | None = Field(None, description="With `scores`.")
    word_scores: list[float] | None = Field(None, description="With `scores`.")
    placeholders: PlaceholdersPutBack | None = Field(None, description="As `placeholders`.")


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
    source_words: list[list[str]] | None = Field(
        None, description="Per text, with `alignment` or `scores`: its words (split at spaces)."
    )
    target_words: list[list[str]] | None = Field(
        None, description="Per text, with `alignment` or `scores`: the translation's words."
    )
    alignment: list[Alignment] | None = Field(
        None,
        description="Per text, with `alignment`: hard, a Pharaoh line `0-0 1-2` (source word "
        "index - target word index); soft, per target word its source-word weights.",
    )
    sentence_scores: list[float] | None = Field(
        None, description="Per text, with `scores`: mean log-probability per output token."
    )
    word_scores: list[list[float]] | None = Field(
        None, description="Per text, with `scores`: each target word's log-probability."
    )
    token_scores: list[list[float]] | None = Field(
        None, description="Per text, with `scores`: each output token's log-probability."
    )
    placeholders: list[PlaceholdersPutBack] | None = Field(
        None, description="Per text, when a text had placeholders: what was put back where."
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


def _beam_rules(max_beam_width, default_beam_width):
    """JSON Schema: `n_best` at most the beam width (the request's, else the default)."""
    rules = []
    for k in range(2, max_beam_width + 1):
        then = {"properties": {"beam_width": {"minimum": k}}}
        if k > default_beam_width:
            then["required"] = ["beam_width"]
        rules.append({"if": {"required": ["n_best"], "properties": {"n_best": {"minimum": k}}},
                      "then": then})  # fmt: skip
    return rules


def state_limits(openapi, limits, max_source_tokens, max_beam_width, default_beam_width):
    """Writes a server's limits into its OpenAPI document `openapi` (a dict, in place).

    Args:
        limits: the server's `Limits` (`max_texts`, `max_text_chars`, `max_output_length`).
        max_source_tokens: source tokens per text, [START] and [END] included.
        max_beam_width: the widest beam it decodes; default_beam_width: without `beam_width`.
    """
    _state_request_limits(openapi, limits, max_source_tokens, max_beam_width, default_beam_width)
    return openapi


def state_model(openapi, model_name, version):
    """Writes the one model name and version a server has into the path parameters of its
    OpenAPI document `openapi` (in place): any other is a 404."""
    for operation in (op for path in openapi["paths"].values() for op in path.values()):
        for parameter in operation.get("parameters", ()):
            known = {"name": model_name, "version": version}.get(parameter["name"])
            if parameter["in"] == "path" and known is not None:
                parameter["schema"]["enum"] = [known]
    return openapi


def _state_request_limits(openapi, limits, max_source_tokens, max_beam_width, default_beam_width):
    schemas = openapi["components"]["schemas"]
    text = {"maxLength": limits.max_text_chars}
    texts = {"maxItems": limits.max_texts, "items": {"type": "string", **_TEXT, **text}}
    prefixed = schemas["PrefixedText"]["properties"]
    prefixed["text"].update(text)
    prefixed["target_prefix"].update(text)
    tokens = (
        f" At most {limits.max_text_chars} characters and {max_source_tokens} source tokens "
        "with [START] and [END] per text (422 `text_too_long` beyond)."
    )
    translate = schemas["TranslateRequest"]
    props = translate["properties"]
    exact = TranslateRequest.model_json_schema()["properties"]
    for name, prop in props.items():  # FastAPI writes bounds as floats: 2**63 - 1 rounds up
        prop.update({k: exact[name][k] for k in ("minimum", "maximum") if k in exact[name]})
    props["text"].update(text, description=exact["text"]["description"] + tokens)
    props["texts"].update(maxItems=limits.max_texts)
    props["texts"]["description"] = exact["texts"]["description"] + tokens
    for item in props["texts"]["items"]["oneOf"]:
        if item.get("type") == "string":
            item.update(text)
    props["beam_width"]["maximum"] = max_beam_width
    props["n_best"]["maximum"] = max_beam_width
    props["max_length"]["maximum"] = limits.max_output_length
    translate["allOf"] = _OPTION_RULES + _beam_rules(max_beam_width, default_beam_width)
    schemas["TextInstance"]["properties"]["text"].update(text)
    schemas["ColumnarInputs"]["properties"]["text"].update(texts)
    instances = schemas["PredictRequest"]["properties"]["instances"]
    instances["maxItems"] = limits.max_texts
    for item in instances["items"]["anyOf"]:
        if item.get("type") == "string":
            item.update(_TEXT, **text)
    for inputs in schemas["PredictRequest"]["properties"]["inputs"]["anyOf"]:
        if inputs.get("type") == "array":
            inputs.update(texts, minItems=1)
