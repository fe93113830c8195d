"""HTTP requests in traces and logs. FastAPI makes the server span of each request itself (its native
telemetry, active once config/telemetry.py has installed a tracer provider): named by method and route
template, with the status, continuing the caller's W3C `traceparent` (the edge's, the order saga's, or
another instance's forwarding to the owner). This module chooses what it records, and adds the
request's correlation id, which every log line written while serving it carries."""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

from fastapi.telemetry import TelemetryConfig
from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config.telemetry import CORRELATION_ID, decide_action

# Polled by probes and scrapers: a span each would bury the traces of users' actions.
_UNTRACED_PATHS = frozenset(("/health", "/metrics"))
# What a caller may name its request by: printable, bounded (it goes into every log line).
_CORRELATION_ID = re.compile(rb"[\x21-\x7e]{1,128}")
_CORRELATION_HEADERS = (b"x-correlation-id", b"x-request-id")


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    """FastAPI's `exclude`: asked once per request before it makes the server span, so the request's
    sampling is decided here (config/telemetry.py, `decide_action`), and a request not traced costs no
    span work at all (with one made and dropped, the telemetry cost a fifth of the platform's reads)."""
    if scope.get("path") in _UNTRACED_PATHS:
        return True
    traceparent = next(
        (bytes(value).decode("latin-1") for name, value in scope["headers"] if name == b"traceparent"), None
    )
    return not decide_action(traceparent)


def request_telemetry() -> TelemetryConfig:
    """FastAPI's telemetry settings: a server span per request and nothing else. Its spans of
    dependencies, endpoint and serialization would triple a trace's rows for little; metrics are
    Prometheus' (web/metrics.py) and logs ours (config/logging.py); exporters are set up by
    config/telemetry.py, never from FastAPI's own reading of the environment."""
    return {
        "tracing": True,
        "operation_spans": False,
        "metrics": False,
        "logs": False,
        "auto_configure": False,
        "exclude": _untraced,
    }


class CorrelationMiddleware:
    """Notes the correlation id the caller sent (X-Correlation-Id or X-Request-Id) for the request's log
    lines, and puts the one the request ended with (a command's own, command_api/http.py) on its span.
    A plain ASGI middleware (see web/metrics.py for why)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        marker = CORRELATION_ID.set(_correlation_id(scope))
        try:
            span = trace.get_current_span()
            if not span.is_recording():
                await self.app(scope, receive, send)
                return

            async def send_and_note(message: Message) -> None:
                # As the answer starts: FastAPI ends the span with the answer's last byte.
                if message["type"] == "http.response.start" and (correlation := CORRELATION_ID.get()):
                    span.set_attribute("commerce.correlation_id", correlation)
                await send(message)

            await self.app(scope, receive, send_and_note)
        finally:
            CORRELATION_ID.reset(marker)


def _correlation_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name in _CORRELATION_HEADERS and _CORRELATION_ID.fullmatch(value):
            return bytes(value).decode("ascii")
    return None
