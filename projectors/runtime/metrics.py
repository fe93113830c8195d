"""What a projector process tells Prometheus, served (when `COMMERCE_PROJECTOR_METRICS_PORT` is set)
at `http://<host>:<port>/metrics`."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, start_http_server

PARKED_PARTITIONS = Gauge(
    "projector_parked_partitions",
    "Partitions this process holds parked at a record the projection cannot apply",
    ["projection"],
)
DEAD_LETTERS = Counter(
    "projector_dead_letters_total",
    "Records this process published to a dead-letter topic",
    ["projection"],
)
LAG = Gauge(
    "projector_lag_records",
    "Records between the projection's stored position and the partition's committed end",
    ["projection", "partition"],
)


def serve_metrics(host: str, port: int) -> None:
    """In a thread of its own, so a scrape never waits for the event loop."""
    start_http_server(port, addr=host)
