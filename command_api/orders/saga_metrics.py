"""What the order saga tells Prometheus, served (when `COMMERCE_PROJECTOR_METRICS_PORT` is set: the
saga is a background worker like the projectors) at `http://<host>:<port>/metrics`."""

from __future__ import annotations

from prometheus_client import Counter, start_http_server

STEPS = Counter(
    "saga_steps_total",
    "Steps the order saga took, by step (command_api/orders/saga.py STEPS) and outcome: done, refused "
    "(a command side refused it for good; skipped) or failed (an error that stops the runner)",
    ["step", "outcome"],
)


def serve_metrics(host: str, port: int) -> None:
    """In a thread of its own, so a scrape never waits for the event loop."""
    start_http_server(port, addr=host)
