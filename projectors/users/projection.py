"""Users read model: one row per registered user. No password hash: only the command side needs it."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from functools import singledispatch

from psycopg import sql

from event_schemas import topics
from event_schemas.envelope import Event
from event_schemas.users import UserRegistered, UserRoleChanged
from projectors.runtime.projection import Row, fold_rows, query, rows_to_read
from read_models.users import USERS, USERS_TABLE

SCHEMA = """
CREATE TABLE IF NOT EXISTS {table} (
    id            bigint PRIMARY KEY,
    aggregate_id  text NOT NULL UNIQUE,
    username      text NOT NULL,
    email         text NOT NULL UNIQUE,
    role          text NOT NULL,
    version       integer NOT NULL,
    registered_at timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
)
"""

COLUMNS = ("id", "aggregate_id", "username", "email", "role", "version", "registered_at", "updated_at")


def user_id(event: Event) -> int | None:
    return event.user_id if isinstance(event, UserRegistered | UserRoleChanged) else None


@singledispatch
def apply(event: Event, row: Row | None) -> Row | None:
    return row


@apply.register
def _registered(event: UserRegistered, row: Row | None) -> Row | None:
    return {
        "id": event.user_id,
        "aggregate_id": event.aggregate_id,
        "username": event.username,
        "email": event.email,
        "role": event.role,
        "registered_at": event.occurred_at,
        "updated_at": event.occurred_at,
    }


@apply.register
def _role_changed(event: UserRoleChanged, row: Row | None) -> Row | None:
    return None if row is None else row | {"role": event.role, "updated_at": event.occurred_at}


class UsersProjection:
    name = USERS
    table = USERS_TABLE
    columns = COLUMNS

    def __init__(self, namespace: str) -> None:
        self.topic = topics.in_namespace(namespace, topics.USERS)

    def schema(self, table: str) -> list[sql.Composed]:
        return [query(SCHEMA, table)]

    def needs_current(self, events: Sequence[Event]) -> set[Hashable]:
        return rows_to_read(events, user_id, UserRegistered)

    def fold(self, current: Mapping[Hashable, Row], events: Sequence[Event]) -> dict[Hashable, Row]:
        return fold_rows(current, events, user_id, apply)
