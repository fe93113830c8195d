"""Prometheus metrics at `/metrics`, with the seed's metric names so existing dashboards keep working.
Routes are labelled by their template (`/products/{product_id}`), never by the raw path, so the
number of series stays bounded. Every series names its `service`: one process may serve several
(`./run up` runs all four services of an instance in one), and Prometheus scrapes that process once."""

from __future__ import annotations

import hmac
import time

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web.errors import error_body
from web.routing import add_routes

HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests", ["service", "method", "route", "status_code"])
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP request duration",
    ["service", "method", "route", "status_code"],
    buckets=(0.001, 0.005, 0.015, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 1, 2, 5),
)

metrics_router = APIRouter(tags=["operations"])


@metrics_router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus text format, for the scraper only: with `COMMERCE_METRICS_TOKEN` set, it must send
    `Authorization: Bearer <token>`; without one, only a local deployment answers (production: 404)."""
    token, environment = request.app.state.metrics_token, request.app.state.environment
    if token:
        sent = request.headers.get("authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            return error_body(401, "invalid_token", "Unauthorized: /metrics needs the metrics token")
    elif environment != "local":
        return error_body(404, "not_found", "Not Found")
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def route_template(scope: Scope) -> str:
    """The matched route's template, which the router leaves in the scope (without a path convertor:
    `/products/{product_id}`, not `/products/{product_id:int}`)."""
    return str(getattr(scope.get("route"), "path_format", "unmatched"))


class MetricsMiddleware:
    """Counts and times every HTTP request. A plain ASGI middleware: Starlette's `BaseHTTPMiddleware`
    (what `@app.middleware("http")` builds) spends a task group and a streaming wrapper on each
    request, which was half the cost of a `GET /health`."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        # (method, route, status) -> the labelled children, so a request does no label lookup.
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees if the app raises before answering

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            self._observe(scope, status, time.perf_counter() - started)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        key = (scope["method"], route_template(scope), status)
        series = self._series.get(key)
        if series is None:
            labels = (self.service, key[0], key[1], str(status))
            series = self._series[key] = (HTTP_REQUESTS.labels(*labels), HTTP_DURATION.labels(*labels))
        series[0].inc()
        series[1].observe(seconds)


def install_metrics(app: FastAPI, service: str, token: str, environment: str) -> None:
    app.state.metrics_token, app.state.environment = token, environment
    add_routes(app, metrics_router)
    app.add_middleware(MetricsMiddleware, service=service)
