"""The order saga's steps as spans: each step an event sets off is a child of the append that wrote the
event (its context travels in the record's headers), so an order's trace goes on from `POST /orders`
through the saga's calls to the catalog and back. The event's correlation id goes into the step's log
lines and, through the saga's HTTP calls, into the events those commands append."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

from aiokafka import TopicPartition
from opentelemetry.trace import SpanKind

from command_api.orders.saga import step_for
from config.telemetry import ACTION_SAMPLED, CORRELATION_ID, TRACER, kafka_trace_context, tracing
from event_schemas.envelope import Event


@contextlib.contextmanager
def step_span(
    event: Event, headers: Iterable[tuple[str, bytes]] | None, tp: TopicPartition, offset: int
) -> Iterator[None]:
    """Open while the saga handles `event`: a span `saga <step>` if the event sets a step off."""
    marker = CORRELATION_ID.set(None if event.correlation_id is None else str(event.correlation_id))
    try:
        step = step_for(event)
        if step is None or not tracing():
            yield
            return
        appended_in, _ = kafka_trace_context(headers)
        if appended_in is None:
            # The action that appended the event was not traced: neither is its step, nor what the step
            # asks of the other services (they hear so from the calls' headers).
            decided = ACTION_SAMPLED.set(False)
            try:
                yield
            finally:
                ACTION_SAMPLED.reset(decided)
            return
        attributes = {
            "commerce.saga.step": step,
            "commerce.event_type": event.event_type,
            "commerce.aggregate_id": event.aggregate_id,
            "messaging.system": "kafka",
            "messaging.destination.name": tp.topic,
            "messaging.destination.partition.id": str(tp.partition),
            "messaging.kafka.offset": offset,
        }
        if event.correlation_id is not None:
            attributes["commerce.correlation_id"] = str(event.correlation_id)
        name = f"saga {step.replace('_', ' ')}"
        with TRACER.start_as_current_span(
            name, context=appended_in, kind=SpanKind.CONSUMER, attributes=attributes
        ):
            yield
    finally:
        CORRELATION_ID.reset(marker)


@contextlib.contextmanager
def expiry_span(order_number: int) -> Iterator[None]:
    """The sweep's expiry of an unpaid order: set off by the clock, not by an event, so a trace of its own."""
    if not tracing():
        yield
        return
    with TRACER.start_as_current_span(
        "saga expire unpaid order", attributes={"commerce.order_number": order_number}
    ):
        yield
