"""The token verifier a service process runs with, for the life of its app: signature and expiry, and
the revocations view following the users topic. One per process, whichever sides it serves."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from auth.revocation_feed import RevocationFeed
from auth.revocations import Revocations
from auth.tokens import TokenVerifier, load_verifier
from config.settings import Settings
from event_schemas import topics
from event_schemas.registry import REGISTRY

log = logging.getLogger(__name__)


@asynccontextmanager
async def token_verification(settings: Settings) -> AsyncIterator[TokenVerifier]:
    """Starts serving once the view has read the users topic to its end, or after
    `revocations_start_wait_seconds` without (Kafka out of reach): then every token is served as if
    the view were stale, so admin tokens older than `revocations_stale_after_seconds` are refused
    until it catches up, and other tokens are accepted."""
    revocations = Revocations(
        token_ttl=settings.jwt_ttl_seconds, stale_after=settings.revocations_stale_after_seconds
    )
    feed = RevocationFeed(
        settings.kafka_bootstrap_servers,
        topics.in_namespace(settings.namespace, topics.USERS),
        revocations,
        REGISTRY,
    )
    verifier = load_verifier(settings, revocations)
    feed.start()
    try:
        if not await feed.confirmed(within=settings.revocations_start_wait_seconds):
            log.warning(
                "the revocations view has not read the users topic within %gs; serving anyway, and "
                "refusing admin tokens older than %gs until it has",
                settings.revocations_start_wait_seconds,
                settings.revocations_stale_after_seconds,
            )
        yield verifier
    finally:
        await feed.stop()
