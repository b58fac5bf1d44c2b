"""Errors the server answers with: `{"error": message, "code": short_code}` and a status.

TF Serving clients read the `error` string; every other client can switch on `code`.
"""

import logging

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """A request the server refuses: HTTP status, short code, message, optional headers."""

    def __init__(self, status, code, message, headers=None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_response(status, code, message, details=None, headers=None):
    """The JSON error body every refusal uses."""
    body = {"error": message, "code": code}
    if details:
        body["details"] = details
    return JSONResponse(body, status_code=status, headers=headers)


def validation_error_response(error):
    """400 for a body that is not JSON, 422 for JSON the schema refuses."""
    errors = error.errors()
    details = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg")), "type": e.get("type")}
        for e in errors
    ]
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        reason = (first.get("ctx") or {}).get("error", "")
        return error_response(400, "invalid_json", f"request body is not valid JSON: {reason}")
    if tuple(first.get("loc", ())) == ("body",) and first.get("type") == "missing":
        return error_response(422, "missing_body", "request body is missing: send a JSON object")
    where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "body"
    return error_response(422, "invalid_request", f"{where}: {first.get('msg')}", details)


async def _api_error(_request, error):
    return error_response(error.status, error.code, error.message, headers=error.headers)


async def _invalid(_request, error):
    return validation_error_response(error)


async def _http_error(_request, error):
    codes = {404: "not_found", 405: "method_not_allowed"}
    code = codes.get(error.status_code, "http_error")
    # keeps Starlette's headers: `Allow` on a 405
    return error_response(error.status_code, code, str(error.detail), headers=error.headers)


async def _bug(_request, error):
    logger.error("unhandled error in a request", exc_info=error)
    return error_response(500, "internal", f"internal error: {type(error).__name__}")


def install_error_handlers(app):
    """Every refusal, whatever raised it, answers with the JSON error body."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _bug)
