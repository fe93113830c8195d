"""Checkpoints of a partition's store, so that an instance with an empty disk (a new owner after a
hand-over, a replaced machine) fetches the partition's state instead of folding its whole log.

A checkpoint is a consistent copy of the partition's SQLite store (`VACUUM INTO`), compressed and
cut into chunks, in a compacted topic beside the events, `<topic>.checkpoints`, in the partition of
the same number: the chunks (keys `chunk-<i>`, so a newer checkpoint replaces an older one chunk by
chunk and compaction keeps one), then tombstones for the chunks the older one had beyond the newer
one's, then a manifest (key `manifest`) naming the checkpoint, its chunks, the offset of its first
chunk and the event offset it reaches. The manifest is therefore the partition's last record, and a
reader reads exactly one checkpoint's records: no record holds more than a chunk, so no checkpoint
size meets a record-size cliff.

A checkpoint is derived data: the fold of the partition's committed records below its offset, valid
for whoever owns the partition next; losing the topic costs a replay, never a fact. The manifest
carries an HMAC-SHA256 of the compressed copy under the deployment's checkpoint key: the store holds
pickled records, and unpickling runs code, so a copy that is not signed is never opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import tempfile
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from command_api.eventstore.membership import partition_count
from command_api.eventstore.partition_store import PartitionStore, stored_offset
from event_schemas.topics import checkpoints

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
# Under the broker's default record size (1 MiB), with room for the headers.
CHUNK_BYTES = 512 * 1024
MANIFEST_KEY = b"manifest"
CHECKPOINT_HEADER = "checkpoint"


def _chunk_key(index: int) -> bytes:
    return f"chunk-{index}".encode()


@dataclass(frozen=True)
class Manifest:
    checkpoint: str
    shape: str
    next_offset: int
    chunks: int
    first_chunk_offset: int
    signature: str

    def encode(self) -> bytes:
        return json.dumps({"format": CHECKPOINT_FORMAT, **self.__dict__}).encode()

    @classmethod
    def decode(cls, value: bytes) -> Manifest | None:
        fields: dict[str, Any] = json.loads(value)
        if fields.pop("format", None) != CHECKPOINT_FORMAT:
            return None
        return cls(**fields)


class CheckpointStore:
    """One per command-side event store: writes a partition's checkpoint, restores one into a store."""

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        topic: str,
        replication_factor: int,
        key: bytes,
        timeout: float,
    ) -> None:
        self.topic = checkpoints(topic)
        self._event_topic = topic
        self._bootstrap_servers = bootstrap_servers
        self._replication_factor = replication_factor
        self._key = key
        self._timeout = timeout
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()

    async def _started(self) -> AIOKafkaProducer:
        """The topic and the producer, made on the first write (so a service starts without Kafka)."""
        async with self._starting:
            if self._producer is None:
                await self._ensure_topic()
                producer = AIOKafkaProducer(
                    bootstrap_servers=self._bootstrap_servers,
                    acks="all",
                    enable_idempotence=True,  # chunks land once and in order, or the send fails
                    request_timeout_ms=int(max(self._timeout, 30) * 1000),
                )
                await producer.start()
                self._producer = producer
            return self._producer

    async def stop(self) -> None:
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._producer.stop(), self._timeout)

    async def _ensure_topic(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap_servers)
        await admin.start()
        try:
            if self.topic in set(await admin.list_topics()):
                return
            partitions = await partition_count(self._bootstrap_servers, self._event_topic)
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(
                            self.topic,
                            num_partitions=partitions,
                            replication_factor=self._replication_factor,
                            topic_configs={"cleanup.policy": "compact"},
                        )
                    ]
                )
        finally:
            await admin.close()

    def _signature(self, partition: int, shape: str, next_offset: int, digest: bytes) -> str:
        message = f"{self.topic}|{partition}|{shape}|{next_offset}|".encode() + digest
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    # writing

    async def save(self, partition: int, store: PartitionStore) -> int:
        """Checkpoint `store` as it is now (flushed); returns the event offset the checkpoint reaches."""
        producer = await self._started()
        with tempfile.TemporaryDirectory(prefix="checkpoint-") as work:
            copy = Path(work) / "store.sqlite3"
            await asyncio.to_thread(store.copy_to, copy)
            next_offset = stored_offset(copy)
            compressed = Path(work) / "store.z"
            digest = await asyncio.to_thread(_compress, copy, compressed)
            previous = await self._manifest(partition)
            checkpoint = uuid.uuid4().hex
            headers = [(CHECKPOINT_HEADER, checkpoint.encode())]
            first_offset: int | None = None
            chunks = 0
            with compressed.open("rb") as source:
                while chunk := source.read(CHUNK_BYTES):
                    sent = await producer.send_and_wait(
                        self.topic, chunk, key=_chunk_key(chunks), partition=partition, headers=headers
                    )
                    first_offset = sent.offset if first_offset is None else first_offset
                    chunks += 1
        for stale in range(chunks, previous.chunks if previous else 0):
            await producer.send_and_wait(self.topic, None, key=_chunk_key(stale), partition=partition)
        assert first_offset is not None
        manifest = Manifest(
            checkpoint,
            store.shape,
            next_offset,
            chunks,
            first_offset,
            self._signature(partition, store.shape, next_offset, digest),
        )
        await producer.send_and_wait(self.topic, manifest.encode(), key=MANIFEST_KEY, partition=partition)
        return next_offset

    # reading

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap_servers,
            enable_auto_commit=False,
            request_timeout_ms=int(max(self._timeout, 30) * 1000),
        )

    async def _manifest(self, partition: int) -> Manifest | None:
        consumer = self._consumer()
        await consumer.start()
        try:
            found = await self._last_manifest(consumer, partition)
        finally:
            await consumer.stop()
        return None if found is None else found[0]

    async def _last_manifest(self, consumer: AIOKafkaConsumer, partition: int) -> tuple[Manifest, int] | None:
        """The partition's manifest and its offset, if its last record is one."""
        if self.topic not in await consumer.topics():
            return None
        tp = TopicPartition(self.topic, partition)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        if end == 0:
            return None
        consumer.seek(tp, end - 1)
        records = (await consumer.getmany(tp, timeout_ms=int(self._timeout * 1000))).get(tp, [])
        last = records[-1] if records else None
        if last is None or last.key != MANIFEST_KEY or last.value is None:
            return None
        manifest = Manifest.decode(last.value)
        return None if manifest is None else (manifest, last.offset)

    async def restore(self, partition: int, store: PartitionStore) -> bool:
        """Replace `store` by the partition's latest checkpoint, if there is one it can use. The chunks
        are decompressed to disk as they arrive, so memory holds one fetch, whatever the size."""
        consumer = self._consumer()
        await consumer.start()
        try:
            found = await self._last_manifest(consumer, partition)
            if found is None:
                return False
            manifest, manifest_offset = found
            if manifest.shape != store.shape:
                log.info("checkpoint of partition %s has another state shape; replaying the log", partition)
                return False
            assert store.path is not None
            restored = store.path.with_name(f"{store.path.name}.restoring")
            try:
                digest = await self._fetch(consumer, partition, manifest, manifest_offset, restored)
            except _Incomplete as incomplete:
                restored.unlink(missing_ok=True)
                log.warning("checkpoint of partition %s: %s; replaying the log", partition, incomplete)
                return False
        finally:
            await consumer.stop()
        signature = self._signature(partition, manifest.shape, manifest.next_offset, digest)
        if not hmac.compare_digest(signature, manifest.signature):
            restored.unlink(missing_ok=True)
            log.warning(
                "checkpoint of partition %s is not signed with this deployment's key; ignored", partition
            )
            return False
        store.replace_with(restored)
        if store.next_offset != manifest.next_offset:
            raise ValueError(f"checkpoint of partition {partition} describes another position")
        return True

    async def _fetch(
        self,
        consumer: AIOKafkaConsumer,
        partition: int,
        manifest: Manifest,
        manifest_offset: int,
        target_path: Path,
    ) -> bytes:
        """Read the manifest's chunks into `target_path`, decompressed; the digest of what was read."""
        tp = TopicPartition(self.topic, partition)
        consumer.seek(tp, manifest.first_chunk_offset)
        digest = hashlib.sha256()
        inflate = zlib.decompressobj()
        expected = 0
        with target_path.open("wb") as target:
            while expected < manifest.chunks:
                records = (await consumer.getmany(tp, timeout_ms=int(self._timeout * 1000))).get(tp, [])
                if not records:
                    raise _Incomplete(f"no chunk came after chunk {expected}")
                for record in records:
                    if record.offset >= manifest_offset:
                        raise _Incomplete(f"{manifest.chunks - expected} of its chunks are missing")
                    if dict(record.headers).get(CHECKPOINT_HEADER) != manifest.checkpoint.encode():
                        continue  # another writer's, during a hand-over
                    if record.key != _chunk_key(expected) or record.value is None:
                        raise _Incomplete(f"chunk {expected} is not where it should be")
                    digest.update(record.value)
                    target.write(inflate.decompress(record.value))
                    expected += 1
                    if expected == manifest.chunks:
                        break
            target.write(inflate.flush())
        return digest.digest()


class _Incomplete(Exception):
    """A checkpoint's chunks are not all there (compacted away, or a write cut short)."""


def _compress(source: Path, target: Path) -> bytes:
    """Compress `source` into `target`; the SHA-256 of what was written (what the manifest signs)."""
    digest = hashlib.sha256()
    deflate = zlib.compressobj(1)
    with source.open("rb") as reading, target.open("wb") as writing:
        while block := reading.read(4 * 1024 * 1024):
            out = deflate.compress(block)
            digest.update(out)
            writing.write(out)
        out = deflate.flush()
        digest.update(out)
        writing.write(out)
    return digest.digest()
