"""Removing what a bench run created on the shared servers: a namespace's topics, indices whose names
start with a prefix, databases. Each step tolerates what is already gone, so a cleanup after a
failure cleans whatever was created before it."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from aiokafka.admin import AIOKafkaAdminClient
from elasticsearch import AsyncElasticsearch
from psycopg import sql

from event_schemas import topics


async def delete_namespace_topics(bootstrap_servers: str, namespaces: Sequence[str]) -> None:
    """Delete every event, dead-letter and snapshot topic of `namespaces` (those that exist)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [
            topic
            for namespace in namespaces
            for name in topics.ALL + topics.DEAD_LETTERS + topics.CHECKPOINTS
            if (topic := topics.in_namespace(namespace, name)) in existing
        ]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


async def delete_indices(elasticsearch_url: str, prefix: str) -> None:
    """Delete the indices named `<prefix>*` (by name: the server refuses wildcard deletes)."""
    async with AsyncElasticsearch(elasticsearch_url, request_timeout=60) as es:
        found = await es.indices.get(index=f"{prefix}*", allow_no_indices=True, expand_wildcards="all")
        if found:
            await es.indices.delete(index=list(found))


def drop_databases(admin_url: str, databases: Sequence[str]) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        for database in databases:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
