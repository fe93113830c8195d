"""Where a partition writer's folded state lives: one SQLite database per owned partition, on the
instance's local disk, so that memory holds only a cache of hot aggregates whatever the shop's size.

The store is derived data, the fold of the partition's committed records below `next_offset`, and
records that offset in the same transaction as the state it belongs to: a restart resumes from there,
and deleting the file costs a restore (docs/architecture.md, "The writer's state on disk"). Each
aggregate is one row, its record pickled; unpickling runs code, so the file is as trusted as the
instance's own code (it is written only by this instance), and a copy that travels through Kafka
(checkpoints.py) is signed.

Why SQLite: it is in the standard library, commits several rows and the offset atomically, reads a
row in microseconds from its page cache, and copies itself consistently while being written
(`VACUUM INTO`, for checkpoints). Measured beside LMDB and RocksDB bindings in docs/architecture.md.
"""

from __future__ import annotations

import copyreg
import dataclasses
import hashlib
import io
import pickle
import sqlite3
import zlib
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from command_api.eventstore.model import AggregateKind, AggregateRecord, Committed

# Bump when the tables or the pickled record's layout change: a store of another format is rebuilt.
STORE_FORMAT = 1
WINDOW_BITS = 12

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS aggregates (id TEXT PRIMARY KEY, record BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS created (kind TEXT PRIMARY KEY, count INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS created_by_key (
    kind TEXT NOT NULL, key TEXT NOT NULL, aggregate_id TEXT NOT NULL, first_used REAL NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS results (
    aggregate_id TEXT NOT NULL, key TEXT NOT NULL, first_used REAL NOT NULL, result BLOB NOT NULL,
    PRIMARY KEY (aggregate_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS results_by_time ON results (first_used);
CREATE INDEX IF NOT EXISTS created_by_key_by_time ON created_by_key (first_used);
"""


def state_shape(kinds: Sequence[AggregateKind[Any]]) -> str:
    """What the stored records depend on: the format, and each kind's state version and fields."""
    parts = [f"format {STORE_FORMAT}"]
    for kind in sorted(kinds, key=lambda kind: kind.name):
        fields = (
            [field.name for field in dataclasses.fields(kind.initial)]
            if dataclasses.is_dataclass(kind.initial)
            else []
        )
        parts.append(f"{kind.name} v{kind.state_version} {','.join(fields)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


Reduction = tuple[Callable[..., Any], tuple[Any, ...]]


def _read_only_mapping(mapping: MappingProxyType[Any, Any]) -> Reduction:
    return read_only, (dict(mapping),)


def read_only(mapping: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    """How a pickled read-only mapping comes back."""
    return MappingProxyType(mapping)


def _model_fields(model: BaseModel) -> Reduction:
    return model_from_fields, (type(model), model.__dict__)


def model_from_fields(model: type[BaseModel], values: dict[str, Any]) -> BaseModel:
    """How a pickled model comes back: its values were valid when it was pickled."""
    return model.model_construct(**values)


class RecordCodec:
    """Pickles aggregate records (read-only mappings, which pickle cannot name, by their items; pydantic
    models by their field values, 3x faster than pydantic's own pickling), then deflates each against
    a preset dictionary: most of a small record's pickle is the names of its classes and fields,
    which the dictionary holds once (a product: 530 bytes pickled, about 100 stored; 6 us to encode,
    under 1 us to inflate). The dictionary is kept in the store it encodes for."""

    def __init__(self, models: Iterable[type[BaseModel]], dictionary: bytes = b"") -> None:
        self._table: dict[type, Callable[[Any], Any]] = copyreg.dispatch_table | {
            MappingProxyType: _read_only_mapping
        }
        for model in models:
            self._table[model] = _model_fields
        self.dictionary = dictionary

    def with_dictionary(self, dictionary: bytes) -> RecordCodec:
        codec = RecordCodec((), dictionary)
        codec._table = self._table
        return codec

    def dictionary_for(self, kinds: Sequence[AggregateKind[Any]]) -> bytes:
        """What the records of these kinds share: each kind's empty record, pickled."""
        return b"".join(self._pickled(AggregateRecord(kind.initial)) for kind in kinds)

    def _pickled(self, value: object) -> bytes:
        buffer = io.BytesIO()
        pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
        pickler.dispatch_table = self._table
        pickler.dump(value)
        return buffer.getvalue()

    def encode(self, record: object) -> bytes:
        # A 4 KiB window and a small state: records are small, and a deflater is made per record
        # (7.4 us against 9.2 us with zlib's defaults, for the same size).
        deflate = zlib.compressobj(
            1, zlib.DEFLATED, -WINDOW_BITS, 4, zlib.Z_DEFAULT_STRATEGY, self.dictionary
        )
        return deflate.compress(self._pickled(record)) + deflate.flush()

    def decode(self, value: bytes) -> Any:
        inflate = zlib.decompressobj(-WINDOW_BITS, self.dictionary)
        return pickle.loads(inflate.decompress(value))  # noqa: S301 (written by this instance)


def default_codec() -> RecordCodec:
    from event_schemas.money import Money
    from event_schemas.registry import REGISTRY

    return RecordCodec([Money, *REGISTRY.classes()])


@dataclasses.dataclass
class StoreWrite:
    """What one flush writes, in one transaction."""

    records: dict[str, AggregateRecord[Any]]
    created: dict[str, int]
    created_by_key: list[tuple[str, str, str, datetime]]  # kind, key, aggregate id, first used
    # (aggregate id, key) -> what the command with that key appended, and when the key was first used
    results: dict[tuple[str, str], tuple[Committed, datetime]]
    next_offset: int
    last_event: tuple[int, UUID] | None  # the offset and id of the last event folded
    latest: datetime | None  # the latest event time folded: the idempotency window ends there
    forget_before: datetime | None  # keys first used before this are forgotten


class PartitionStore:
    """One partition's folded state in SQLite (a file, or memory for tests and the in-memory store).
    One writer task uses it at a time; `copy_to` may run in a thread on a connection of its own."""

    def __init__(
        self, path: Path | None, kinds: Sequence[AggregateKind[Any]], codec: RecordCodec | None = None
    ) -> None:
        self.path = path
        self.kinds = list(kinds)
        self.shape = state_shape(kinds)
        self._plain_codec = codec or default_codec()
        self._db = self._connect()
        if self._meta("shape") not in (None, self.shape):
            self.clear()
        self._start()

    def _start(self) -> None:
        """Name the shape and keep the records' dictionary, in a new store; take it up, in an old one."""
        dictionary = self._db.execute("SELECT value FROM blobs WHERE name = 'dictionary'").fetchone()
        if dictionary is None:
            dictionary = (self._plain_codec.dictionary_for(self.kinds),)
            self._db.execute("INSERT INTO blobs VALUES ('dictionary', ?)", dictionary)
        self.codec = self._plain_codec.with_dictionary(bytes(dictionary[0]))
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('shape', ?)", (self.shape,))

    def _connect(self) -> sqlite3.Connection:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(":memory:" if self.path is None else self.path, isolation_level=None)
        if self.path is not None:
            # Durable enough for derived data: a crash loses at most the last flushes, and the offset
            # stored with them says where to resume.
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        return db

    def clear(self) -> None:
        """Empty the store: its files are removed and made anew."""
        self._db.close()
        self._remove_files()
        self._db = self._connect()
        self._start()

    def _remove_files(self) -> None:
        if self.path is not None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def _meta(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def close(self) -> None:
        self._db.close()

    # reading

    @property
    def next_offset(self) -> int:
        return int(self._meta("next_offset") or 0)

    @property
    def last_event(self) -> tuple[int, UUID] | None:
        value = self._meta("last_event")
        if value is None:
            return None
        offset, event_id = value.split()
        return int(offset), UUID(event_id)

    @property
    def latest(self) -> datetime | None:
        value = self._meta("latest")
        return None if value is None else datetime.fromisoformat(value)

    def created(self) -> dict[str, int]:
        return {str(kind): int(count) for kind, count in self._db.execute("SELECT kind, count FROM created")}

    def record(self, aggregate_id: str) -> AggregateRecord[Any] | None:
        row = self._db.execute("SELECT record FROM aggregates WHERE id = ?", (aggregate_id,)).fetchone()
        if row is None:
            return None
        record: AggregateRecord[Any] = self.codec.decode(row[0])
        return record

    def result(self, aggregate_id: str, key: str) -> tuple[Committed, datetime] | None:
        row = self._db.execute(
            "SELECT result, first_used FROM results WHERE aggregate_id = ? AND key = ?", (aggregate_id, key)
        ).fetchone()
        if row is None:
            return None
        result: Committed = self.codec.decode(row[0])
        return result, _time(row[1])

    def created_with_key(self, kind: str, key: str) -> tuple[str, datetime] | None:
        row = self._db.execute(
            "SELECT aggregate_id, first_used FROM created_by_key WHERE kind = ? AND key = ?", (kind, key)
        ).fetchone()
        return None if row is None else (str(row[0]), _time(row[1]))

    def keys_since(self, cutoff: datetime) -> int:
        row = self._db.execute(
            "SELECT count(*) FROM results WHERE first_used >= ?", (cutoff.timestamp(),)
        ).fetchone()
        return int(row[0])

    def aggregates(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM aggregates").fetchone()[0])

    # writing

    def write(self, write: StoreWrite) -> None:
        """Write one flush and the offset it reaches in one transaction; the keys first used before
        the window go with it."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT OR REPLACE INTO created VALUES (?, ?)", list(write.created.items()))
            db.executemany(
                "INSERT OR REPLACE INTO created_by_key VALUES (?, ?, ?, ?)",
                [(kind, key, aggregate, at.timestamp()) for kind, key, aggregate, at in write.created_by_key],
            )
            db.executemany(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?)",
                [
                    (aggregate_id, key, first_used.timestamp(), self.codec.encode(result))
                    for (aggregate_id, key), (result, first_used) in write.results.items()
                ],
            )
            # In key order: neighbouring rows share B-tree pages, so a flush touches fewer of them.
            db.executemany(
                "INSERT OR REPLACE INTO aggregates VALUES (?, ?)",
                [
                    (aggregate_id, self.codec.encode(record))
                    for aggregate_id, record in sorted(write.records.items())
                ],
            )
            if write.forget_before is not None:
                cutoff = write.forget_before.timestamp()
                db.execute("DELETE FROM results WHERE first_used < ?", (cutoff,))
                db.execute("DELETE FROM created_by_key WHERE first_used < ?", (cutoff,))
            meta = [("next_offset", str(write.next_offset))]
            if write.last_event is not None:
                meta.append(("last_event", f"{write.last_event[0]} {write.last_event[1]}"))
            if write.latest is not None:
                meta.append(("latest", write.latest.isoformat()))
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", meta)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def copy_to(self, target: Path) -> None:
        """A consistent copy of the store as it is now, compacted, into `target` (a new file). Safe in
        a thread while the writer goes on: it reads on a connection of its own, in one transaction."""
        assert self.path is not None, "an in-memory store has no copy"
        reader = sqlite3.connect(self.path, isolation_level=None)
        try:
            reader.execute("VACUUM INTO ?", (str(target),))
        finally:
            reader.close()

    def replace_with(self, source: Path) -> None:
        """Become the store in `source` (a restored copy): the file is moved into place and opened."""
        assert self.path is not None, "an in-memory store cannot be replaced"
        self._db.close()
        self._remove_files()
        source.replace(self.path)
        self._db = self._connect()
        if self._meta("shape") != self.shape:
            self.clear()
            raise ValueError("the restored store holds another state shape")
        self._start()


def _time(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def stored_offset(path: Path) -> int:
    """The offset a store file (a copy) reaches, without opening it as a store."""
    db = sqlite3.connect(path)
    try:
        row = db.execute("SELECT value FROM meta WHERE name = 'next_offset'").fetchone()
    finally:
        db.close()
    return 0 if row is None else int(row[0])
