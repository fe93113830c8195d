"""One partition's transactional producer: creating it fences every earlier writer of the partition,
and each of its transactions either appends a batch or proves that no other writer has fenced it.

The transactional id is the partition's, so `InitProducerId` for a new owner bumps the epoch: the
broker then refuses every later request of an older epoch (ProducerFenced), and aborts a transaction
the previous owner left open.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import InvalidProducerEpoch, ProducerFenced

from event_schemas.envelope import Event
from event_schemas.registry import EventRegistry


class Fenced(Exception):
    """Another instance has since taken the partition over (a newer epoch of its transactional id)."""


@dataclass(frozen=True)
class ProducerSettings:
    bootstrap_servers: str
    transactional_id: str
    # Where each ownership proof records the writer's position (a group with no members).
    checkpoint_group: str
    request_timeout: float
    # The broker aborts a transaction left open longer than this; an open transaction holds back its
    # partition's committed end (every read_committed reader waits), so seconds, not the default 60 s.
    transaction_timeout: float


# AddOffsetsToTxn right after a commit meets CONCURRENT_TRANSACTIONS (the markers are being written)
# and is retried after retry_backoff_ms: the default 100 ms made an ownership proof take 93 ms; with
# 3 ms it takes 8.6 ms (measured against the local broker). Metadata retries use it too, which a
# short request timeout bounds.
RETRY_BACKOFF_MS = 3


class PartitionProducer:
    def __init__(
        self, settings: ProducerSettings, partition: TopicPartition, registry: EventRegistry
    ) -> None:
        self._settings = settings
        self._partition = partition
        self._registry = registry
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap_servers,
            transactional_id=settings.transactional_id,
            enable_idempotence=True,
            acks="all",
            request_timeout_ms=int(settings.request_timeout * 1000),
            transaction_timeout_ms=self.transaction_timeout_ms,
            retry_backoff_ms=RETRY_BACKOFF_MS,
        )

    @property
    def transaction_timeout_ms(self) -> int:
        return int(self._settings.transaction_timeout * 1000)

    async def fence(self) -> None:
        """Start, and fence every earlier epoch: an empty transaction waits for InitProducerId, which
        completes (aborts) any transaction a previous owner left open."""
        await self._producer.start()
        await self._producer.begin_transaction()
        await self._producer.commit_transaction()

    async def append(
        self, events: Sequence[Event], traced: Mapping[int, Sequence[tuple[str, bytes]]] | None = None
    ) -> list[int]:
        """One transaction holding `events`, in order; answers their offsets once it is committed.
        `traced` adds the trace context of the request that decided them to the headers of events (by
        their index in `events`).

        No `async with transaction()`: its abort would wait on a dead broker during cancellation. An
        unfinished transaction is aborted by the next owner's fencing, or by the transaction timeout."""
        with _fencing_named():
            await self._producer.begin_transaction()
            deliveries = [
                await self._producer.send(
                    self._partition.topic,
                    value=self._registry.to_bytes(event),
                    key=event.aggregate_id.encode(),
                    partition=self._partition.partition,
                    headers=self._registry.headers(event) + list(traced.get(index, ()))
                    if traced
                    else self._registry.headers(event),
                )
                for index, event in enumerate(events)
            ]
            await self._producer.commit_transaction()
            return [(await delivery).offset for delivery in deliveries]

    async def prove_ownership(self, next_offset: int) -> None:
        """A transaction that appends nothing but still reaches the transaction coordinator, so it fails
        if another writer has fenced this one: answers decided without an append (a read, a no-op) are
        then known to come from the log's current state. It records `next_offset` as the writer's
        position in the checkpoint group, which operators can read as the command side's progress."""
        with _fencing_named():
            await self._producer.begin_transaction()
            await self._producer.send_offsets_to_transaction(
                {self._partition: next_offset}, self._settings.checkpoint_group
            )
            await self._producer.commit_transaction()

    async def close(self) -> None:
        self._let_go_of_the_open_transaction()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._producer.stop(), self._settings.request_timeout)

    def _let_go_of_the_open_transaction(self) -> None:
        """A producer given up on mid-transaction (its commit timed out) still learns the outcome later,
        typically ProducerFenced once its successor has fenced it, in a future of aiokafka's that
        nobody awaits any more; read it, so asyncio does not report it as an error never retrieved."""
        manager = getattr(self._producer, "_txn_manager", None)
        waiter = getattr(manager, "_transaction_waiter", None)
        if isinstance(waiter, asyncio.Future):
            waiter.add_done_callback(_read_outcome)


@contextlib.contextmanager
def _fencing_named() -> Iterator[None]:
    try:
        yield
    except (ProducerFenced, InvalidProducerEpoch) as error:
        raise Fenced(str(error)) from error


def _read_outcome(outcome: asyncio.Future[object]) -> None:
    if not outcome.cancelled():
        outcome.exception()
