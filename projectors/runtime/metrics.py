"""What a projector process tells Prometheus, served (when `COMMERCE_PROJECTOR_METRICS_PORT` is set)
at `http://<host>:<port>/metrics`; the order saga serves its own metrics the same way."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

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
RECORDS_SKIPPED = Counter(
    "projector_records_skipped_total",
    "Records passed over, without parking, as an operator skipped them before (met again after a reset)",
    ["projection"],
)
LAG = Gauge(
    "projector_lag_records",
    "Records between the projection's stored position and the partition's committed end",
    ["projection", "partition"],
)
# Business facts per minute (orders placed, payments failed...) are rates of this: each event is counted
# once per read model, when its transaction commits, however many command instances appended them.
EVENTS_APPLIED = Counter(
    "projector_events_applied_total",
    "Events applied to the read model, by event type",
    ["projection", "event_type"],
)
BATCH_RECORDS = Histogram(
    "projector_batch_records",
    "Records per batch applied in one transaction (or one bulk request)",
    ["projection"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
)


def serve_metrics(host: str, port: int) -> None:
    """In a thread of its own, so a scrape never waits for the event loop."""
    start_http_server(port, addr=host)
