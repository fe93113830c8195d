"""Throwaway PostgreSQL databases for the baselines, so a run never touches a service's database and
leaves nothing behind."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import psycopg
from psycopg import sql


def database_url(admin_url: str, database: str) -> str:
    """`admin_url` pointing at another database on the same server, as the same user."""
    return urlsplit(admin_url)._replace(path=f"/{database}").geturl()


@contextmanager
def throwaway_database(admin_url: str, prefix: str) -> Iterator[str]:
    """Create an empty database named `<prefix>_<random>`, yield its URL, then drop it (with any
    connection still open to it)."""
    database = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    try:
        yield database_url(admin_url, database)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
