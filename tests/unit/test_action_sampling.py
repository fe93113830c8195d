"""A user action is traced whole or not at all, decided once where it enters: a request not traced makes
no span, here or in the services it calls, and a caller's sampled `traceparent` is always followed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from config.telemetry import ActionSampler, inject_http_headers
from web.tracing import CorrelationMiddleware, request_telemetry

SAMPLED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
NOT_SAMPLED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


def traced_app(ratio: float, monkeypatch: pytest.MonkeyPatch) -> tuple[TestClient, InMemorySpanExporter]:
    """An app as the gateways build it, under a process-wide provider with the platform's sampler; its
    route starts a span of its own (an append's) and names the traceparent it would send on."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ActionSampler(ratio))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    app = FastAPI(telemetry=request_telemetry())

    @app.post("/products")
    async def create() -> dict[str, str]:
        with provider.get_tracer("tests").start_as_current_span("append Product"):
            headers: dict[str, str] = {}
            inject_http_headers(headers)
            return headers

    app.add_middleware(CorrelationMiddleware)
    return TestClient(app), exporter


@pytest.fixture
def never(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, InMemorySpanExporter]]:
    yield traced_app(0.0, monkeypatch)


def test_an_action_not_sampled_makes_no_span_and_tells_the_services_it_calls(
    never: tuple[TestClient, InMemorySpanExporter],
) -> None:
    client, exporter = never
    answered = client.post("/products")
    assert answered.status_code == 200
    assert exporter.get_finished_spans() == ()  # neither the server span nor the append
    sent = answered.json()["traceparent"].split("-")
    assert sent[3] == "00" and int(sent[1], 16) != 0  # a valid trace id, its sampled flag off


def test_a_callers_sampled_traceparent_is_traced_whole_whatever_the_ratio(
    never: tuple[TestClient, InMemorySpanExporter],
) -> None:
    client, exporter = never
    answered = client.post("/products", headers={"traceparent": SAMPLED})
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert set(spans) == {"POST /products", "append Product"}
    assert {span.context.trace_id for span in spans.values()} == {0x0AF7651916CD43DD8448EB211C80319C}
    assert answered.json()["traceparent"].endswith("-01")


def test_an_action_sampled_at_its_entry_is_traced_whole_and_a_callers_refusal_is_followed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, exporter = traced_app(1.0, monkeypatch)
    client.post("/products")
    spans = exporter.get_finished_spans()
    assert {span.name for span in spans} == {"POST /products", "append Product"}
    assert len({span.context.trace_id for span in spans}) == 1  # one trace: the append under the request
    exporter.clear()
    client.post("/products", headers={"traceparent": NOT_SAMPLED})
    assert exporter.get_finished_spans() == ()


@pytest.mark.parametrize("traceparent", [None, "garbage", "00-abc-def", "00-0af7-b7ad-zz"])
def test_without_a_readable_caller_decision_the_ratio_decides(traceparent: str | None) -> None:
    assert ActionSampler(1.0).decide(traceparent)
    assert not ActionSampler(0.0).decide(traceparent)
