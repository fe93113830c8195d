"""Prometheus metrics at `/metrics`, with the seed's metric names so existing dashboards keep working.
Routes are labelled by their template (`/products/{product_id}`), never by the raw path, so the
number of series stays bounded."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests", ["method", "route", "status_code"])
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP request duration",
    ["method", "route", "status_code"],
    buckets=(0.001, 0.005, 0.015, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 1, 2, 5),
)

metrics_router = APIRouter(tags=["operations"])


@metrics_router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Prometheus text format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def route_template(request: Request) -> str:
    """The matched route's template, which the router leaves in the scope."""
    return str(getattr(request.scope.get("route"), "path", "unmatched"))


def install_metrics(app: FastAPI) -> None:
    app.include_router(metrics_router)

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        labels = (request.method, route_template(request), str(response.status_code))
        HTTP_REQUESTS.labels(*labels).inc()
        HTTP_DURATION.labels(*labels).observe(time.perf_counter() - started)
        return response
