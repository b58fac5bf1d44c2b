"""The HTTP translation server: FastAPI on uvicorn over an export directory, without TensorFlow.

    seq2seq-attn serve EXPORT_DIR [--backend onnx|tflite] [--host 127.0.0.1] [--port 8080]

Endpoints (see serving/README.md for examples):

    POST /v1/models/{name}:predict    TF Serving REST predict: {"instances": [...]} in,
                                      {"predictions": [...]} out ({"inputs"} -> {"outputs"})
    POST /translate                   {"text" | "texts", "beam_width", "max_length",
                                      "return_attention"} -> translations, scores, attention
    GET  /v1/models/{name}            TF Serving model status
    GET  /healthz, /readyz            liveness, readiness (the decode worker runs)
    GET  /metrics                     Prometheus text format
    GET  /openapi.json                the OpenAPI schema
    GET  /                            a web page: translation and attention heatmap

Texts are tokenized in the request handler (pure Python, `seq2seq_attn.wordpiece`) and
decoded by one worker thread that owns the runtime (`serving.batching.MicroBatcher`): texts of
concurrent requests with the same beam width share a batch. A client mistake is a 4xx with
`{"error": message, "code": short_code}`; TF Serving clients read the `error` string.
"""

import asyncio
import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from seq2seq_attn import wordpiece
from seq2seq_attn.errors import UserError
from serving.batching import MicroBatcher, UnavailableError
from serving.metrics import MetricsMiddleware, ServerMetrics

DEFAULT_MODEL_NAME = "seq2seq_attn"
MODEL_VERSION = "1"  # the version directory in serving/tfserving/models.config
BACKENDS = ("onnx", "tflite")
STATIC_DIR = Path(__file__).parent / "static"
ATTENTION_DECIMALS = 6


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; beyond it the answer is a 4xx.

    Attributes:
        max_body_bytes: request body size (413 beyond).
        max_texts: texts per request.
        max_text_chars: characters per text.
        max_source_tokens: source tokens per text, [START] and [END] included (also capped
            by the export's static source length, if it has one).
        max_beam_width: largest beam (also capped by the target vocabulary size).
        max_output_length: largest `max_length`; the default per text is the runtime's
            2 * source tokens + 10, capped by this.
        request_timeout_s: a request waiting longer for the decode worker gets a 503.
        max_queue: texts waiting for the worker; beyond it new requests get a 503.
    """

    max_body_bytes: int = 64 * 1024
    max_texts: int = 32
    max_text_chars: int = 1000
    max_source_tokens: int = 128
    max_beam_width: int = 8
    max_output_length: int = 300
    request_timeout_s: float = 30.0
    max_queue: int = 1024


class ApiError(Exception):
    """A request the server refuses: HTTP status, short code, message for the client."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error_response(status, code, message, details=None, headers=None):
    body = {"error": message, "code": code}
    if details:
        body["details"] = details
    return JSONResponse(body, status_code=status, headers=headers)


# ---- request and response schemas (they make the OpenAPI document) ----


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TextInstance(_Strict):
    text: str


class ColumnarInputs(_Strict):
    text: list[str]


class PredictRequest(_Strict):
    """TF Serving REST predict: row format (`instances`) or columnar format (`inputs`)."""

    signature_name: str | None = Field(None, description='Only "serving_default".')
    instances: list[str | TextInstance] | None = None
    inputs: list[str] | ColumnarInputs | None = None


class TranslateRequest(_Strict):
    text: str | None = Field(None, description="One text (or use `texts`).")
    texts: list[str] | None = Field(None, description="Several texts.")
    beam_width: int | None = Field(None, description="1 is greedy; default from the export.")
    max_length: int | None = Field(
        None, description="Most target tokens; default 2 * source tokens + 10."
    )
    return_attention: bool = Field(False, description="Add attention and tokens.")


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


class TranslateResponse(BaseModel):
    model: str
    beam_width: int
    translations: list[str]
    scores: list[float]
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


ERROR_RESPONSES = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in [
        (400, "Malformed body: not JSON, not UTF-8, bad signature_name"),
        (404, "Unknown model name or version"),
        (413, "Body too large"),
        (422, "Valid JSON but not an acceptable request"),
        (503, "Overloaded, shutting down, or timed out"),
    ]
}


