"""The trace context crosses processes: into the Kafka headers of what a traced command appends, out of
them in the projectors and the saga, and along HTTP calls; with tracing off nothing is built."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import TopicPartition
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, format_span_id, format_trace_id

from config import telemetry
from config.logging import JsonFormatter
from config.telemetry import (
    CORRELATION_ID,
    inject_http_headers,
    kafka_trace_context,
    kafka_trace_headers,
    recording,
)
from projectors.runtime import tracing as projector_tracing
from projectors.runtime.tracing import MAX_TRACES_PER_BATCH, apply_spans
from web.tracing import CorrelationMiddleware, request_telemetry


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """A tracer of the test's own in place of the process's (which stays the no-op: tracing is off in
    unit tests), and what it records."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests")
    monkeypatch.setattr(telemetry, "_configured", True)
    for module in (telemetry, projector_tracing):
        monkeypatch.setattr(module, "TRACER", tracer)
    yield exporter
    provider.shutdown()


class Record:
    """What the projectors read of a consumer record."""

    def __init__(self, offset: int, headers: list[tuple[str, bytes]]) -> None:
        self.offset = offset
        self.headers = headers


def appended_in_a_trace(name: str, correlation_id: str | None = None) -> tuple[list[tuple[str, bytes]], Any]:
    """The headers a command traced as `name` gives its events, and the span it was traced in."""
    with telemetry.TRACER.start_as_current_span(name) as span:
        marker = CORRELATION_ID.set(correlation_id)
        try:
            return kafka_trace_headers(), span.get_span_context()
        finally:
            CORRELATION_ID.reset(marker)


def test_with_tracing_off_no_span_records_so_the_writer_builds_no_headers() -> None:
    assert not recording()
    with telemetry.TRACER.start_as_current_span("anything") as span:
        assert not span.is_recording()
        assert not recording()


def test_a_traced_commands_events_carry_its_span_and_correlation_id_in_their_headers(
    spans: InMemorySpanExporter,
) -> None:
    headers, appended = appended_in_a_trace("append Product", correlation_id="c0ffee")
    names = [name for name, _ in headers]
    assert names == ["traceparent", "correlation_id"]
    version, trace_id, span_id, _ = dict(headers)["traceparent"].decode().split("-")
    assert (version, trace_id, span_id) == (
        "00",
        format_trace_id(appended.trace_id),
        format_span_id(appended.span_id),
    )

    context, correlation_id = kafka_trace_context([("event_type", b"ProductCreated"), *headers])
    assert correlation_id == "c0ffee"
    assert context is not None
    carried = trace.get_current_span(context).get_span_context()
    assert (carried.trace_id, carried.span_id, carried.is_remote) == (
        appended.trace_id,
        appended.span_id,
        True,
    )


@pytest.mark.parametrize(
    "headers",
    [
        [("event_type", b"ProductCreated")],
        [("traceparent", b"not a traceparent")],
        [("traceparent", b"00-00000000000000000000000000000000-0000000000000000-01")],
        None,
    ],
)
def test_a_record_without_a_valid_trace_context_has_none(headers: list[tuple[str, bytes]] | None) -> None:
    context, correlation_id = kafka_trace_context(headers)
    assert context is None
    assert correlation_id is None


def test_an_outgoing_request_carries_the_current_span_instead_of_the_callers(
    spans: InMemorySpanExporter,
) -> None:
    forwarded = {"Traceparent": "00-11111111111111111111111111111111-2222222222222222-01", "Accept": "*/*"}
    with telemetry.TRACER.start_as_current_span("forward") as span:
        inject_http_headers(forwarded)
    own = span.get_span_context()
    assert "Traceparent" not in forwarded
    assert forwarded["traceparent"].split("-")[1:3] == [
        format_trace_id(own.trace_id),
        format_span_id(own.span_id),
    ]
    assert forwarded["Accept"] == "*/*"


