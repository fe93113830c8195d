"""HTTP routes of the users command side: the seed's register and login, plus role changes and the
revocation of a user's sessions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel, ConfigDict, EmailStr

from auth.deps import CurrentAdmin, CurrentService
from command_api.eventstore.model import CommandContext
from command_api.http import Context, acknowledge
from command_api.users.commands import LogIn, RegisterUser
from command_api.users.handlers import UsersHandlers
from event_schemas.users import Role, UserRegistered
from web.client_address import ClientAddress
from web.errors import error_responses

router = APIRouter(tags=["users"], responses=error_responses(401, 403, 404, 409, 413, 422, 503))


async def get_handlers(request: Request) -> UsersHandlers:
    handlers: UsersHandlers = request.app.state.users_handlers
    return handlers


Handlers = Annotated[UsersHandlers, Depends(get_handlers)]


def user_public(event: UserRegistered) -> dict[str, Any]:
    return {"id": event.user_id, "username": event.username, "email": event.email, "role": event.role}


@router.post("/auth/register", status_code=status.HTTP_201_CREATED, responses=error_responses(429))
async def register(
    command: RegisterUser, handlers: Handlers, client: ClientAddress, context: Context, response: Response
) -> dict[str, Any]:
    """Open an account; the email must not be registered yet."""
    committed = await handlers.register(command, client, context, datetime.now(UTC))
    acknowledge(response, committed)
    registered = next(e for e in committed.events if isinstance(e, UserRegistered))
    return {"message": "User created", "user": user_public(registered)}


@router.post("/auth/login", responses=error_responses(429))
async def log_in(command: LogIn, handlers: Handlers, client: ClientAddress) -> dict[str, Any]:
    """Exchange email and password for an access token."""
    token = await handlers.log_in(command, client, datetime.now(UTC))
    return {"message": "Login successful", "token": token, "token_type": "bearer"}


class RoleChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    role: Role


@router.post("/users/roles")
async def change_role(
    change: RoleChange,
    handlers: Handlers,
    context: Context,
    response: Response,
    admin: CurrentAdmin,
) -> dict[str, Any]:
    """Grant or withdraw the admin role (admins only)."""
    return await _changed_role(change, handlers, context, response)


async def _changed_role(
    change: RoleChange, handlers: UsersHandlers, context: CommandContext, response: Response
) -> dict[str, Any]:
    committed = await handlers.change_role(change.email, change.role, context, datetime.now(UTC))
    acknowledge(response, committed)
    return {"message": "Role updated", "email": change.email.lower(), "role": change.role}


@router.post("/internal/users/roles", tags=["internal"])
async def change_role_as_operator(
    change: RoleChange, handlers: Handlers, context: Context, response: Response, service: CurrentService
) -> dict[str, Any]:
    """The same, for an operator's command run on the server (`python -m auth grant-admin EMAIL`), which
    holds the signing key: how the first admin is made."""
    return await _changed_role(change, handlers, context, response)


class SessionsRevocation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr


@router.post("/users/sessions/revoke")
async def revoke_sessions(
    revocation: SessionsRevocation,
    handlers: Handlers,
    context: Context,
    response: Response,
    admin: CurrentAdmin,
) -> dict[str, Any]:
    """End every session of a user: their tokens issued until now stop working (admins only)."""
    return await _revoked_sessions(revocation, handlers, context, response)


async def _revoked_sessions(
    revocation: SessionsRevocation, handlers: UsersHandlers, context: CommandContext, response: Response
) -> dict[str, Any]:
    committed = await handlers.revoke_sessions(revocation.email, context, datetime.now(UTC))
    acknowledge(response, committed)
    return {"message": "Sessions revoked", "email": revocation.email.lower()}


@router.post("/internal/users/sessions/revoke", tags=["internal"])
async def revoke_sessions_as_operator(
    revocation: SessionsRevocation,
    handlers: Handlers,
    context: Context,
    response: Response,
    service: CurrentService,
) -> dict[str, Any]:
    """The same, for an operator's command run on the server (`python -m auth revoke-sessions EMAIL`)."""
    return await _revoked_sessions(revocation, handlers, context, response)
