"""What every command route shares: the command's metadata from headers, and the acknowledgement."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID, uuid4

from fastapi import Depends, Header, Request, Response

from auth.tokens import InvalidToken, TokenVerifier, bearer_token
from command_api.eventstore.model import CommandContext, Committed
from command_api.idempotency import request_fingerprint, scoped_key
from config.telemetry import CORRELATION_ID
from web.acknowledged_writes import ACKNOWLEDGED_WRITES, CALLER

CONSISTENCY_HEADER = "X-Consistency-Token"
CORRELATION_HEADER = "X-Correlation-Id"
COMMAND_HEADER = "X-Command-Id"


async def command_context(
    request: Request,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=255, pattern=r"^[\x21-\x7e]+$")] = None,
    correlation_id: Annotated[UUID | None, Header(alias=CORRELATION_HEADER)] = None,
) -> CommandContext:
    """Every command gets an id, which its events carry as their causation id; the correlation id ties
    together everything one user action sets off (given by the caller, or this command's id)."""
    command_id = uuid4()
    context = CommandContext(correlation_id=correlation_id or command_id, causation_id=command_id)
    if idempotency_key is not None:
        route = getattr(request.scope.get("route"), "path", request.url.path)
        context = CommandContext(
            idempotency_key=scoped_key(_caller(request), f"{request.method} {route}", idempotency_key),
            request_fingerprint=request_fingerprint(request.method, request.url.path, await request.body()),
            correlation_id=context.correlation_id,
            causation_id=command_id,
        )
    response.headers[CORRELATION_HEADER] = str(context.correlation_id)
    response.headers[COMMAND_HEADER] = str(command_id)
    # For the rest of the request: its log lines, its span, and the Kafka headers of what it appends.
    CORRELATION_ID.set(str(context.correlation_id))
    return context


def _caller(request: Request) -> str:
    """Who sends the command, for scoping its idempotency key (the route's own dependency refuses a
    bad token; an anonymous caller, e.g. a registration, has a scope of its own)."""
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        claims = verifier.verify(bearer_token(request.headers.get("authorization")))
    except InvalidToken:
        return "anonymous"
    return f"{claims.role}:{claims.user_id}:{claims.email}"


Context = Annotated[CommandContext, Depends(command_context)]


def acknowledge(response: Response, committed: Committed) -> None:
    """Tell the client where its events landed (to wait for projections) and whether this was a replay;
    and remember it, so the caller's next reads from this process see it without a token."""
    position = committed.position
    if position is not None:
        response.headers[CONSISTENCY_HEADER] = position.token
        caller = CALLER.get()
        if caller is not None:
            ACKNOWLEDGED_WRITES.record(caller, position.topic, position.partition, position.offset)
    if committed.replayed:
        response.headers["Idempotent-Replayed"] = "true"
