"""HTTP routes of the catalog command side (admins only): the seed's product writes, plus stock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response, status

from auth.deps import CurrentAdmin, CurrentService
from command_api.catalog.commands import (
    AdjustStock,
    CreateProduct,
    ReservationCommand,
    ReserveStock,
    ReturnStock,
    UpdateProduct,
)
from command_api.catalog.handlers import CatalogHandlers, ProductChanged, ReservationAnswer
from command_api.http import Context, acknowledge
from event_schemas.money import amount_text
from web.errors import error_responses
from web.json_numbers import NumbersKeptRoute

# Bodies are read without floats, so a price sent as a JSON number is judged by the text it was written as.
router = APIRouter(
    tags=["catalog"],
    responses=error_responses(401, 403, 404, 409, 413, 422, 503),
    route_class=NumbersKeptRoute,
)

# Product paths say `{product_id:int}`, so `/products/stock` is never taken for a product: a PATCH there
# is a 405, not a product id that fails validation.
ProductId = Annotated[int, Path(gt=0, le=2**53)]


async def get_handlers(request: Request) -> CatalogHandlers:
    handlers: CatalogHandlers = request.app.state.catalog_handlers
    return handlers


Handlers = Annotated[CatalogHandlers, Depends(get_handlers)]


def product_public(changed: ProductChanged) -> dict[str, Any]:
    product = changed.product
    assert product.price is not None
    return {
        "id": product.product_id,
        "name": product.name,
        "description": product.description,
        "price": amount_text(product.price.amount),
        "currency": product.price.currency,
        "stock": product.stock,
        "reserved": product.reserved,
        "onHand": product.on_hand,
        "version": changed.version,
    }


@router.post("/products", status_code=status.HTTP_201_CREATED)
async def create_product(
    command: CreateProduct, handlers: Handlers, context: Context, response: Response, admin: CurrentAdmin
) -> dict[str, Any]:
    """Add a product to the catalog."""
    changed = await handlers.create(command, context, datetime.now(UTC))
    acknowledge(response, changed.committed)
    return product_public(changed)


@router.patch("/products/{product_id:int}")
async def update_product(
    product_id: ProductId,
    command: UpdateProduct,
    handlers: Handlers,
    context: Context,
    response: Response,
    admin: CurrentAdmin,
) -> dict[str, Any]:
    """Change the named fields of a product."""
    changed = await handlers.update(product_id, command, context, datetime.now(UTC))
    acknowledge(response, changed.committed)
    return product_public(changed)


@router.delete("/products/{product_id:int}")
async def delete_product(
    product_id: ProductId, handlers: Handlers, context: Context, response: Response, admin: CurrentAdmin
) -> dict[str, Any]:
    """Withdraw a product; it can no longer be changed or ordered."""
    changed = await handlers.delete(product_id, context, datetime.now(UTC))
    acknowledge(response, changed.committed)
    return {"id": product_id}


@router.post("/products/{product_id:int}/stock-adjustments")
async def adjust_stock(
    product_id: ProductId,
    command: AdjustStock,
    handlers: Handlers,
    context: Context,
    response: Response,
    admin: CurrentAdmin,
) -> dict[str, Any]:
    """Restock or write off units; stock never goes below zero."""
    changed = await handlers.adjust_stock(product_id, command, context, datetime.now(UTC))
    acknowledge(response, changed.committed)
    return product_public(changed)


def reservation_public(answer: ReservationAnswer) -> dict[str, Any]:
    outcome = answer.outcome
    return {
        "orderId": answer.order_id,
        "productId": answer.product_id,
        "outcome": None if outcome is None else ("reserved" if outcome.reserved else "rejected"),
        "reason": None if outcome is None else outcome.reason,
        "quantity": None if outcome is None else outcome.quantity,
        "held": answer.held,
        "stock": answer.stock,
    }


@router.post("/internal/reservations", tags=["internal"])
async def reserve_stock(
    command: ReserveStock, handlers: Handlers, context: Context, service: CurrentService
) -> dict[str, Any]:
    """Hold units of a product for an order (the order saga only). A repeated reservation for the same
    order answers with its first outcome and holds nothing more."""
    return reservation_public(await handlers.reserve(command, context, datetime.now(UTC)))


@router.post("/internal/reservations/release", tags=["internal"])
async def release_stock(
    command: ReservationCommand, handlers: Handlers, context: Context, service: CurrentService
) -> dict[str, Any]:
    """Give back what is held for an order (once; releasing what is not held changes nothing)."""
    return reservation_public(await handlers.release(command, context, datetime.now(UTC)))


@router.post("/internal/reservations/commit", tags=["internal"])
async def commit_reservation(
    command: ReservationCommand, handlers: Handlers, context: Context, service: CurrentService
) -> dict[str, Any]:
    """The order is paid: what is held for it leaves stock on hand for good (once)."""
    return reservation_public(await handlers.commit(command, context, datetime.now(UTC)))


@router.post("/internal/stock-returns", tags=["internal"])
async def return_stock(
    command: ReturnStock, handlers: Handlers, context: Context, response: Response, service: CurrentService
) -> dict[str, Any]:
    """Refunded units back in stock (the order saga only), once per refund."""
    changed = await handlers.return_stock(command, context, datetime.now(UTC))
    acknowledge(response, changed.committed)
    return product_public(changed)