# ---- the body: size limit, UTF-8, JSON whatever the Content-Type says ----


class JsonBodyMiddleware:
    """Pure ASGI middleware for request bodies.

    Refuses bodies over `max_bytes` (413, before reading more than that) and bodies that are
    not UTF-8 (400), and has FastAPI read every body as JSON whatever the Content-Type says
    (`curl -d` sends form encoding; TF Serving ignores the header too).
    """

    def __init__(self, app, max_bytes):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        try:
            declared = int(headers.get(b"content-length", b"0"))
        except ValueError:
            declared = 0
        if declared > self.max_bytes:
            await self._refuse(scope, receive, send, 413, "body_too_large", declared)
            return
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                await self._refuse(scope, receive, send, 413, "body_too_large", len(body))
                return
        try:
            bytes(body).decode("utf-8")
        except UnicodeDecodeError as error:
            response = _error_response(
                400, "invalid_utf8", f"request body is not valid UTF-8 (byte {error.start})"
            )
            await response(scope, receive, send)
            return
        headers[b"content-type"] = b"application/json"
        scope = dict(scope, headers=list(headers.items()))
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope, receive, send, status, code, size):
        message = f"request body is {size} bytes; the limit is {self.max_bytes}"
        response = _error_response(status, code, message, headers={"Connection": "close"})
        await response(scope, receive, send)


# ---- the translator: tokenizers + batcher ----


