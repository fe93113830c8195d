"""The metrics the dashboard's business and worker panels are made of: events applied per projection and
type (orders and payments per minute), projector batch sizes, and the order saga's steps."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from prometheus_client import REGISTRY as METRICS

from command_api.orders.saga import OrderSaga, StepRefused, step_for
from command_api.orders.saga_runner import (
    HttpOrderCommands,
    OrderSagaRunner,
    StepDeadLettered,
    raise_if_stopped,
)
from config.settings import Settings
from event_schemas.envelope import Event
from event_schemas.money import Money
from event_schemas.orders import OrderCancelled, OrderConfirmed, OrderPaid
from event_schemas.registry import REGISTRY
from projectors.runtime.consume_loop import ProjectionLoop
from projectors.runtime.dead_letters import DeadLetterTopic
from read_models.pool import Pool
from tests.support.kafka_log import consumer_record

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TOPIC = "t1.orders.events"


def sample(name: str, **labels: str) -> float:
    return METRICS.get_sample_value(name, labels) or 0.0


def cancelled(order_number: int = 5004) -> OrderCancelled:
    return OrderCancelled(
        aggregate_id=f"order-{order_number}",
        aggregate_version=3,
        occurred_at=NOW,
        order_number=order_number,
        reason="customer",
    )


def paid(order_number: int = 5004) -> OrderPaid:
    return OrderPaid(
        aggregate_id=f"order-{order_number}",
        aggregate_version=3,
        occurred_at=NOW,
        order_number=order_number,
        intent_id="pi_1",
        amount=Money(amount=Decimal(2)),
    )


def record(event: Event, offset: int) -> ConsumerRecord[bytes, bytes]:
    return consumer_record(TopicPartition(TOPIC, 0), offset, event)


# the order saga


def test_each_event_that_sets_off_a_saga_step_names_it_and_the_others_name_none() -> None:
    assert step_for(cancelled()) == "release_stock"
    assert step_for(paid()) == "commit_stock"
    confirmed = OrderConfirmed(
        aggregate_id="order-5004",
        aggregate_version=2,
        occurred_at=NOW,
        order_number=5004,
        payment_due=NOW,
    )
    assert step_for(confirmed) is None


@dataclass
class ScriptedSaga:
    """Refuses the steps of the orders it is told to, takes the others."""

    refuse: set[int]

    async def handle(self, event: Event) -> None:
        if getattr(event, "order_number", None) in self.refuse:
            raise StepRefused("409 for the test")


class RunnerWithoutDatabase(OrderSagaRunner):
    """Keeps its dead letters in a list."""

    parked: list[int]

    async def _park(
        self, record: Any, step: str | None, error: BaseException, *, waiting_behind: bool = False
    ) -> None:
        self.parked.append(record.offset)


def run_saga(saga: ScriptedSaga, *events: Event) -> list[int]:
    runner = RunnerWithoutDatabase(
        cast(OrderSaga, saga), cast(HttpOrderCommands, None), Settings(), cast(Pool, None)
    )
    runner.parked = []

    async def steps() -> None:
        for offset, event in enumerate(events):
            with contextlib.suppress(StepDeadLettered):
                await runner._take_step(record(event, offset))

    asyncio.run(steps())
    return runner.parked


def test_the_runner_counts_each_step_by_its_outcome() -> None:
    done = sample("saga_steps_total", step="release_stock", outcome="done")
    refused = sample("saga_steps_total", step="commit_stock", outcome="dead_lettered")
    parked = run_saga(ScriptedSaga(refuse={6004}), cancelled(5004), paid(6004), cancelled(7004))
    assert sample("saga_steps_total", step="release_stock", outcome="done") == done + 2
    assert sample("saga_steps_total", step="commit_stock", outcome="dead_lettered") == refused + 1
    assert parked == [1]


# the projectors


class CountingLoop(ProjectionLoop[Any]):
    """The loop's bookkeeping around a batch, with a read model that takes every batch."""

    async def prepare(self) -> None:
        return None

    async def apply_batch(self, tp: TopicPartition, records: Sequence[ConsumerRecord], position: int) -> None:
        return None


