"""The HTTP endpoints, on an `APIRouter`; the service and settings come in as dependencies.

POST /v1/models/{name}:predict    TF Serving REST predict: {"instances": [...]} in,
                                  {"predictions": [...]} out ({"inputs"} -> {"outputs"})
POST /translate                   {"text" | "texts" (strings or {"text", "target_prefix"}),
                                  "beam_width", "max_length",
                                  "return_attention", "n_best", "max_length_ratio",
                                  "max_length_offset", "no_repeat_ngram", "top_k" | "top_p",
                                  "temperature", "seed", "alignment", "scores",
                                  "placeholders", "full_vocabulary"}
                                  -> translations, scores, attention, nbest, seed,
                                  alignment, sentence/word/token scores
GET  /v1/models/{name}            TF Serving model status
GET  /healthz                     liveness: 503 when the decode worker is dead or stuck
GET  /readyz                      readiness: also 503 while shutting down
GET  /metrics                     Prometheus text format
GET  /                            a web page: translation and attention heatmap

A translation request whose client disconnects is dropped: checked before its texts are
queued, and watched while they wait (the texts then leave the queue undecoded). Nothing is
sent; `/metrics` counts it in `seq2seq_dropped_requests_total{reason="client_disconnected"}`.
"""

import asyncio
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response

from seq2seq_attn.alignment import piece_words
from seq2seq_attn.interface import DecodeOptions
from seq2seq_attn.serving.http_errors import ApiError
from seq2seq_attn.serving.metrics import CLIENT_CLOSED_REQUEST
from seq2seq_attn.serving.schemas import (
    ERROR_RESPONSES,
    HealthResponse,
    ModelStatusResponse,
    PredictRequest,
    PredictResponse,
    TranslateRequest,
    TranslateResponse,
)
from seq2seq_attn.serving.service import TranslationService

MODEL_VERSION = "1"  # the version directory in serving/tfserving/models.config
STATIC_DIR = Path(__file__).parent / "static"
ATTENTION_DECIMALS = 6

router = APIRouter()


def get_service(request: Request) -> TranslationService:
    return request.app.state.service


def get_model_name(request: Request) -> str:
    return request.app.state.model_name


Service = Annotated[TranslationService, Depends(get_service)]
ModelName = Annotated[str, Depends(get_model_name)]


def check_model(served, name, version=None):
    """ApiError 404 unless `name` (and `version`) is the served model."""
    if name != served:
        raise ApiError(
            404, "model_not_found", f"model {name!r} not found; this server has {served!r}"
        )
    if version is not None and version != MODEL_VERSION:
        raise ApiError(
            404,
            "version_not_found",
            f"version {version!r} of {name!r} not found; available: {MODEL_VERSION}",
        )


