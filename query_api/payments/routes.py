"""HTTP routes of the payments query side."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from auth.deps import CurrentUser
from query_api.catch_up_on_miss import read_catching_up_on_miss
from query_api.consistency import ConsistencyToken, consistency_token, wait_for
from query_api.payments.queries import PaymentNotFound, payment_of
from query_api.payments.schemas import PaymentPublic
from query_api.read_model_feed import ReadModelDatabase
from read_models.payments import PAYMENTS
from web.errors import error_responses

router = APIRouter(tags=["payments"], responses=error_responses(401, 404, 422, 503))


async def payments_read_models(request: Request) -> ReadModelDatabase:
    database: ReadModelDatabase = request.app.state.payments_read_models
    return database


PaymentsReadModels = Annotated[ReadModelDatabase, Depends(payments_read_models)]
Token = Annotated[ConsistencyToken | None, Depends(consistency_token)]


@router.get("/payments/{orderNumber}")
async def payment(
    order_number: Annotated[int, Path(alias="orderNumber", gt=0, le=2**53)],
    claims: CurrentUser,
    database: PaymentsReadModels,
    token: Token,
    request: Request,
) -> PaymentPublic:
    """The payment of one of the caller's orders (any order's, for an admin)."""
    await wait_for(database, PAYMENTS, token, request.app.state.consistency_wait_seconds)
    customer = None if claims.role == "admin" else claims.user_id
    row = await read_catching_up_on_miss(
        lambda: payment_of(database.pool, order_number, customer),
        database,
        PAYMENTS,
        token,
        missed=PaymentNotFound,
    )
    return PaymentPublic.from_row(row)