class Translator:
    """Tokenizes, checks the limits, queues texts on the batcher and formats results."""

    def __init__(self, export_dir, model, limits, max_batch_size, batch_timeout_ms, metrics):
        export_dir = Path(export_dir)
        self.manifest = json.loads((export_dir / "manifest.json").read_text())
        tokenizers = wordpiece.WordPiecePair.load(export_dir / "tokenizer")
        self.source, self.target = tokenizers.source, tokenizers.target
        special = self.manifest["special_ids"]
        self.start_id, self.end_id = int(special["start"]), int(special["end"])
        self.static_length = self.manifest.get("max_source_length")
        self.default_beam_width = int(self.manifest.get("beam_width") or 1)
        self.limits = limits
        self.max_source_tokens = limits.max_source_tokens
        if self.static_length:
            self.max_source_tokens = min(self.max_source_tokens, int(self.static_length))
        self.max_beam_width = min(limits.max_beam_width, self.target.vocab_size)
        self.default_beam_width = min(self.default_beam_width, self.max_beam_width)
        self.model = model
        self.metrics = metrics
        self.batcher = MicroBatcher(
            self._decode,
            self.end_id,
            max_batch_size=max_batch_size,
            batch_timeout_ms=batch_timeout_ms,
            max_queue=limits.max_queue,
            pad_to=self.static_length,
            on_batch=metrics.observe_batch,
        )

    def _decode(self, ids, beam_width, max_length):
        return self.model.decode(
            ids, self.start_id, self.end_id, beam_width=beam_width, max_length=max_length
        )

    def check_texts(self, texts):
        if not texts:
            raise ApiError(422, "no_texts", "no texts given: send at least one")
        if len(texts) > self.limits.max_texts:
            raise ApiError(
                422,
                "too_many_texts",
                f"{len(texts)} texts in one request; the limit is {self.limits.max_texts}",
            )

    def encode(self, index, text):
        """Source ids of one text, or ApiError naming the text by its index."""
        if not text.strip():
            raise ApiError(422, "empty_text", f"text {index} is empty")
        if len(text) > self.limits.max_text_chars:
            raise ApiError(
                422,
                "text_too_long",
                f"text {index} has {len(text)} characters; "
                f"the limit is {self.limits.max_text_chars}",
            )
        ids = self.source.encode(text)
        if len(ids) > self.max_source_tokens:
            raise ApiError(
                422,
                "text_too_long",
                f"text {index} has {len(ids)} tokens with [START] and [END]; "
                f"the limit is {self.max_source_tokens}",
            )
        return ids

    def resolve_beam_width(self, beam_width):
        if beam_width is None:
            return self.default_beam_width
        if not 1 <= beam_width <= self.max_beam_width:
            raise ApiError(
                422,
                "bad_beam_width",
                f"beam_width must be between 1 and {self.max_beam_width}, got {beam_width}",
            )
        return beam_width

    def resolve_max_length(self, max_length, ids):
        if max_length is None:
            source_length = self.static_length or len(ids)
            return min(2 * source_length + 10, self.limits.max_output_length)
        if not 1 <= max_length <= self.limits.max_output_length:
            raise ApiError(
                422,
                "bad_max_length",
                f"max_length must be between 1 and {self.limits.max_output_length}, "
                f"got {max_length}",
            )
        return max_length

    async def translate(self, texts, beam_width=None, max_length=None):
        """Per text: dict with ids, tokens, score, attention; ApiError for a bad request."""
        self.check_texts(texts)
        sources = [self.encode(i, text) for i, text in enumerate(texts)]
        beam_width = self.resolve_beam_width(beam_width)
        lengths = [self.resolve_max_length(max_length, ids) for ids in sources]
        futures = []
        try:
            for ids, length in zip(sources, lengths, strict=True):
                futures.append(self.batcher.submit(ids, beam_width, length))
            waiting = asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
            results = await asyncio.wait_for(waiting, self.limits.request_timeout_s)
        except UnavailableError as error:
            raise ApiError(503, "unavailable", str(error)) from error
        except TimeoutError as error:
            raise ApiError(
                503, "timeout", f"no result within {self.limits.request_timeout_s} s"
            ) from error
        finally:
            for future in futures:
                future.cancel()  # no-op once done; frees the worker from abandoned texts
        self.metrics.texts.labels(str(beam_width)).inc(len(texts))
        for ids, result in zip(sources, results, strict=True):
            result["source_ids"] = ids
        return beam_width, results


# ---- the app ----


def _load_model(export_dir, backend, quantized, threads):
    from serving.runtime import LiteRTModel, OnnxModel

    if backend == "onnx":
        return OnnxModel(export_dir, quantized=quantized, threads=threads)
    name = "model_int8.tflite" if quantized else "model.tflite"
    return LiteRTModel(Path(export_dir) / name, threads=threads)


def _check_export_dir(export_dir, backend):
    export_dir = Path(export_dir)
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if not export_dir.is_dir():
        raise UserError(f"export directory not found: {export_dir}")
    for needed in ("manifest.json", "tokenizer"):
        if not (export_dir / needed).exists():
            raise UserError(
                f"{export_dir} has no {needed}: is it a `seq2seq-attn export` directory?"
            )


def _validation_error_response(error):
    errors = error.errors()
    details = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg")), "type": e.get("type")}
        for e in errors
    ]
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        reason = (first.get("ctx") or {}).get("error", "")
        return _error_response(400, "invalid_json", f"request body is not valid JSON: {reason}")
    if tuple(first.get("loc", ())) == ("body",) and first.get("type") == "missing":
        return _error_response(422, "missing_body", "request body is missing: send a JSON object")
    where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "body"
    return _error_response(422, "invalid_request", f"{where}: {first.get('msg')}", details)


