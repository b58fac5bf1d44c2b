"""The HTTP translation server's app: FastAPI over an export directory, without TensorFlow.

`create_app` wires the pieces, each in its own module of `seq2seq_attn.serving`:

    service       limits, tokenization, the micro-batcher, results (the request side)
    batching      the supervised decode worker and its queue
    routes        the endpoints (see there), on an APIRouter
    schemas       request and response bodies (the OpenAPI document)
    middleware    body size limit, UTF-8, JSON
    http_errors   the JSON error body and the exception handlers
    metrics       Prometheus metrics and their middleware
    server        `serve`: uvicorn with a graceful, draining shutdown
"""

import contextlib
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from seq2seq_attn.errors import UserError
from seq2seq_attn.serving.http_errors import install_error_handlers
from seq2seq_attn.serving.metrics import MetricsMiddleware, ServerMetrics
from seq2seq_attn.serving.middleware import JsonBodyMiddleware
from seq2seq_attn.serving.routes import MODEL_VERSION, STATIC_DIR, router
from seq2seq_attn.serving.service import Limits, TranslationService

DEFAULT_MODEL_NAME = "seq2seq_attn"
BACKENDS = ("onnx", "tflite")


def load_model(export_dir, backend, quantized=False, threads=None):
    """The runtime model of an export: onnxruntime or LiteRT, float32 or int8."""
    from seq2seq_attn.inference.runtime import LiteRTModel, OnnxModel

    if backend == "onnx":
        return OnnxModel(export_dir, quantized=quantized, threads=threads)
    name = "model_int8.tflite" if quantized else "model.tflite"
    return LiteRTModel(Path(export_dir) / name, threads=threads)


def check_export_dir(export_dir, backend):
    """UserError unless `export_dir` is an export and `backend` a known one."""
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


def verify_tokenizer_files(export_dir):
    """ArtifactError unless every file under the export's `tokenizer/` matches `manifest.json`
    (the runtime checks its own graphs when it loads them)."""
    from seq2seq_attn.inference.runtime import verify_export_files

    export_dir = Path(export_dir)
    files = sorted(p for p in (export_dir / "tokenizer").rglob("*") if p.is_file())
    verify_export_files(export_dir, [p.relative_to(export_dir) for p in files])


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
        threads: intra-op threads of the runtime; None is the runtime class's default
            (1 for onnxruntime, see `OnnxModel`); 0 lets onnxruntime choose.
        limits: a `seq2seq_attn.serving.service.Limits`; None for the defaults.
        model: an already loaded runtime model (anything with `.decode`), instead of loading
            one from `export_dir` (tests, fault injection).

    Raises:
        UserError: unknown backend, or not an export directory.
        ArtifactError: a file the server loads does not match the SHA-256 in `manifest.json`
            (a `UserError`: the message names the file).
    """
    check_export_dir(export_dir, backend)
    verify_tokenizer_files(export_dir)
    limits = limits or Limits()
    metrics = ServerMetrics()
    if model is None:
        model = load_model(export_dir, backend, quantized, threads)
    service = TranslationService(
        export_dir, model, limits, max_batch_size, batch_timeout_ms, metrics
    )
    metrics.queue_depth.set_function(service.batcher.depth)
    metrics.worker_healthy.set_function(lambda: 0 if service.health() else 1)
    service.batcher.on_drop = metrics.dropped_texts.inc

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        service.batcher.start()
        try:
            yield
        finally:
            service.batcher.stop()

    app = FastAPI(
        title="seq2seq_attn translation server",
        version=MODEL_VERSION,
        description="Encoder-decoder translation with attention on onnxruntime or LiteRT.",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc load scripts from a CDN: not on an offline box
        redoc_url=None,
    )
    app.state.service = service
    app.state.metrics = metrics
    app.state.model_name = model_name
    app.state.backend = backend
    install_error_handlers(app)
    app.include_router(router)
    openapi = app.openapi  # FastAPI's document, then this server's limits written in
    app.openapi = lambda: service.state_limits(openapi(), model_name, MODEL_VERSION)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(
        JsonBodyMiddleware,
        max_bytes=limits.max_body_bytes,
        on_disconnect=metrics.observe_dropped_request,
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
