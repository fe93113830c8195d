"""Spans of a projector's batches, so that a command's trace shows where its events were applied.

A batch holds records of many commands, each traced (or not) in its own trace. A span belongs to one
trace, so a batch gets an `apply <projection>` span in the trace of each command whose events it holds,
a child of the append that wrote them: every trace viewer then draws the apply under its command. All
of them cover the same batch, from its first try to its commit. Past `MAX_TRACES_PER_BATCH` traces (a
replay, a burst) that would be many spans per transaction, so the batch gets one span of its own
instead, linked to each record's context: a viewer shows the link from the batch, not the apply
inside each command's trace.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from aiokafka import ConsumerRecord, TopicPartition
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from config.telemetry import CORRELATION_ID, TRACER, kafka_trace_context, tracing

MAX_TRACES_PER_BATCH = 32
# What the SDK keeps by default (OTEL_SPAN_LINK_COUNT_LIMIT): more would be dropped anyway.
MAX_LINKS = 128


@dataclass(frozen=True)
class _TracedRecord:
    context: Context
    offset: int
    correlation_id: str | None


@dataclass(frozen=True)
class BatchSpans:
    spans: tuple[Span, ...] = ()

    def parked(self, offset: int, error: BaseException) -> None:
        """The batch was applied up to a record that cannot be, where its partition now waits."""
        for span in self.spans:
            span.set_attribute("commerce.parked_at", offset)
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"parked at offset {offset}"))


@contextlib.contextmanager
def apply_spans(
    projection: str, tp: TopicPartition, records: Sequence[ConsumerRecord]
) -> Iterator[BatchSpans]:
    """The spans of one batch of one partition, open while it is applied (none with tracing off, or
    when none of its records was appended in a trace)."""
    if not tracing():
        yield BatchSpans()
        return
    by_trace = _first_record_of_each_trace(records)
    if not by_trace:
        yield BatchSpans()
        return
    name = f"apply {projection}"
    attributes: dict[str, AttributeValue] = {
        "commerce.projection": projection,
        "messaging.system": "kafka",
        "messaging.destination.name": tp.topic,
        "messaging.destination.partition.id": str(tp.partition),
        "messaging.batch.message_count": len(records),
        "messaging.kafka.offset": records[0].offset,
    }
    if len(by_trace) <= MAX_TRACES_PER_BATCH:
        spans = tuple(
            TRACER.start_span(
                name,
                context=record.context,
                kind=SpanKind.CONSUMER,
                attributes=attributes | _own(record),
            )
            for record in by_trace.values()
        )
    else:
        links = [
            Link(trace.get_current_span(record.context).get_span_context())
            for record in list(by_trace.values())[:MAX_LINKS]
        ]
        spans = (TRACER.start_span(name, kind=SpanKind.CONSUMER, attributes=attributes, links=links),)
    # Log lines written while applying carry the trace and correlation ids when the batch has one trace.
    only = next(iter(by_trace.values())) if len(spans) == 1 and len(by_trace) == 1 else None
    marker = CORRELATION_ID.set(only.correlation_id) if only is not None else None
    try:
        with trace.use_span(spans[0], end_on_exit=False) if only is not None else contextlib.nullcontext():
            yield BatchSpans(spans)
    except BaseException as error:
        for span in spans:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        raise
    finally:
        if marker is not None:
            CORRELATION_ID.reset(marker)
        for span in spans:
            span.end()


def _first_record_of_each_trace(records: Sequence[ConsumerRecord]) -> dict[int, _TracedRecord]:
    by_trace: dict[int, _TracedRecord] = {}
    for record in records:
        context, correlation_id = kafka_trace_context(record.headers)
        if context is None:
            continue
        trace_id = trace.get_current_span(context).get_span_context().trace_id
        if trace_id not in by_trace:
            by_trace[trace_id] = _TracedRecord(context, record.offset, correlation_id)
    return by_trace


def _own(record: _TracedRecord) -> dict[str, AttributeValue]:
    """What differs between the spans of one batch: where the trace's records start, and its command."""
    own: dict[str, AttributeValue] = {"messaging.kafka.offset": record.offset}
    if record.correlation_id is not None:
        own["commerce.correlation_id"] = record.correlation_id
    return own
