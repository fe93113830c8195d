"""Spans written as JSON lines by several processes into one file, and read back as one trace's waterfall."""

from __future__ import annotations

from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, format_span_id, format_trace_id

from config.span_file import JsonLinesSpanExporter, read_spans
from config.telemetry import kafka_trace_context, kafka_trace_headers
from config.trace_view import html_page, latest_traces, load_trace, waterfall


def process(service: str, path: Path) -> TracerProvider:
    """One process's provider, exporting to the shared file."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
    return provider


def test_each_span_is_one_json_line_with_its_ids_service_times_and_attributes(tmp_path: Path) -> None:
    path = tmp_path / "traces" / "spans.jsonl"  # the directory is made on first use
    tracer = process("catalog", path).get_tracer("tests")
    with tracer.start_as_current_span("POST /products", kind=SpanKind.SERVER) as server:
        with tracer.start_as_current_span(
            "append Product", attributes={"messaging.kafka.offset": 41}
        ) as append:
            append.add_event("decided", {"commerce.batch.requests": 3})
        server.set_status(Status(StatusCode.ERROR, "answered 503"))

    first, second = read_spans(path)
    assert first["name"] == "append Product"
    assert first["service"] == "catalog"
    assert first["trace_id"] == format_trace_id(server.get_span_context().trace_id)
    assert first["span_id"] == format_span_id(append.get_span_context().span_id)
    assert first["parent_span_id"] == format_span_id(server.get_span_context().span_id)
    assert first["attributes"] == {"messaging.kafka.offset": 41}
    assert first["events"][0]["name"] == "decided"
    assert 0 < first["start_ns"] <= first["end_ns"]
    assert second["parent_span_id"] is None
    assert second["kind"] == "SERVER"
    assert second["status"] == {"code": "ERROR", "description": "answered 503"}


def test_a_line_cut_short_by_a_killed_process_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    with process("catalog", path).get_tracer("tests").start_as_current_span("whole"):
        pass
    with path.open("ab") as spans:
        spans.write(b'{"trace_id": "ab')
    assert [span["name"] for span in read_spans(path)] == ["whole"]


def test_the_file_is_rotated_once_at_its_size_by_whichever_process_writes_first(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    providers = []
    for service in ("catalog", "orders"):
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path, max_bytes=2048)))
        providers.append(provider)
    for n in range(40):
        with providers[n % 2].get_tracer("tests").start_as_current_span(f"span {n}"):
            pass
    assert path.stat().st_size < 2048 + 1024  # rotated, not grown
    kept = [span["name"] for span in read_spans(path)]
    assert kept == [f"span {n}" for n in range(40 - len(kept), 40)], "the newest, in order, none twice"
    assert (tmp_path / "spans.jsonl.1").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spans.jsonl", "spans.jsonl.1"]


def test_a_trace_across_processes_reads_as_one_waterfall(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    orders = process("orders", path).get_tracer("tests")
    projector = process("projector-orders", path).get_tracer("tests")
    with (
        orders.start_as_current_span("POST /orders", kind=SpanKind.SERVER) as server,
        orders.start_as_current_span("append Cart+Order", kind=SpanKind.PRODUCER),
    ):
        headers = kafka_trace_headers()
    appended_in, _ = kafka_trace_context(headers)
    with projector.start_as_current_span("apply orders", context=appended_in, kind=SpanKind.CONSUMER):
        pass
    appended = trace.get_current_span(appended_in).get_span_context()
    with projector.start_as_current_span("apply orders (a replay)", links=[Link(appended)]):
        pass
    with orders.start_as_current_span("GET /health"):  # another trace
        pass

    trace_id = format_trace_id(server.get_span_context().trace_id)
    shown = load_trace(read_spans(path), trace_id)

    assert [(row.depth, row.span["name"], row.linked) for row in shown.rows] == [
        (0, "POST /orders", False),
        (1, "append Cart+Order", False),
        (2, "apply orders", False),
        (2, "apply orders (a replay)", True),
    ]
    assert shown.services == ["orders", "projector-orders"]
    text = waterfall(shown)
    assert text.startswith(f"trace {trace_id}: 4 spans, 2 services")
    assert "      apply orders" in text
    page = html_page(shown)
    assert page.startswith("<!doctype html>")
    assert "append Cart+Order" in page
    assert "projector-orders" in page
    assert latest_traces(read_spans(path), 10)[-1].startswith(trace_id)  # newest first: it began first
