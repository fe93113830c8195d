"""The projection port for PostgreSQL read models: a pure fold of a batch of events into whole rows.

The runtime reads the rows a batch changes (those it does not create), asks the projection to fold
the batch's events into them, and upserts each changed row once, guarded by its `version` column so
that an older row never overwrites a newer one. Folding a batch into rows, rather than running one
statement per event, is what lets a replay write tens of thousands of events per second.

The table's physical name is passed in, so that a rebuild can fill a shadow copy while the live one
keeps serving.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol

from psycopg import sql
from psycopg.types.json import Jsonb

from event_schemas.envelope import Event

Row = dict[str, Any]

SHADOW_SUFFIX = "__rebuild"


class Projection(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def topic(self) -> str: ...

    @property
    def table(self) -> str:
        """The live table's name."""
        ...

    @property
    def columns(self) -> Sequence[str]:
        """The table's columns; the first is the key, and one is `version`."""
        ...

    def schema(self, table: str) -> list[sql.Composed]:
        """Idempotent DDL of the read model, for a table of that name."""
        ...

    def needs_current(self, events: Sequence[Event]) -> set[Hashable]:
        """Keys of the rows the fold must read first: those the events change but do not create."""
        ...

    def fold(self, current: Mapping[Hashable, Row], events: Sequence[Event]) -> dict[Hashable, Row]:
        """The rows the events lead to (each with its new `version`); events at or below a row's
        version were applied before and change nothing. Pure."""
        ...


def shadow_table(projection: Projection) -> str:
    return f"{projection.table}{SHADOW_SUFFIX}"


def query(template: str, table: str) -> sql.Composed:
    """`template` with `{table}` filled in (cached: a replay composes each statement once)."""
    return _compose(template, table)


@lru_cache(maxsize=256)
def _compose(template: str, table: str) -> sql.Composed:
    return sql.SQL(template).format(table=sql.Identifier(table))


@lru_cache(maxsize=64)
def select_rows(table: str, columns: tuple[str, ...]) -> sql.Composed:
    return sql.SQL("SELECT {columns} FROM {table} WHERE {key} = ANY(%s)").format(
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        table=sql.Identifier(table),
        key=sql.Identifier(columns[0]),
    )


def _replace_older(table: str, columns: tuple[str, ...]) -> sql.Composed:
    """The conflict clause every upsert shares: a row is replaced only by a newer version of itself."""
    return sql.SQL(
        "ON CONFLICT ({key}) DO UPDATE SET {updates} WHERE {table}.version < EXCLUDED.version"
    ).format(
        key=sql.Identifier(columns[0]),
        updates=sql.SQL(", ").join(
            sql.SQL("{column} = EXCLUDED.{column}").format(column=sql.Identifier(column))
            for column in columns[1:]
        ),
        table=sql.Identifier(table),
    )


@lru_cache(maxsize=64)
def upsert_row(table: str, columns: tuple[str, ...]) -> sql.Composed:
    """Insert, or replace an older version of, one row."""
    return sql.SQL("INSERT INTO {table} ({columns}) VALUES ({values}) {replace_older}").format(
        table=sql.Identifier(table),
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        values=sql.SQL(", ").join(sql.Placeholder(column) for column in columns),
        replace_older=_replace_older(table, columns),
    )


@lru_cache(maxsize=64)
def staging_statements(
    table: str, columns: tuple[str, ...]
) -> tuple[sql.Composed, sql.Composed, sql.Composed]:
    """Writing many rows at once: a session's temporary copy of the table (emptied at each commit),
    `COPY` into it, then one upsert from it, guarded by `version` like `upsert_row`."""
    staging = sql.Identifier(f"{table}__staging")
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    create = sql.SQL(
        "CREATE TEMPORARY TABLE IF NOT EXISTS {staging} (LIKE {table}) ON COMMIT DELETE ROWS"
    ).format(staging=staging, table=sql.Identifier(table))
    copy = sql.SQL("COPY {staging} ({names}) FROM STDIN").format(staging=staging, names=names)
    upsert = sql.SQL("INSERT INTO {table} ({names}) SELECT {names} FROM {staging} {replace_older}").format(
        table=sql.Identifier(table),
        names=names,
        staging=staging,
        replace_older=_replace_older(table, columns),
    )
    return create, copy, upsert


KeyOf = Callable[[Event], Hashable | None]


def rows_to_read(events: Sequence[Event], key_of: KeyOf, creates: type[Event]) -> set[Hashable]:
    """Keys of the rows a batch changes before (or without) creating them in the same batch."""
    created: set[Hashable] = set()
    needed: set[Hashable] = set()
    for event in events:
        key = key_of(event)
        if key is None:
            continue
        if isinstance(event, creates):
            created.add(key)
        elif key not in created:
            needed.add(key)
    return needed


def fold_rows(
    current: Mapping[Hashable, Row],
    events: Sequence[Event],
    key_of: KeyOf,
    apply: Callable[[Event, Row | None], Row | None],
) -> dict[Hashable, Row]:
    """The fold every row projection shares: per event, find its row (changed earlier in the batch, or
    current), skip it if the row already has this version, else apply it (`apply(event, row) -> row`,
    `None` when the event does not concern a known row) and stamp the version."""
    rows: dict[Hashable, Row] = {}
    for event in events:
        key = key_of(event)
        if key is None:
            continue
        row = rows.get(key, current.get(key))
        if row is not None and event.aggregate_version <= row["version"]:
            continue
        changed = apply(event, row)
        if changed is not None:
            rows[key] = changed | {"version": event.aggregate_version}
    return rows


def with_jsonb(row: Row, columns: Iterable[str]) -> Row:
    """The row as the writer sends it: psycopg adapts a list to a PostgreSQL array, so a jsonb value
    goes wrapped (in an upsert and in COPY alike). The fold itself works on the plain lists that a
    jsonb column reads back as."""
    return row | {column: Jsonb(row[column]) for column in columns}
