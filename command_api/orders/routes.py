"""HTTP routes of the orders command side: the seed's cart and order writes for the calling customer
(never a customer named in the request), cancelling, and the internal routes the order saga drives."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response

from auth.deps import CurrentCustomer, CurrentService
from command_api.http import Context, acknowledge
from command_api.orders.commands import (
    AddToCart,
    ChangeQuantity,
    RecordPayment,
    RecordRefund,
    RecordReservations,
)
from command_api.orders.domain import CartState, OrderState
from command_api.orders.handlers import CartChange, OrderChange, OrdersHandlers
from event_schemas.money import amount_text
from web.errors import error_responses

router = APIRouter(tags=["orders"], responses=error_responses(401, 403, 404, 409, 413, 422, 503))

LineId = Annotated[int, Path(gt=0, le=2**53)]
OrderNumber = Annotated[int, Path(gt=0, le=2**53)]


async def get_handlers(request: Request) -> OrdersHandlers:
    handlers: OrdersHandlers = request.app.state.orders_handlers
    return handlers


Handlers = Annotated[OrdersHandlers, Depends(get_handlers)]


def line_public(cart: CartState, customer_id: int, line_id: int) -> dict[str, Any]:
    line = cart.line(line_id)
    if line is None:  # removed
        return {"id": line_id, "cartId": customer_id, "deleted": True}
    return {
        "id": line.line_id,
        "productId": line.product_id,
        "cartId": customer_id,
        "itemName": line.item_name,
        "variant": None,
        "qty": line.qty,
        "price": amount_text(line.unit_price.amount),
        "currency": line.unit_price.currency,
    }


def _line_answer(change: CartChange, customer_id: int, response: Response) -> dict[str, Any]:
    acknowledge(response, change.committed)
    return line_public(change.cart, customer_id, change.line_id)


def _order_answer(change: OrderChange, response: Response) -> dict[str, Any]:
    acknowledge(response, change.committed)
    return order_status_public(change.order)


def order_status_public(order: OrderState) -> dict[str, Any]:
    return {"orderNumber": order.order_number, "status": order.status}


@router.post("/cart")
async def add_to_cart(
    command: AddToCart, handlers: Handlers, context: Context, response: Response, customer: CurrentCustomer
) -> dict[str, Any]:
    """Put a product in the caller's cart; a product already there adds to its line's quantity."""
    change = await handlers.add_to_cart(customer.user_id, command, context, datetime.now(UTC))
    return _line_answer(change, customer.user_id, response)


@router.patch("/cart/{line_item_id}")
async def change_quantity(
    line_item_id: LineId,
    command: ChangeQuantity,
    handlers: Handlers,
    context: Context,
    response: Response,
    customer: CurrentCustomer,
) -> dict[str, Any]:
    """Set the quantity of a line of the caller's cart."""
    change = await handlers.change_quantity(
        customer.user_id, line_item_id, command, context, datetime.now(UTC)
    )
    return _line_answer(change, customer.user_id, response)


@router.delete("/cart/{line_item_id}")
async def remove_line(
    line_item_id: LineId, handlers: Handlers, context: Context, response: Response, customer: CurrentCustomer
) -> dict[str, Any]:
    """Take a line out of the caller's cart."""
    change = await handlers.remove_line(customer.user_id, line_item_id, context, datetime.now(UTC))
    return _line_answer(change, customer.user_id, response)


@router.post("/orders")
async def place_order(
    handlers: Handlers, context: Context, response: Response, customer: CurrentCustomer
) -> dict[str, Any]:
    """Turn the caller's cart into an order (status pending until its stock is reserved)."""
    committed, order_number = await handlers.place_order(customer.user_id, context, datetime.now(UTC))
    acknowledge(response, committed)
    return {"message": "Order created successfully", "orderNumber": order_number, "status": "pending"}


@router.post("/orders/{order_number}/cancel")
async def cancel_order(
    order_number: OrderNumber,
    handlers: Handlers,
    context: Context,
    response: Response,
    customer: CurrentCustomer,
) -> dict[str, Any]:
    """Cancel one of the caller's orders that is not paid yet; its stock is released."""
    change = await handlers.cancel_order(customer.user_id, order_number, context, datetime.now(UTC))
    return _order_answer(change, response)


@router.post("/internal/orders/{order_number}/reservations", tags=["internal"])
async def record_reservations(
    order_number: OrderNumber,
    command: RecordReservations,
    handlers: Handlers,
    context: Context,
    response: Response,
    service: CurrentService,
) -> dict[str, Any]:
    """The saga reports every line's reservation; `releaseHeld` tells it to give back what it holds
    because the order stopped waiting for it (it was cancelled meanwhile)."""
    change = await handlers.record_reservations(order_number, command, context, datetime.now(UTC))
    return _order_answer(change, response) | {"releaseHeld": change.release_held}


@router.post("/internal/orders/{order_number}/paid", tags=["internal"])
async def order_paid(
    order_number: OrderNumber,
    command: RecordPayment,
    handlers: Handlers,
    context: Context,
    response: Response,
    service: CurrentService,
) -> dict[str, Any]:
    """The order's payment succeeded: a confirmed order becomes paid (409 if it ended meanwhile)."""
    change = await handlers.mark_paid(
        order_number, command.intent_id, command.amount_minor, context, datetime.now(UTC)
    )
    return _order_answer(change, response)


@router.post("/internal/orders/{order_number}/refunded", tags=["internal"])
async def order_refunded(
    order_number: OrderNumber,
    command: RecordRefund,
    handlers: Handlers,
    context: Context,
    response: Response,
    service: CurrentService,
) -> dict[str, Any]:
    """Money went back for some or all of a paid order (once per refund)."""
    change = await handlers.record_refund(order_number, command, context, datetime.now(UTC))
    return _order_answer(change, response)


@router.post("/internal/orders/{order_number}/expire", tags=["internal"])
async def expire_order(
    order_number: OrderNumber,
    handlers: Handlers,
    context: Context,
    response: Response,
    service: CurrentService,
) -> dict[str, Any]:
    """Expire the order if it is confirmed, unpaid and past its payment deadline (else nothing)."""
    change = await handlers.expire(order_number, context, datetime.now(UTC))
    return _order_answer(change, response)


@router.get("/internal/orders/{order_number}", tags=["internal"])
async def order_state(
    order_number: OrderNumber, handlers: Handlers, service: CurrentService, folded: bool = False
) -> dict[str, Any]:
    """The order as its writer knows it (the saga reads the lines whose stock it must release).
    `?folded=true`: as its writer has folded it, without a Kafka round trip to prove the writer still
    owns it (see `OrdersHandlers.order`)."""
    order = await handlers.order(order_number, proven=not folded)
    return order_status_public(order) | {
        "customerId": order.customer_id,
        "lines": [{"productId": line.product_id, "qty": line.qty} for line in order.lines],
    }
