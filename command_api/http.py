"""What every command route shares: the command's metadata from headers, and the acknowledgement."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID, uuid4

from fastapi import Depends, Header, Response

from command_api.eventstore.model import CommandContext, Committed

CONSISTENCY_HEADER = "X-Consistency-Token"
CORRELATION_HEADER = "X-Correlation-Id"
COMMAND_HEADER = "X-Command-Id"


async def command_context(
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=255, pattern=r"^[\x21-\x7e]+$")] = None,
    correlation_id: Annotated[UUID | None, Header(alias=CORRELATION_HEADER)] = None,
) -> CommandContext:
    """Every command gets an id, which its events carry as their causation id; the correlation id ties
    together everything one user action sets off (given by the caller, or this command's id)."""
    command_id = uuid4()
    context = CommandContext(
        idempotency_key=idempotency_key, correlation_id=correlation_id or command_id, causation_id=command_id
    )
    response.headers[CORRELATION_HEADER] = str(context.correlation_id)
    response.headers[COMMAND_HEADER] = str(command_id)
    return context


Context = Annotated[CommandContext, Depends(command_context)]


def acknowledge(response: Response, committed: Committed) -> None:
    """Tell the client where its events landed (to wait for projections) and whether this was a replay."""
    if committed.position is not None:
        response.headers[CONSISTENCY_HEADER] = committed.position.token
    if committed.replayed:
        response.headers["Idempotent-Replayed"] = "true"
