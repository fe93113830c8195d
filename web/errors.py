"""One place that turns exceptions into JSON error bodies: `{"message": ..., "error": ..., "details"?}`.

`message` is the key the existing clients already read; `error` is a stable machine-readable code.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from auth.tokens import InvalidToken

log = logging.getLogger(__name__)


def error_body(status: int, error: str, message: str, **extra: Any) -> JSONResponse:
    headers = {"Retry-After": "1"} if status == 503 else None
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return JSONResponse({"message": message, "error": error, **extra}, status_code=status, headers=headers)


def _field(location: tuple[Any, ...]) -> str:
    parts = [str(part) for part in location if part not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI, domain_errors: Mapping[type[Exception], tuple[int, str]]) -> None:
    """`domain_errors` maps a context's exception classes to (status, error code)."""

    async def validation_failed(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        details = [
            {"field": _field(tuple(e["loc"])), "message": e["msg"], "type": e["type"]} for e in exc.errors()
        ]
        if any(d["type"] == "json_invalid" for d in details):
            return error_body(422, "invalid_json", "The request body is not valid JSON.", details=details)
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
        return error_body(422, "validation_error", f"Invalid request: {summary}", details=details)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_body(exc.status_code, code, str(exc.detail))

    async def invalid_token(request: Request, exc: Exception) -> JSONResponse:
        return error_body(401, "invalid_token", f"Unauthorized: {exc}")

    async def domain_error(request: Request, exc: Exception) -> JSONResponse:
        for cls in type(exc).__mro__:
            if cls in domain_errors:
                status, code = domain_errors[cls]
                return error_body(status, code, str(exc))
        return await unexpected(request, exc)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_body(500, "internal_error", "Internal server error.")

    app.add_exception_handler(RequestValidationError, validation_failed)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(InvalidToken, invalid_token)
    for cls in domain_errors:
        app.add_exception_handler(cls, domain_error)
    app.add_exception_handler(Exception, unexpected)
