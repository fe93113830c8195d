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
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from auth.tokens import InvalidToken, TokenRevoked

log = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    field: str
    message: str
    type: str


class ErrorPublic(BaseModel):
    """The body of every error answer."""

    message: str
    error: str
    details: list[ErrorDetail] | None = None  # what was invalid, on a 422


_MEANINGS = {
    400: "A malformed or unverifiable request (e.g. a webhook's bad signature)",
    401: "No token, or one that is invalid, expired or revoked",
    403: "The token's role may not do this",
    404: "Not found, or not the caller's",
    409: "Refused in the resource's current state",
    413: "The request body is over the limit",
    422: "Invalid input",
    429: "Too many attempts; retry after `Retry-After` seconds",
    502: "The payment gateway failed",
    503: "A dependency does not answer; retry after `Retry-After` seconds",
}


# A driver's error text names tables, SQL, hosts and ports: the caller gets a fixed message instead,
# and the text goes to the log.
_DRIVERS = ("psycopg", "psycopg_pool", "elasticsearch", "elastic_transport", "aiokafka")
_DEPENDENCY_DOWN = "A service this one depends on does not answer; retry shortly"
DEPENDENCY_MESSAGES = {
    "read_model_not_ready": "The read model is still being built; retry shortly",
    "search_index_not_ready": "The search index is still being built; retry shortly",
    "database_unavailable": "The database does not answer; retry shortly",
    "search_unavailable": "The search index does not answer; retry shortly",
}
_SOON = {"Retry-After": "1"}


def is_driver_error(exc: Exception) -> bool:
    return type(exc).__module__.split(".")[0] in _DRIVERS


class RetryLater(Exception):
    """A refusal that says when to come back: its answer carries `Retry-After` (whole seconds)."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses=` of a router whose routes may answer these errors, so every status a
    service answers is in its schema (FastAPI alone documents only 200 and its own 422)."""
    return {status: {"model": ErrorPublic, "description": _MEANINGS[status]} for status in statuses}


def error_body(
    status: int, error: str, message: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    kept = dict(headers or {})
    if status == 503:
        kept["Retry-After"] = "1"
    if status == 401:
        kept["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"message": message, "error": error, **extra}, status_code=status, headers=kept)


def _field(location: tuple[Any, ...]) -> str:
    parts = [str(part) for part in location if part not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _unreadable_json(exc: StarletteHTTPException) -> str | None:
    """Why FastAPI could not read a JSON body, when that is what its bare 400 means. Malformed JSON is
    a 422 (`invalid_json`); so is JSON Python's parser gives up on without calling it malformed."""
    if exc.status_code != 400:
        return None
    cause = exc.__cause__
    if isinstance(cause, UnicodeDecodeError):
        return "it is not UTF-8"
    if isinstance(cause, RecursionError):
        return "it is nested too deeply"
    if isinstance(cause, ValueError):  # Python's limit on an integer's digits (4300)
        return "a number in it is too long"
    return None


def _methods_served_at(request: Request) -> list[str]:
    """Every method some route serves at the request's path. A path's routes may come from both sides
    (`GET /products/{id}` from the query side, `PATCH` and `DELETE` from the command side), and
    Starlette's 405 names only the first route's methods in its `Allow`."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods or set()
    return sorted(methods)


def install_error_handlers(app: FastAPI, domain_errors: Mapping[type[Exception], tuple[int, str]]) -> None:
    """`domain_errors` maps a context's exception classes to (status, error code). A 422 whose exception
    names a `field` is answered as a validation error of that field (its code is the detail's type)."""

    def invalid(details: list[dict[str, str]]) -> JSONResponse:
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
        return error_body(422, "validation_error", f"Invalid request: {summary}", details=details)

    async def validation_failed(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        details = [
            {"field": _field(tuple(e["loc"])), "message": e["msg"], "type": e["type"]} for e in exc.errors()
        ]
        if any(d["type"] == "json_invalid" for d in details):
            return error_body(422, "invalid_json", "The request body is not valid JSON.", details=details)
        return invalid(details)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        unreadable = _unreadable_json(exc)
        if unreadable is not None:
            return error_body(422, "invalid_json", f"The request body is not valid JSON: {unreadable}.")
        if exc.status_code == 405:
            allowed = {"Allow": ", ".join(_methods_served_at(request))}
            return error_body(405, "method_not_allowed", str(exc.detail), allowed)
        code = {404: "not_found"}.get(exc.status_code, "http_error")
        return error_body(exc.status_code, code, str(exc.detail), exc.headers)

    async def invalid_token(request: Request, exc: Exception) -> JSONResponse:
        return error_body(401, "invalid_token", f"Unauthorized: {exc}")

    async def token_revoked(request: Request, exc: Exception) -> JSONResponse:
        return error_body(401, "token_revoked", f"Unauthorized: {exc}")

    async def domain_error(request: Request, exc: Exception) -> JSONResponse:
        for cls in type(exc).__mro__:
            if cls in domain_errors:
                status, code = domain_errors[cls]
                if is_driver_error(exc):
                    log.warning("%s on %s %s: %r", code, request.method, request.url.path, exc)
                    return error_body(status, code, DEPENDENCY_MESSAGES.get(code, _DEPENDENCY_DOWN), _SOON)
                field = getattr(exc, "field", None)
                if status == 422 and isinstance(field, str):
                    # A field's value only the domain could judge (it depends on stored state, as a new
                    # price on a product's currency): answered as that field's validation error.
                    return invalid([{"field": field, "message": str(exc), "type": code}])
                retry = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RetryLater) else None
                return error_body(status, code, str(exc), retry)
        return await unexpected(request, exc)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_body(500, "internal_error", "Internal server error.")

    app.add_exception_handler(RequestValidationError, validation_failed)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(InvalidToken, invalid_token)
    app.add_exception_handler(TokenRevoked, token_revoked)
    for cls in domain_errors:
        app.add_exception_handler(cls, domain_error)
    app.add_exception_handler(Exception, unexpected)