class Consumer:
    async def position(self, tp: TopicPartition) -> int:
        return 3


@dataclass(frozen=True)
class Named:
    name: str = "orders-test"
    topic: str = TOPIC


def test_a_projector_counts_the_events_it_applied_by_type_and_the_size_of_each_batch() -> None:
    loop = CountingLoop(
        Named(), cast(Pool, None), "", REGISTRY, "group", cast(DeadLetterTopic, None), max_batch=10
    )
    loop._consumer = cast(Any, Consumer())
    tp = TopicPartition(TOPIC, 0)
    loop._started[tp] = 1
    batch = [record(cancelled(5004), 0), record(paid(6004), 1), record(cancelled(7004), 2)]
    asyncio.run(loop._apply(tp, batch, 1))
    name = "projector_events_applied_total"
    assert sample(name, projection="orders-test", event_type="OrderCancelled") == 2
    assert sample(name, projection="orders-test", event_type="OrderPaid") == 1
    assert sample("projector_batch_records_count", projection="orders-test") == 1
    assert sample("projector_batch_records_sum", projection="orders-test") == 3


def test_a_batch_fetched_before_its_partition_was_started_again_is_not_counted() -> None:
    loop = CountingLoop(
        Named("orders-stale"), cast(Pool, None), "", REGISTRY, "group", cast(DeadLetterTopic, None)
    )
    loop._consumer = cast(Any, Consumer())
    tp = TopicPartition(TOPIC, 0)
    loop._started[tp] = 2
    asyncio.run(loop._apply(tp, [record(paid(), 0)], 1))
    assert sample("projector_events_applied_total", projection="orders-stale", event_type="OrderPaid") == 0


@pytest.mark.parametrize("event", [cancelled(), paid()])
def test_every_event_type_header_the_projectors_count_by_is_the_registry_s(event: Event) -> None:
    assert dict(REGISTRY.headers(event))["event_type"] == event.event_type.encode()


def test_a_background_task_of_the_saga_that_stops_stops_the_runner() -> None:
    async def scenario() -> None:
        async def sweep() -> None:
            raise KeyError("a bug in the sweep")

        async def decisions() -> None:
            await asyncio.sleep(3600)

        tasks = [asyncio.create_task(sweep(), name="order-expiry-sweep"), asyncio.create_task(decisions())]
        await asyncio.sleep(0)
        raise_if_stopped(tasks[1:])  # still running: nothing to say
        with pytest.raises(RuntimeError, match="order-expiry-sweep stopped") as stopped:
            raise_if_stopped(tasks)
        assert isinstance(stopped.value.__cause__, KeyError)
        tasks[1].cancel()

    asyncio.run(scenario())


class HangingSaga:
    """Takes no step to its end (a command side that never answers)."""

    async def handle(self, event: Event) -> None:
        await asyncio.Event().wait()


def test_a_step_cut_short_is_never_passed_by_the_committed_position() -> None:
    async def scenario() -> int | None:
        runner = RunnerWithoutDatabase(
            cast(OrderSaga, HangingSaga()), cast(HttpOrderCommands, None), Settings(), cast(Pool, None)
        )
        runner.parked = []
        tp = TopicPartition(TOPIC, 0)
        runner._dispatch(tp, record(cancelled(5004), 7))
        await asyncio.sleep(0.01)
        for task in list(runner._chains.values()):  # the partition is revoked mid-step
            task.cancel()
        await asyncio.gather(*runner._chains.values(), return_exceptions=True)
        return runner._progress[tp].committable()

    # The next owner starts at offset 7, and takes the step again.
    assert asyncio.run(scenario()) == 7
