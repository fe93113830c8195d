"""What the order saga tells Prometheus, served (when `COMMERCE_PROJECTOR_METRICS_PORT` is set: the
saga is a background worker like the projectors) at `http://<host>:<port>/metrics`."""

from __future__ import annotations

from prometheus_client import Counter, start_http_server

STEPS = Counter(
    "saga_steps_total",
    "Steps the order saga took, by step (command_api/orders/saga.py STEPS) and outcome: done, "
    "dead_lettered (refused for good, or unavailable past its retries), failed (an unexpected error; "
    "dead-lettered too) or retried_later (an expiry the next sweep tries again)",
    ["step", "outcome"],
)
DEAD_LETTERS = Counter(
    "saga_dead_letters_total",
    "Records the order saga put in its dead letters: parked (its step failed) or waiting_behind (an "
    "earlier step of its order is parked)",
    ["kind"],
)


def serve_metrics(host: str, port: int) -> None:
    """In a thread of its own, so a scrape never waits for the event loop."""
    start_http_server(port, addr=host)
