"""Catching a read model up with the log, for reads that would otherwise answer "not found".

A read without a consistency token that misses (a product another instance has just created, say)
asks Kafka where the read model's topic ends now (committed records only), waits, boundedly, for the
projection to get there, and reads again: it then sees every write acknowledged before it asked.
Only misses pay for this (a ListOffsets round trip, shared by the misses that ask together, plus the
projector's lag); hits never wait.
"""

from __future__ import annotations

import asyncio
import logging
import time

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from read_models.pool import Pool

POLL_SECONDS = 0.02
log = logging.getLogger(__name__)


class LogEnds:
    """Where each partition of a topic ends now, for one process (one Kafka connection, started lazily)."""

    def __init__(self, bootstrap_servers: str, timeout: float = 2.0) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._timeout = timeout
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: dict[str, list[TopicPartition]] = {}
        # Callers that asked since the last request started share the next one, which starts after them.
        self._next: dict[str, asyncio.Future[dict[int, int]]] = {}

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def now(self, topic: str) -> dict[int, int]:
        """Partition -> the offset after its last committed record."""
        waiting = self._next.get(topic)
        if waiting is None:
            waiting = self._next[topic] = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._ask(topic, waiting)))
        return await asyncio.shield(waiting)

    async def partition_count(self, topic: str) -> int:
        """How many partitions the topic has (fixed for its life: asked once)."""
        if topic not in self._partitions:
            await asyncio.wait_for(self._describe(topic), self._timeout)
        return len(self._partitions[topic])

    async def _ask(self, topic: str, answer: asyncio.Future[dict[int, int]]) -> None:
        del self._next[topic]
        try:
            ends = await asyncio.wait_for(self._end_offsets(topic), self._timeout)
            answer.set_result({tp.partition: offset for tp, offset in ends.items()})
        except (KafkaError, OSError, TimeoutError) as error:
            answer.set_exception(error)

    async def _end_offsets(self, topic: str) -> dict[TopicPartition, int]:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap_servers,
                isolation_level="read_committed",
                enable_auto_commit=False,
            )
            await consumer.start()
            self._consumer = consumer
        if topic not in self._partitions:
            await self._describe(topic)
        ends: dict[TopicPartition, int] = await self._consumer.end_offsets(self._partitions[topic])
        return ends

    async def _describe(self, topic: str) -> None:
        if topic not in self._partitions:  # a topic's partitions are fixed for its life
            admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap_servers)
            await admin.start()
            try:
                [described] = await admin.describe_topics([topic])
            finally:
                await admin.close()
            if described["error_code"] != 0 or not described["partitions"]:
                raise KafkaError(f"topic {topic} is not there")
            numbers = sorted(partition["partition"] for partition in described["partitions"])
            self._partitions[topic] = [TopicPartition(topic, p) for p in numbers]


async def caught_up(pool: Pool, projection: str, topic: str, log_ends: LogEnds, within: float) -> bool:
    """Wait, at most `within` seconds, until the projection has applied every record committed to
    `topic` before now; False if Kafka did not answer or the projection did not get there in time."""
    deadline = time.monotonic() + within
    try:
        ends = await log_ends.now(topic)
    except (KafkaError, OSError, TimeoutError) as error:
        log.warning("cannot tell where %s ends: %r", topic, error)
        return False
    wanted = {partition: end for partition, end in ends.items() if end > 0}
    while wanted:
        try:
            async with pool.connection() as conn:
                cursor = await conn.execute(
                    "SELECT partition, next_offset FROM projection_offsets WHERE projection = %s AND topic = %s",
                    (projection, topic),
                )
                reached = {row["partition"]: row["next_offset"] for row in await cursor.fetchall()}
        except psycopg.errors.UndefinedTable:
            reached = {}
        wanted = {p: end for p, end in wanted.items() if reached.get(p, 0) < end}
        if not wanted:
            break
        if time.monotonic() >= deadline:
            log.warning(
                "%s has not reached the end of %s within %.1fs: %s", projection, topic, within, wanted
            )
            return False
        await asyncio.sleep(POLL_SECONDS)
    return True
