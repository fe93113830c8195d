"""HTTP routes of the users query side."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status

from auth.deps import CurrentUser
from query_api.consistency import ConsistencyToken, consistency_token, wait_for
from query_api.read_model_feed import ReadModelDatabase
from query_api.users.queries import user_by_id
from query_api.users.schemas import TokenPublic, UserPublic
from read_models.users import USERS
from web.errors import error_responses

router = APIRouter(tags=["users"], responses=error_responses(401, 404, 422, 503))


async def users_read_models(request: Request) -> ReadModelDatabase:
    database: ReadModelDatabase = request.app.state.users_read_models
    return database


UsersReadModels = Annotated[ReadModelDatabase, Depends(users_read_models)]
Token = Annotated[ConsistencyToken | None, Depends(consistency_token)]


@router.get("/auth/validate")
async def validate(claims: CurrentUser) -> TokenPublic:
    """Verify a bearer token and say whose it is."""
    return TokenPublic(
        id=claims.user_id, email=claims.email, role=claims.role, iat=claims.issued_at, exp=claims.expires_at
    )


@router.get("/users/me")
async def me(claims: CurrentUser, database: UsersReadModels, token: Token, request: Request) -> UserPublic:
    """The caller's profile from the read model (pass a consistency token to read your own writes)."""
    await wait_for(database, USERS, token, request.app.state.consistency_wait_seconds)
    row = await user_by_id(database.pool, claims.user_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "User not found")
    return UserPublic(**row)
