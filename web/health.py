"""Liveness: the process answers. Readiness of dependencies shows up as 503s on the routes themselves."""

from __future__ import annotations

from fastapi import APIRouter

health_router = APIRouter(tags=["health"])


@health_router.get("/health")
async def health() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}
