"""Users read model: one row per registered user. No password hash: only the command side needs it."""

from __future__ import annotations

from functools import singledispatch

from psycopg import sql

from event_schemas import topics
from event_schemas.envelope import Event
from event_schemas.users import UserRegistered, UserRoleChanged
from projectors.runtime.projection import Statement, Tables, query


def schema(tables: Tables) -> list[sql.Composed]:
    return [
        query(
            """
            CREATE TABLE IF NOT EXISTS {users} (
                id            bigint PRIMARY KEY,
                aggregate_id  text NOT NULL UNIQUE,
                username      text NOT NULL,
                email         text NOT NULL UNIQUE,
                role          text NOT NULL,
                version       integer NOT NULL,
                registered_at timestamptz NOT NULL,
                updated_at    timestamptz NOT NULL
            )
            """,
            tables,
        )
    ]


@singledispatch
def statements(event: Event, tables: Tables) -> list[Statement]:
    return []


@statements.register
def _registered(event: UserRegistered, tables: Tables) -> list[Statement]:
    insert = query(
        "INSERT INTO {users} (id, aggregate_id, username, email, role, version, registered_at, updated_at) "
        "VALUES (%(id)s, %(aggregate_id)s, %(username)s, %(email)s, %(role)s, %(version)s, %(at)s, %(at)s) "
        "ON CONFLICT (id) DO NOTHING",
        tables,
    )
    return [
        (
            insert,
            {
                "id": event.user_id,
                "aggregate_id": event.aggregate_id,
                "username": event.username,
                "email": event.email,
                "role": event.role,
                "version": event.aggregate_version,
                "at": event.occurred_at,
            },
        )
    ]


@statements.register
def _role_changed(event: UserRoleChanged, tables: Tables) -> list[Statement]:
    update = query(
        "UPDATE {users} SET role = %(role)s, version = %(version)s, updated_at = %(at)s "
        "WHERE id = %(id)s AND version < %(version)s",
        tables,
    )
    return [
        (
            update,
            {
                "id": event.user_id,
                "role": event.role,
                "version": event.aggregate_version,
                "at": event.occurred_at,
            },
        )
    ]


class UsersProjection:
    name = "users"
    tables = ("users",)

    def __init__(self, namespace: str) -> None:
        self.topic = topics.in_namespace(namespace, topics.USERS)

    def schema(self, tables: Tables) -> list[sql.Composed]:
        return schema(tables)

    def statements(self, event: Event, tables: Tables) -> list[Statement]:
        return statements(event, tables)
