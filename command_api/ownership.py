"""Which partitions this instance decides for, and who owns the others (for operators and tests)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from auth.deps import CurrentOperator
from command_api.eventstore.kafka_store import KafkaEventStore

ownership_router = APIRouter(tags=["operations"])


@ownership_router.get("/internal/partitions")
async def partitions(request: Request, operator: CurrentOperator) -> dict[str, Any]:
    """Owned partitions and the current routing table of each command-side event store (operators)."""
    stores: dict[str, KafkaEventStore] = request.app.state.event_stores
    return {
        name: {
            "topic": store.topic,
            "owned": store.owned_partitions(),
            "ready": store.ready_partitions(),
            "routes": store.routes(),
        }
        for name, store in stores.items()
    }
