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


async def current_service(claims: CurrentUser) -> Claims:
    """Internal routes answer only the platform's own processes, never a user (not even an admin)."""
    if claims.role != "service":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "This route is for the platform's services only")
    return claims


CurrentService = Annotated[Claims, Depends(current_service)]


async def current_customer(claims: CurrentUser) -> Claims:
    """A user acting for themselves (carts and orders belong to a user account)."""
    if claims.role == "service":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "This route is for customers")
    return claims


CurrentCustomer = Annotated[Claims, Depends(current_customer)]


async def current_operator(claims: CurrentUser) -> Claims:
    """Operations routes (who owns which partition): an admin, or the platform's own processes."""
    if claims.role not in ("admin", "service"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "This route is for operators")
    return claims


CurrentOperator = Annotated[Claims, Depends(current_operator)]
