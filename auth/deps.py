"""FastAPI dependencies: who is calling, and may they."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status

from auth.tokens import Claims, TokenVerifier, bearer_token


async def current_claims(request: Request, authorization: Annotated[str | None, Header()] = None) -> Claims:
    verifier: TokenVerifier = request.app.state.token_verifier
    return verifier.verify(bearer_token(authorization))


CurrentUser = Annotated[Claims, Depends(current_claims)]


async def current_admin(claims: CurrentUser) -> Claims:
    if claims.role != "admin":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "This action needs the admin role")
    return claims


CurrentAdmin = Annotated[Claims, Depends(current_admin)]