def test_a_batch_of_few_traces_is_applied_in_a_span_under_each_commands_append(
    spans: InMemorySpanExporter,
) -> None:
    first, first_append = appended_in_a_trace("append Product", correlation_id="first")
    second, second_append = appended_in_a_trace("append Product")
    records = [Record(7, first), Record(8, [("event_type", b"X")]), Record(9, second), Record(10, first)]

    with apply_spans("catalog", TopicPartition("t.catalog.events", 3), records):
        pass

    applied = [span for span in spans.get_finished_spans() if span.name == "apply catalog"]
    by_parent = {_parent(span): span for span in applied}
    assert set(by_parent) == {
        (first_append.trace_id, first_append.span_id),
        (second_append.trace_id, second_append.span_id),
    }
    one = by_parent[(first_append.trace_id, first_append.span_id)]
    assert one.kind is SpanKind.CONSUMER
    assert one.attributes is not None
    assert one.attributes["messaging.kafka.offset"] == 7
    assert one.attributes["messaging.destination.partition.id"] == "3"
    assert one.attributes["messaging.batch.message_count"] == 4
    assert one.attributes["commerce.correlation_id"] == "first"


def test_a_batch_of_many_traces_is_one_span_linked_to_each(spans: InMemorySpanExporter) -> None:
    records = [
        Record(offset, appended_in_a_trace("append Product")[0]) for offset in range(MAX_TRACES_PER_BATCH + 1)
    ]

    with apply_spans("catalog", TopicPartition("t.catalog.events", 0), records):
        pass

    [applied] = [span for span in spans.get_finished_spans() if span.name == "apply catalog"]
    assert applied.parent is None
    assert len(applied.links) == MAX_TRACES_PER_BATCH + 1


def test_a_batch_parked_at_a_record_shows_as_failed_in_each_trace(spans: InMemorySpanExporter) -> None:
    records = [Record(0, appended_in_a_trace("append Product")[0]), Record(1, appended_in_a_trace("x")[0])]

    with apply_spans("catalog", TopicPartition("t.catalog.events", 0), records) as batch:
        batch.parked(1, ValueError("price below zero"))

    applied = [span for span in spans.get_finished_spans() if span.name == "apply catalog"]
    assert len(applied) == 2
    for span in applied:
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes is not None
        assert span.attributes["commerce.parked_at"] == 1


def test_a_batch_of_untraced_records_makes_no_span(spans: InMemorySpanExporter) -> None:
    with apply_spans("catalog", TopicPartition("t", 0), [Record(0, [])]) as batch:
        assert batch.spans == ()
    assert spans.get_finished_spans() == ()


def test_a_request_continues_its_callers_trace_in_a_span_named_by_its_route_with_its_correlation_id() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = FastAPI(telemetry={**request_telemetry(), "tracer_provider": provider})

    @app.get("/products/{product_id}")
    async def product(product_id: int) -> dict[str, int]:
        return {"id": product_id}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(CorrelationMiddleware)
    client = TestClient(app)
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    answered = client.get("/products/7", headers={"traceparent": caller, "X-Request-Id": "abc"})
    assert answered.status_code == 200
    assert client.get("/health").status_code == 200

    [server] = exporter.get_finished_spans()  # the health probe makes none
    assert server.name == "GET /products/{product_id}"
    assert server.kind is SpanKind.SERVER
    assert _parent(server) == (0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331)
    assert server.attributes is not None
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["commerce.correlation_id"] == "abc"


def test_a_log_line_is_one_json_object_with_the_trace_and_correlation_ids(
    spans: InMemorySpanExporter,
) -> None:
    record = logging.LogRecord("order-saga", logging.WARNING, __file__, 1, "retrying %s", ("POST",), None)
    with telemetry.TRACER.start_as_current_span("saga reserve stock") as span:
        marker = CORRELATION_ID.set("c-1")
        line = json.loads(JsonFormatter("order-saga").format(record))
        CORRELATION_ID.reset(marker)
    context = span.get_span_context()
    assert line["message"] == "retrying POST"
    assert line["level"] == "WARNING"
    assert line["service"] == "order-saga"
    assert line["trace_id"] == format_trace_id(context.trace_id)
    assert line["span_id"] == format_span_id(context.span_id)
    assert line["correlation_id"] == "c-1"
    assert "trace_id" not in json.loads(JsonFormatter("order-saga").format(record))


def _parent(span: ReadableSpan) -> tuple[int, int] | None:
    return None if span.parent is None else (span.parent.trace_id, span.parent.span_id)