async def _client_gone(request):
    """Returns once the client of `request` has disconnected (the body is read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _unless_client_gone(request, service, work):
    """What the coroutine `work` returns, or None when the client disconnects first.

    Checked before `work` starts, so a gone client's texts never enter the queue, and while
    it runs: then `work` is cancelled, which takes its waiting texts off the queue
    (`MicroBatcher.discard`). A dropped request is counted in the metrics.
    """
    if await request.is_disconnected():
        work.close()
        service.metrics.observe_dropped_request()
        return None
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_client_gone(request))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        task.cancel()
        await asyncio.wait((task,))
        service.metrics.observe_dropped_request()
        return None
    finally:
        watcher.cancel()
        task.cancel()  # a no-op once done; else this handler itself was cancelled


def _dropped():
    """The answer to a request whose client has gone: nobody reads it."""
    return Response(status_code=CLIENT_CLOSED_REQUEST)


def _predict_texts(body):
    if body.signature_name not in (None, "serving_default"):
        raise ApiError(
            400,
            "unknown_signature",
            f"signature_name {body.signature_name!r} not found; use 'serving_default'",
        )
    if (body.instances is None) == (body.inputs is None):
        raise ApiError(422, "invalid_request", 'send exactly one of "instances" or "inputs"')
    if body.instances is not None:
        return [x if isinstance(x, str) else x.text for x in body.instances]
    return body.inputs if isinstance(body.inputs, list) else body.inputs.text


async def _predict(request, service, body):
    # TF Serving's predict: the texts as they are (each translation is the decode of its tokens)
    work = service.translate(_predict_texts(body), placeholders=False)
    answer = await _unless_client_gone(request, service, work)
    if answer is None:
        return _dropped()
    _, results = answer
    rows = [
        {
            "translation": service.target.decode(r.tokens),
            "tokens": r.tokens.tolist(),
            "scores": r.score,
        }
        for r in results
    ]
    if body.instances is not None:
        return {"predictions": rows}
    return {"outputs": {key: [row[key] for row in rows] for key in rows[0]}}


_PREDICT = dict(
    response_model=PredictResponse, response_model_exclude_none=True, responses=ERROR_RESPONSES
)


@router.post("/v1/models/{name}:predict", summary="TF Serving REST predict", **_PREDICT)
async def predict_latest(
    name: str, body: PredictRequest, request: Request, service: Service, served: ModelName
):
    check_model(served, name)
    return await _predict(request, service, body)


@router.post(
    "/v1/models/{name}/versions/{version}:predict",
    summary="TF Serving REST predict, one version",
    **_PREDICT,
)
async def predict_version(
    name: str,
    version: str,
    body: PredictRequest,
    request: Request,
    service: Service,
    served: ModelName,
):
    check_model(served, name, version)
    return await _predict(request, service, body)


# The search options a request may set: the `DecodeOptions` fields the request model has.
_OPTIONS = tuple(k for k in DecodeOptions().search_kwargs() if k in TranslateRequest.model_fields)


@router.post(
    "/translate",
    response_model=TranslateResponse,
    response_model_exclude_none=True,
    responses=ERROR_RESPONSES,
)
async def translate(body: TranslateRequest, request: Request, service: Service, served: ModelName):
    if (body.text is None) == (body.texts is None):
        raise ApiError(422, "invalid_request", 'send exactly one of "text" or "texts"')
    items = [body.text] if body.text is not None else body.texts
    texts = [x if isinstance(x, str) else x.text for x in items]
    prefixes = [None if isinstance(x, str) else x.target_prefix for x in items]
    options = {k: getattr(body, k) for k in _OPTIONS}
    work = service.translate(
        texts,
        body.beam_width,
        body.max_length,
        body.alignment,
        body.scores,
        prefixes,
        placeholders=body.placeholders,
        n_best_asked=body.n_best is not None,
        full_vocabulary=body.full_vocabulary,
        **options,
    )
    answer = await _unless_client_gone(request, service, work)
    if answer is None:
        return _dropped()
    options, results = answer
    response = {
        "model": served,
        "beam_width": options.beam_width,
        "translations": [r.text for r in results],
        "scores": [r.score for r in results],
    }
    if body.n_best is not None:
        response["nbest"] = [
            [{"translation": h.text, "score": h.score, **_words(h)} for h in r.nbest]
            for r in results
        ]
    if options.sampling:
        response["seed"] = options.seed
    if body.return_attention:
        response["source_tokens"] = [service.source.id_to_token(r.source_ids) for r in results]
        response["target_tokens"] = [service.target.id_to_token(r.tokens) for r in results]
        response["attention"] = [r.attention.round(ATTENTION_DECIMALS).tolist() for r in results]
    if body.alignment is not None or body.scores:
        response["source_words"] = [piece_words(r.source_tokens)[0] for r in results]
        response["target_words"] = [piece_words(r.target_tokens)[0] for r in results]
    if body.alignment is not None:
        response["alignment"] = [_words(r)["alignment"] for r in results]
    if any(r.placeholders is not None for r in results):
        response["placeholders"] = [_placeholders(r) for r in results]
    if body.scores:
        response["sentence_scores"] = [r.scores.sentence for r in results]
        response["word_scores"] = [r.scores.words for r in results]
        response["token_scores"] = [r.scores.tokens for r in results]
    return response


def _placeholders(result):
    """The placeholder report of one hypothesis as the response writes it."""
    report = result.placeholders
    if report is None:
        return {"count": 0, "reinserted": 0, "removed": 0, "positions": []}
    return {
        "count": report.count,
        "reinserted": report.reinserted,
        "removed": report.removed,
        "positions": report.positions,
    }


def _words(result):
    """The alignment and scores of one hypothesis as the response writes them (none unless
    asked): hard, a Pharaoh line; soft, the weights rounded as the attention is."""
    fields = {}
    if result.alignment is not None:
        soft = result.alignment.soft.astype(float).round(ATTENTION_DECIMALS).tolist()
        hard = result.alignment_kind == "hard"
        fields["alignment"] = result.alignment.pharaoh() if hard else soft
    if result.scores is not None:
        fields.update(sentence_score=result.scores.sentence, word_scores=result.scores.words)
    if result.placeholders is not None:
        fields["placeholders"] = _placeholders(result)
    return fields


@router.get("/v1/models/{name}", response_model=ModelStatusResponse, responses=ERROR_RESPONSES)
async def model_status(name: str, service: Service, served: ModelName):
    check_model(served, name)
    problem = service.readiness()
    status = {"error_code": "OK", "error_message": ""}
    if problem:
        status = {"error_code": "UNAVAILABLE", "error_message": problem}
    state = "UNAVAILABLE" if problem else "AVAILABLE"
    return {"model_version_status": [{"version": MODEL_VERSION, "state": state, "status": status}]}


def _probe(service, problem, code, ok):
    if problem:
        retry = {"Retry-After": str(service.limits.retry_after_s)}
        raise ApiError(503, code, problem, retry)
    return {"status": ok}


@router.get("/healthz", response_model=HealthResponse, responses=ERROR_RESPONSES)
async def healthz(service: Service):
    return _probe(service, service.health(), "unhealthy", "ok")


@router.get("/readyz", response_model=HealthResponse, responses=ERROR_RESPONSES)
async def readyz(service: Service):
    return _probe(service, service.readiness(), "not_ready", "ready")


@router.get("/metrics", response_class=Response, summary="Prometheus metrics")
async def prometheus_metrics(service: Service):
    return Response(service.metrics.render(), media_type=service.metrics.content_type)


@router.get("/", response_class=FileResponse, include_in_schema=False)
async def index():
    csp = "default-src 'self'; img-src 'self' data:"
    return FileResponse(STATIC_DIR / "index.html", headers={"Content-Security-Policy": csp})


@router.get("/config.json", include_in_schema=False)
async def page_config(request: Request, service: Service, served: ModelName):
    return {
        "model": served,
        "backend": request.app.state.backend,
        "default_beam_width": service.default_beam_width,
        "max_beam_width": service.max_beam_width,
        "max_text_chars": service.limits.max_text_chars,
    }