def create_app(
    export_dir,
    backend="onnx",
    max_batch_size=16,
    batch_timeout_ms=5,
    model_name=DEFAULT_MODEL_NAME,
    quantized=False,
    threads=None,
    limits=None,
    model=None,
):
    """The FastAPI app over an export directory; the decode worker starts with the app.

    Args:
        export_dir: a directory written by `seq2seq-attn export`.
        backend: "onnx" (onnxruntime) or "tflite" (LiteRT).
        max_batch_size: most texts decoded together.
        batch_timeout_ms: how long the first text waits for batch mates.
        model_name: the `{name}` of the `/v1/models/{name}` endpoints.
        quantized: serve the int8 artifacts (`*_int8.onnx` or `model_int8.tflite`).
        threads: intra-op threads of the runtime; None lets it choose.
        limits: a `Limits`; None for the defaults.
        model: an already loaded runtime model (anything with `.decode`), instead of loading
            one from `export_dir` (tests).

    Raises:
        UserError: unknown backend, or not an export directory.
    """
    _check_export_dir(export_dir, backend)
    limits = limits or Limits()
    metrics = ServerMetrics()
    if model is None:
        model = _load_model(export_dir, backend, quantized, threads)
    translator = Translator(export_dir, model, limits, max_batch_size, batch_timeout_ms, metrics)
    metrics.queue_depth.set_function(translator.batcher.depth)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        translator.batcher.start()
        try:
            yield
        finally:
            translator.batcher.stop()

    app = FastAPI(
        title="seq2seq_attn translation server",
        version=MODEL_VERSION,
        description="Encoder-decoder translation with attention on onnxruntime or LiteRT.",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc load scripts from a CDN: not on an offline box
        redoc_url=None,
    )
    app.state.translator = translator
    app.state.metrics = metrics
    app.state.model_name = model_name
    app.state.backend = backend

    @app.exception_handler(ApiError)
    async def _api_error(_request, error):
        return _error_response(error.status, error.code, error.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request, error):
        return _validation_error_response(error)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request, error):
        codes = {404: "not_found", 405: "method_not_allowed"}
        return _error_response(
            error.status_code, codes.get(error.status_code, "http_error"), str(error.detail)
        )

    @app.exception_handler(Exception)
    async def _bug(_request, error):
        return _error_response(500, "internal", f"internal error: {type(error).__name__}")

    def check_model(name, version=None):
        if name != model_name:
            raise ApiError(
                404, "model_not_found", f"model {name!r} not found; this server has {model_name!r}"
            )
        if version is not None and version != MODEL_VERSION:
            raise ApiError(
                404,
                "version_not_found",
                f"version {version!r} of {name!r} not found; available: {MODEL_VERSION}",
            )

    async def predict(name, body, version=None):
        check_model(name, version)
        if body.signature_name not in (None, "serving_default"):
            raise ApiError(
                400,
                "unknown_signature",
                f"signature_name {body.signature_name!r} not found; use 'serving_default'",
            )
        if (body.instances is None) == (body.inputs is None):
            raise ApiError(422, "invalid_request", 'send exactly one of "instances" or "inputs"')
        if body.instances is not None:
            texts = [x if isinstance(x, str) else x.text for x in body.instances]
        else:
            texts = body.inputs if isinstance(body.inputs, list) else body.inputs.text
        _, results = await translator.translate(texts)
        rows = [
            {
                "translation": translator.target.decode(r["tokens"]),
                "tokens": r["tokens"].tolist(),
                "scores": r["score"],
            }
            for r in results
        ]
        if body.instances is not None:
            return {"predictions": rows}
        return {"outputs": {key: [row[key] for row in rows] for key in rows[0]}}

    @app.post(
        "/v1/models/{name}:predict",
        response_model=PredictResponse,
        response_model_exclude_none=True,
        responses=ERROR_RESPONSES,
        summary="TF Serving REST predict",
    )
    async def predict_latest(name: str, body: PredictRequest):
        return await predict(name, body)

    @app.post(
        "/v1/models/{name}/versions/{version}:predict",
        response_model=PredictResponse,
        response_model_exclude_none=True,
        responses=ERROR_RESPONSES,
        summary="TF Serving REST predict, one version",
    )
    async def predict_version(name: str, version: str, body: PredictRequest):
        return await predict(name, body, version)

    @app.post(
        "/translate",
        response_model=TranslateResponse,
        response_model_exclude_none=True,
        responses=ERROR_RESPONSES,
    )
    async def translate(body: TranslateRequest):
        if (body.text is None) == (body.texts is None):
            raise ApiError(422, "invalid_request", 'send exactly one of "text" or "texts"')
        texts = [body.text] if body.text is not None else body.texts
        beam_width, results = await translator.translate(texts, body.beam_width, body.max_length)
        response = {
            "model": model_name,
            "beam_width": beam_width,
            "translations": [translator.target.decode(r["tokens"]) for r in results],
            "scores": [r["score"] for r in results],
        }
        if body.return_attention:
            response["source_tokens"] = [
                translator.source.id_to_token(r["source_ids"]) for r in results
            ]
            response["target_tokens"] = [
                translator.target.id_to_token(r["tokens"]) for r in results
            ]
            response["attention"] = [
                r["attention"].round(ATTENTION_DECIMALS).tolist() for r in results
            ]
        return response

    @app.get("/v1/models/{name}", response_model=ModelStatusResponse, responses=ERROR_RESPONSES)
    async def model_status(name: str):
        check_model(name)
        ready = translator.batcher.alive
        return {
            "model_version_status": [
                {
                    "version": MODEL_VERSION,
                    "state": "AVAILABLE" if ready else "UNAVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
            ]
        }

    @app.get("/healthz", response_model=HealthResponse)
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", response_model=HealthResponse, responses=ERROR_RESPONSES)
    async def readyz():
        if not translator.batcher.alive:
            raise ApiError(503, "not_ready", "the decode worker is not running")
        return {"status": "ready"}

    @app.get("/metrics", response_class=Response, summary="Prometheus metrics")
    async def prometheus_metrics():
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/", response_class=FileResponse, include_in_schema=False)
    async def index():
        csp = "default-src 'self'; img-src 'self' data:"
        return FileResponse(STATIC_DIR / "index.html", headers={"Content-Security-Policy": csp})

    @app.get("/config.json", include_in_schema=False)
    async def page_config():
        return {
            "model": model_name,
            "backend": backend,
            "default_beam_width": translator.default_beam_width,
            "max_beam_width": translator.max_beam_width,
            "max_text_chars": limits.max_text_chars,
        }

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(JsonBodyMiddleware, max_bytes=limits.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=lambda: app.router.routes)
    return app


def serve(
    export_dir,
    backend="onnx",
    host="127.0.0.1",
    port=8080,
    max_batch_size=16,
    batch_timeout_ms=5,
    model_name=DEFAULT_MODEL_NAME,
    quantized=False,
    threads=None,
    limits=None,
    log_level="info",
):
    """Serves an export directory over HTTP until interrupted (see `create_app` for the args).

    Binds 127.0.0.1 unless `host` says otherwise: put a reverse proxy or load balancer in
    front to expose it.

    Raises:
        UserError: unknown backend, not an export directory, or a bad port.
    """
    import uvicorn

    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise UserError(f"port must be an integer between 0 and 65535, got {port!r}")
    if (
        isinstance(max_batch_size, bool)
        or not isinstance(max_batch_size, int)
        or max_batch_size < 1
    ):
        raise UserError(f"max batch size must be a positive integer, got {max_batch_size!r}")
    if not batch_timeout_ms >= 0:
        raise UserError(f"batch timeout must be >= 0 ms, got {batch_timeout_ms!r}")
    app = create_app(
        export_dir,
        backend=backend,
        max_batch_size=max_batch_size,
        batch_timeout_ms=batch_timeout_ms,
        model_name=model_name,
        quantized=quantized,
        threads=threads,
        limits=limits,
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=10)
