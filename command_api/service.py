"""What every context's command side needs while its app runs: an event store that owns some of the
topic's partitions, and forwarding of commands to the owner of a partition. (The token verifier is
the app's, gateway/apps.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response

from command_api.checkpoint_key import load_checkpoint_key
from command_api.eventstore.errors import (
    ConcurrencyConflict,
    EventStoreUnavailable,
    IdempotencyKeyReused,
    NotOwner,
    UnknownAggregate,
)
from command_api.eventstore.kafka_store import KafkaEventStore, instance_folder
from command_api.eventstore.model import AggregateKind
from command_api.forwarding import forward_to_owner
from command_api.ownership import ownership_router
from config.settings import Settings
from event_schemas import topics
from event_schemas.registry import REGISTRY
from web.routing import add_routes
from web.service_http import ServiceHttp

# Errors of the event store itself, the same in every context.
EVENT_STORE_ERRORS: dict[type[Exception], tuple[int, str]] = {
    ConcurrencyConflict: (409, "concurrent_update"),
    IdempotencyKeyReused: (422, "idempotency_key_reused"),
    UnknownAggregate: (404, "not_found"),
    EventStoreUnavailable: (503, "service_unavailable"),
}


@asynccontextmanager
async def command_side(
    app: FastAPI, settings: Settings, *, context: str, topic: str, kinds: Sequence[AggregateKind[Any]]
) -> AsyncIterator[KafkaEventStore]:
    store = KafkaEventStore(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        topic=topics.in_namespace(settings.namespace, topic),
        group=topics.in_namespace(settings.namespace, f"{context}-command"),
        instance_url=settings.instance_url,
        kinds=kinds,
        registry=REGISTRY,
        timeout=settings.command_timeout_seconds,
        checkpoint_key=load_checkpoint_key(settings),
        checkpoint_every=settings.checkpoint_every_records,
        state_dir=settings.state_dir / instance_folder(settings.instance_url),
        cache_aggregates=settings.state_cache_aggregates,
        replication_factor=settings.kafka_replication_factor,
    )
    app.state.event_stores = {**getattr(app.state, "event_stores", {}), context: store}
    await store.start()
    async with ServiceHttp(timeout=settings.command_timeout_seconds * 2) as forwarding_client:
        app.state.forwarding_client = forwarding_client
        try:
            await store.wait_until_ready(within=120)
            yield store
        finally:
            await store.stop()


def install_command_routes(app: FastAPI, router: APIRouter, settings: Settings) -> None:
    """A context's command routes, on an app that may serve other routes too."""
    add_routes(app, router, ownership_router)

    async def not_owner(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, NotOwner)
        return await forward_to_owner(
            request, exc, request.app.state.forwarding_client, settings.instance_url
        )

    app.add_exception_handler(NotOwner, not_owner)
