"""This instance's membership in its command service's consumer group: which partitions it owns, and
which instance owns each of the others.

The group only hands partitions out; it never fetches (owned partitions are paused). Revocation is
not acted on: the partitions a rebalance leaves here keep their writers, producers and state, and
the ones it moves away are released when the new assignment arrives. Writing on during a rebalance
is safe because the new owner fences this one before it decides anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from command_api.eventstore.routing import Routes, routing_assignor

log = logging.getLogger(__name__)


class TopicMissing(KafkaError):  # type: ignore[misc]
    """The context's topic has not been created (`python -m infra.topics`)."""


async def partition_count(bootstrap_servers: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        await admin.start()
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described["error_code"] != 0 or not described["partitions"]:
        raise TopicMissing(f"topic {topic} does not exist; run `python -m infra.topics` first")
    return len(described["partitions"])


Assigned = Callable[[set[int]], Awaitable[None]]


class GroupMembership:
    # A member that stops heartbeating (paused, partitioned away) loses its partitions after this.
    SESSION_TIMEOUT_MS = 10_000

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        topic: str,
        group: str,
        instance_url: str,
        on_assigned: Assigned,
        owned: Callable[[], list[int]],
    ) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._topic = topic
        self._group = group
        self._instance_url = instance_url
        self._on_assigned = on_assigned
        self._owned = owned
        self._routes: dict[int, str] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.partitions = 0  # the topic's partition count, once connected
        self.assigned = asyncio.Event()
        self.unreachable = asyncio.Event()

    async def start(self) -> None:
        """Join in the background: while Kafka cannot be reached the service is up and answers 503."""
        self._task = asyncio.create_task(self._join_and_stay(), name=f"{self._group}-membership")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    def owner_of(self, partition: int) -> str | None:
        return self._routes.get(partition)

    def routes(self) -> dict[int, str]:
        return dict(self._routes)

    async def _join_and_stay(self) -> None:
        delay = 0.5
        while self._consumer is None:
            try:
                await self._join()
            except (KafkaError, OSError) as error:
                log.warning("%s: cannot reach Kafka yet (%r); retrying in %.1fs", self._group, error, delay)
                self.unreachable.set()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        # Keep polling so the group sees us alive; owned partitions are paused, so nothing is fetched.
        while True:
            try:
                await self._consumer.getmany(timeout_ms=1_000)
            except KafkaError as error:
                log.warning("command-side group %s: %r", self._group, error)
                await asyncio.sleep(1)

    async def _join(self) -> None:
        self.partitions = await partition_count(self._bootstrap_servers, self._topic)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap_servers,
            group_id=self._group,
            enable_auto_commit=False,
            isolation_level="read_committed",
            partition_assignment_strategy=(
                routing_assignor(self._instance_url, self._on_routes, self._owned_here),
            ),
            session_timeout_ms=self.SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=1_000,
        )
        try:
            await consumer.start()
        except BaseException:
            await consumer.stop()
            raise
        consumer.subscribe([self._topic], listener=_Listener(self))
        self._consumer = consumer

    def _on_routes(self, routes: Routes) -> None:
        self._routes = dict(routes.get(self._topic, {}))

    def _owned_here(self) -> dict[str, list[int]]:
        return {self._topic: self._owned()}

    async def take_assignment(self, partitions: list[TopicPartition]) -> None:
        assert self._consumer is not None
        self._consumer.pause(*partitions)
        await self._on_assigned({tp.partition for tp in partitions})
        self.assigned.set()


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, membership: GroupMembership) -> None:
        self._membership = membership

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Nothing to do until the new assignment says which partitions actually move."""

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._membership.take_assignment(assigned)
