"""What every command route shares: the command's metadata from headers, and the acknowledgement."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Response

from command_api.eventstore.model import CommandContext, Committed

CONSISTENCY_HEADER = "X-Consistency-Token"


def command_context(
    idempotency_key: Annotated[str | None, Header(max_length=255, pattern=r"^[\x21-\x7e]+$")] = None,
) -> CommandContext:
    return CommandContext(idempotency_key=idempotency_key)


Context = Annotated[CommandContext, Depends(command_context)]


def acknowledge(response: Response, committed: Committed) -> None:
    """Tell the client where its events landed (to wait for projections) and whether this was a replay."""
    if committed.position is not None:
        response.headers[CONSISTENCY_HEADER] = committed.position.token
    if committed.replayed:
        response.headers["Idempotent-Replayed"] = "true"
