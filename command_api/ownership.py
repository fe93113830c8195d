"""Which partitions this instance decides for, and who owns the others (for operators and tests)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from auth.deps import CurrentOperator
from command_api.eventstore.kafka_store import KafkaEventStore
from web.errors import error_responses

ownership_router = APIRouter(tags=["operations"], responses=error_responses(401, 403, 422))


@ownership_router.get("/internal/partitions")
async def partitions(request: Request, operator: CurrentOperator) -> dict[str, Any]:
    """Owned partitions and the current routing table of each command-side event store (operators)."""
    stores: dict[str, KafkaEventStore] = request.app.state.event_stores
    return {
        name: {
            "topic": store.topic,
            "owned": store.owned_partitions(),
            "ready": store.ready_partitions(),
            "writers": store.writer_states(),
            "routes": store.routes(),
        }
        for name, store in stores.items()
    }
