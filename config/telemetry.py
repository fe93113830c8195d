"""Tracing, set up once per process where it starts, and the W3C trace context carried between processes:
in HTTP headers, and in the Kafka headers of every event a traced command appends.

Off unless a collector (`COMMERCE_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`) or a traces file
(`COMMERCE_TRACES_FILE`) is set: the OpenTelemetry API then stays the no-op it is by default, no span
records, and the hot paths below build no headers (they ask `recording()` first).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
from collections.abc import Iterable, Iterator, MutableMapping, Sequence
from contextvars import ContextVar
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

from config.settings import Settings

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
# The command's correlation id, beside the trace context in the Kafka headers of a traced event, so a
# consumer can name it without decoding the event (the envelope keeps it either way).
CORRELATION_HEADER = "correlation_id"
_TRACE_HEADERS = frozenset((TRACEPARENT, TRACESTATE, CORRELATION_HEADER))

# What one user action's logs and spans share across processes: set from the request's
# X-Correlation-Id (or X-Request-Id), the command's own id, or the event being handled.
CORRELATION_ID: ContextVar[str | None] = ContextVar("correlation_id", default=None)

# Whether the user action being served is traced, decided once where it enters this process (an HTTP
# request, web/tracing.py; a saga step, from its record) before any span: None where nothing decided.
# An action decided against makes no span at all, here or in the processes it calls (it sends them an
# unsampled `traceparent`), and costs next to nothing.
ACTION_SAMPLED: ContextVar[bool | None] = ContextVar("action_sampled", default=None)

# Every module's spans come from this one tracer: until `configure_tracing` runs it is the API's proxy,
# which hands out non-recording spans.
TRACER = trace.get_tracer("commerce")

# Only W3C trace context: a client's `baggage` is not ours to pass on into the log.
_W3C = TraceContextTextMapPropagator()
_configured = False


def configure_tracing(service_name: str, settings: Settings) -> bool:
    """Install the process's tracer provider if anywhere to send spans is configured; True if so. Spans
    are exported in the background (BatchSpanProcessor), and flushed when the process exits."""
    global _configured
    exporter = _exporter(settings)
    if exporter is None:
        return False
    resource = Resource.create(
        {
            "service.name": service_name,
            "service.namespace": settings.namespace,
            "service.instance.id": f"{socket.gethostname()}:{os.getpid()}",
        }
    )
    provider = TracerProvider(resource=resource, sampler=ActionSampler(settings.traces_sample_ratio))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _configured = True
    log.info("tracing %s to %s", service_name, _destination(settings))
    return True


class ActionSampler(Sampler):
    """ParentBased(TraceIdRatioBased), but a root span follows the decision its action's entry took
    (ACTION_SAMPLED), so that a request is traced whole or not at all, and one not traced makes no span."""

    def __init__(self, ratio: float) -> None:
        self._ratio = ratio
        self._parent_based = ParentBased(TraceIdRatioBased(ratio))

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        decided = ACTION_SAMPLED.get()
        if decided is not None and not trace.get_current_span(parent_context).get_span_context().is_valid:
            return SamplingResult(Decision.RECORD_AND_SAMPLE if decided else Decision.DROP, attributes)
        return self._parent_based.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"ActionSampler{{{self._ratio}}}"

    def decide(self, traceparent: str | None) -> bool:
        """Whether an action that enters with this `traceparent` header (or none) is traced: as its
        caller decided, else one in 1/ratio."""
        if traceparent is not None:
            parts = traceparent.strip().split("-")
            if len(parts) == 4 and len(parts[3]) == 2:
                with contextlib.suppress(ValueError):
                    return bool(int(parts[3], 16) & 0x01)
        return random.random() < self._ratio  # noqa: S311 (a sampling draw, not a secret)


def decide_action(traceparent: str | None) -> bool:
    """Decide whether the action entering now (with the caller's `traceparent`, if any) is traced, and
    note it for its spans."""
    sampler = getattr(trace.get_tracer_provider(), "sampler", None)
    if not isinstance(sampler, ActionSampler):
        return True  # a provider of another making (a test's) decides with its own sampler
    sampled = sampler.decide(traceparent)
    ACTION_SAMPLED.set(sampled)
    return sampled


def _exporter(settings: Settings) -> SpanExporter | None:
    standard = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if settings.otlp_endpoint or standard:
        # Imported here: it pulls in requests and protobuf, which a process without a collector never needs.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        if settings.otlp_endpoint:
            return OTLPSpanExporter(endpoint=settings.otlp_endpoint.rstrip("/") + "/v1/traces")
        return OTLPSpanExporter()  # it reads the OTEL_EXPORTER_OTLP_* variables itself
    if settings.traces_file is not None:
        from config.span_file import JsonLinesSpanExporter

        return JsonLinesSpanExporter(settings.traces_file, settings.traces_file_max_bytes)
    return None


def _destination(settings: Settings) -> str:
    if settings.otlp_endpoint:
        return settings.otlp_endpoint
    return os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or str(settings.traces_file)


def tracing() -> bool:
    """Whether this process records spans: consumers ask before they read trace headers."""
    return _configured


def recording() -> bool:
    """Whether the current span records: the hot paths ask before building anything for a trace."""
    return trace.get_current_span().is_recording()


# Kafka


def kafka_trace_headers() -> list[tuple[str, bytes]]:
    """The current span's context (and the correlation id, if known) as Kafka headers."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    headers = [(name, value.encode()) for name, value in carrier.items()]
    correlation_id = CORRELATION_ID.get()
    if correlation_id is not None:
        headers.append((CORRELATION_HEADER, correlation_id.encode()))
    return headers


def kafka_trace_context(headers: Iterable[tuple[str, bytes]] | None) -> tuple[Context | None, str | None]:
    """The span context a record was appended in (None if untraced) and its command's correlation id."""
    carrier = {
        name: value.decode("latin-1") for name, value in headers or () if name in _TRACE_HEADERS and value
    }
    correlation_id = carrier.pop(CORRELATION_HEADER, None)
    if TRACEPARENT not in carrier:
        return None, correlation_id
    return _valid(_W3C.extract(carrier)), correlation_id


# HTTP


def inject_http_headers(headers: MutableMapping[str, str]) -> None:
    """Carry the current span's context on an outgoing request; an incoming request's own
    `traceparent`, copied along, is replaced by ours. An action decided against tells the callee so
    (a `traceparent` with its sampled flag off), so that it does not trace its part of the action."""
    traced = recording()
    if traced or ACTION_SAMPLED.get() is False:
        for name in [name for name in headers if name.lower() in (TRACEPARENT, TRACESTATE)]:
            del headers[name]
    if traced:
        _W3C.inject(headers)
    elif ACTION_SAMPLED.get() is False:
        headers[TRACEPARENT] = f"00-{random.getrandbits(128):032x}-{random.getrandbits(64) or 1:016x}-00"


@contextlib.contextmanager
def http_client_span(method: str, url: str) -> Iterator[Span]:
    """A client span around an outgoing request when the caller is traced (the API's non-recording span
    otherwise, whose setters do nothing); `inject_http_headers` inside it carries it on."""
    if not recording():
        yield trace.INVALID_SPAN
        return
    attributes = {"http.request.method": method, "url.full": url}
    name = f"{method} {urlsplit(url).path}"
    with TRACER.start_as_current_span(name, kind=SpanKind.CLIENT, attributes=attributes) as span:
        yield span


def _valid(context: Context) -> Context | None:
    return context if trace.get_current_span(context).get_span_context().is_valid else None
