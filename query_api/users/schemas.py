"""What the users query side returns."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class TokenPublic(BaseModel):
    """`/auth/validate`: the seed's `id` and `email`, plus the role and the token's times."""

    id: int
    email: str
    role: str
    iat: int
    exp: int


class UserPublic(BaseModel):
    id: int
    username: str
    email: str
    role: str
    registered_at: datetime
