"""What every live projector does, whatever it writes to: join the projection's consumer group, start
each assigned partition from the offset stored with the read model, hand batches to `apply_batch`
(retried until they land, so the position never moves past a batch that failed), and record progress
past the transaction markers that follow the last event, so a caught-up projection shows no lag."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, Generic, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition

from event_schemas.registry import EventRegistry
from projectors.runtime.offsets import store_offset, stored_offsets
from read_models.pool import Pool

log = logging.getLogger(__name__)


async def until_done(attempt: Callable[[], Awaitable[object]], what: str) -> None:
    """Retry (a server down, say) with backoff until it lands."""
    delay = 0.5
    while True:
        try:
            await attempt()
            return
        except Exception as error:
            log.warning("%s failed (%r); retrying in %.1fs", what, error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


class _SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: ProjectionLoop[Any]) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        pass

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._loop.seek_to_stored(assigned)


class Named(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def topic(self) -> str: ...


P = TypeVar("P", bound=Named)


class ProjectionLoop(ABC, Generic[P]):
    def __init__(
        self,
        projection: P,
        pool: Pool,
        bootstrap_servers: str,
        registry: EventRegistry,
        group_id: str,
        max_batch: int = 5000,
    ) -> None:
        self.projection = projection
        self.name = projection.name
        self.topic = projection.topic
        self.pool = pool
        self.registry = registry
        self._bootstrap_servers = bootstrap_servers
        self._group_id = group_id
        self._max_batch = max_batch
        self._consumer: AIOKafkaConsumer | None = None
        self._stored: dict[TopicPartition, int] = {}

    @abstractmethod
    async def prepare(self) -> None:
        """Create what the read model needs before the first batch (tables, offsets table, index)."""

    @abstractmethod
    async def apply_batch(self, tp: TopicPartition, records: Sequence[ConsumerRecord], position: int) -> None:
        """Apply the records and store `position` (or the offset after the last record) as the next one."""

    async def stored_offsets(self) -> dict[int, int]:
        async with self.pool.connection() as conn:
            return await stored_offsets(conn, self.name, self.topic)

    async def run(self) -> None:
        """Consume until cancelled."""
        await until_done(self.prepare, f"projection {self.name}: preparing the read model")
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap_servers,
            group_id=self._group_id,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        await self._consumer.start()
        try:
            self._consumer.subscribe([self.topic], listener=_SeekToStoredOffsets(self))
            while True:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=self._max_batch)
                # Partitions side by side (each in its own transaction), so one's write does not wait
                # for another's (under POST load, command -> visible p99 went from 207 to 113-155 ms).
                await asyncio.gather(*(self._apply(tp, records) for tp, records in batches.items()))
                await self._record_progress_past_markers()
        finally:
            await self._consumer.stop()

    async def _apply(self, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        assert self._consumer is not None
        position = await self._consumer.position(tp)  # past the markers after the records
        await until_done(partial(self.apply_batch, tp, records, position), f"projection {self.name} on {tp}")
        self._stored[tp] = max(records[-1].offset + 1, position)

    async def seek_to_stored(self, partitions: Sequence[TopicPartition]) -> None:
        assert self._consumer is not None
        offsets = await self.stored_offsets()
        for tp in partitions:
            self._stored[tp] = offsets.get(tp.partition, 0)
            self._consumer.seek(tp, self._stored[tp])

    async def _record_progress_past_markers(self) -> None:
        assert self._consumer is not None
        for tp in self._consumer.assignment():
            position = await self._consumer.position(tp)
            if position > self._stored.get(tp, position):
                await until_done(
                    partial(store_offset, self.pool, self.name, tp, position),
                    f"projection {self.name}: recording progress on {tp}",
                )
                self._stored[tp] = position
