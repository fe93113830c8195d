"""Following the users topic into the revocations view, in every process that verifies tokens.

One consumer per process and no consumer group: it is assigned every partition of the users topic,
reads it from the view's horizon (committed records only) and keeps following it. The horizon is one
token lifetime (and the clock skew allowed) back: a revocation older than that ends only tokens
that have expired, so what the feed reads at start is bounded by an hour of the topic, not its
history. Kafka finds where that hour starts in each partition by the records' timestamps
(`offsets_for_times`: the first record stamped at or after it; each record is stamped when its event
is appended, at or after the event's own time, so no revocation within the hour is before it). Records are skipped by their
event-type header, so only role changes and revoked sessions are decoded. About once a second it asks
where the topic ends and, having read that far, confirms the view up to the moment it asked: a view
left unconfirmed (Kafka out of reach) makes the verifier refuse old admin tokens (auth/revocations.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from auth.revocations import REVOKING_EVENT_TYPES, Revocations
from event_schemas.registry import EVENT_TYPE_HEADER, EventRegistry, UnknownEvent

log = logging.getLogger(__name__)

_REVOKING_HEADERS = frozenset(event_type.encode() for event_type in REVOKING_EVENT_TYPES)


class RevocationFeed:
    """States: connecting (retried after `retry_every`, doubling up to `retry_at_most`, while Kafka
    cannot be reached), then following;
    `confirmed` is set the first time the view has read the topic to its end. A record of a revoking
    type that this version cannot read (a newer schema version) is logged and ends confirmation for
    the process's life, so the view never claims a completeness it lacks."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        view: Revocations,
        registry: EventRegistry,
        *,
        confirm_every: float = 1.0,
        request_timeout: float = 5.0,
        retry_every: float = 0.5,
        retry_at_most: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._topic = topic
        self._view = view
        self._registry = registry
        self._confirm_every = confirm_every
        self._request_timeout = request_timeout
        self._retry_every = retry_every
        self._retry_at_most = retry_at_most
        self._clock = clock
        self._confirmed = asyncio.Event()
        self._readable = True
        self._out_of_reach = False  # for logging the loss and return of Kafka once each
        self._task: asyncio.Task[None] | None = None
        # Where the feed started reading each partition, last time it connected, and how many revoking
        # records it has read since it started (for operators, tests).
        self.started_at: dict[int, int] = {}
        self.revocations_read = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="revocation-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def confirmed(self, within: float) -> bool:
        """Wait, at most `within` seconds, until the view has read the topic to its end once."""
        try:
            await asyncio.wait_for(self._confirmed.wait(), within)
        except TimeoutError:
            return False
        return True

    async def _run(self) -> None:
        retry = self._retry_every
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap_servers,
                enable_auto_commit=False,
                isolation_level="read_committed",
                auto_offset_reset="earliest",
                request_timeout_ms=int(self._request_timeout * 1000),
            )
            try:
                await consumer.start()
                retry = self._retry_every
                consumer.subscribe([self._topic])  # without a group: every partition is assigned to it
                await self._follow(consumer)
            except (KafkaError, OSError, TimeoutError) as error:
                self._lost_kafka(error)
            except Exception:  # never die unobserved: the view would go stale without a word
                log.exception("revocations feed failed; starting it again")
            finally:
                with contextlib.suppress(KafkaError, OSError):
                    await consumer.stop()
            await asyncio.sleep(retry)
            retry = min(retry * 2, self._retry_at_most)

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        loop = asyncio.get_running_loop()
        started: set[TopicPartition] = set()
        while True:
            partitions = consumer.assignment()
            if not partitions:  # the topic's partitions are not known yet (nothing is read before the seek)
                await asyncio.sleep(0.05)
                continue
            if partitions - started:
                await self._start_at_horizon(consumer, partitions - started)
                started |= partitions
            asked_at = self._clock()
            ends = await self._ends(consumer, partitions)
            if ends is None:  # Kafka did not answer: read what comes, ask again
                await self._read(consumer, self._confirm_every)
                continue
            while not await self._reached(consumer, ends):
                await self._read(consumer, self._confirm_every)
            if self._readable:
                self._view.confirm(asked_at)
                self._confirmed.set()
                self._found_kafka()
            self._view.forget_expired(asked_at)
            next_round = loop.time() + self._confirm_every
            while (left := next_round - loop.time()) > 0:
                await self._read(consumer, left)

    async def _start_at_horizon(self, consumer: AIOKafkaConsumer, partitions: set[TopicPartition]) -> None:
        """Seek each partition to the first record of the last token lifetime (its end if none)."""
        horizon_ms = int(self._view.horizon(self._clock()) * 1000)
        found = await asyncio.wait_for(
            consumer.offsets_for_times(dict.fromkeys(partitions, max(horizon_ms, 0))), self._request_timeout
        )
        ends = await asyncio.wait_for(consumer.end_offsets(list(partitions)), self._request_timeout)
        for partition in partitions:
            at = found.get(partition)
            offset = ends[partition] if at is None else at.offset
            consumer.seek(partition, offset)
            self.started_at[partition.partition] = offset

    async def _ends(
        self, consumer: AIOKafkaConsumer, partitions: set[TopicPartition]
    ) -> dict[TopicPartition, int] | None:
        try:
            ends: dict[TopicPartition, int] = await asyncio.wait_for(
                consumer.end_offsets(list(partitions)), self._request_timeout
            )
        except (KafkaError, OSError, TimeoutError) as error:
            self._lost_kafka(error)
            return None
        return ends

    async def _reached(self, consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
        for partition, end in ends.items():
            if await consumer.position(partition) < end:
                return False
        return True

    async def _read(self, consumer: AIOKafkaConsumer, seconds: float) -> None:
        batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = await consumer.getmany(
            timeout_ms=max(1, int(seconds * 1000)), max_records=10_000
        )
        for records in batches.values():
            for record in records:
                self._fold(record)

    def _fold(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if not _may_revoke(record.headers) or record.value is None:
            return
        try:
            event = self._registry.from_bytes(record.value)
        except (UnknownEvent, ValidationError, ValueError, KeyError, TypeError) as error:
            if self._readable:
                log.error(
                    "cannot read %s[%d] offset %d (%r): revocations after it may be missed, so admin "
                    "tokens older than the staleness bound are refused until this process is upgraded",
                    record.topic,
                    record.partition,
                    record.offset,
                    error,
                )
            self._readable = False
            return
        self.revocations_read += 1
        self._view.apply(event)

    def _lost_kafka(self, error: BaseException) -> None:
        if not self._out_of_reach:
            log.warning("revocations feed cannot reach Kafka (%r); retrying", error)
        self._out_of_reach = True

    def _found_kafka(self) -> None:
        if self._out_of_reach:
            log.info("revocations feed has caught up with %s again", self._topic)
        self._out_of_reach = False


def _may_revoke(headers: Sequence[tuple[str, bytes]]) -> bool:
    """By the event-type header; a record without one is decoded, to be safe."""
    for key, value in headers:
        if key == EVENT_TYPE_HEADER:
            return value in _REVOKING_HEADERS
    return True
