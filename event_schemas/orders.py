"""Events of the orders context: a customer's cart, and orders with their lifecycle.

An order's status moves only along these transitions (the Order aggregate refuses any other):

    pending ──▶ confirmed ──▶ paid ──▶ refunded   (once the whole payment went back)
       │            │
       │            ├──▶ expired     (unpaid past `payment_due`)
       │            └──▶ cancelled
       ├──▶ rejected                 (a line could not be reserved)
       └──▶ cancelled

Prices are fixed when the order is placed; every amount is an exact decimal (`Money`).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from event_schemas.envelope import Event
from event_schemas.money import Money
from event_schemas.payments import RefundedUnits

OrderStatus = Literal["pending", "confirmed", "paid", "refunded", "rejected", "cancelled", "expired"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"rejected", "cancelled", "expired"})


class CartEvent(Event):
    """One cart per customer; its aggregate id is `cart-<customer id>`."""

    aggregate_type: ClassVar[str] = "Cart"

    customer_id: int = Field(gt=0)


class CartLineAdded(CartEvent):
    """A product went into the cart. `line_id` is unique across carts (it encodes the customer)."""

    event_type: ClassVar[str] = "CartLineAdded"

    line_id: int = Field(gt=0)
    product_id: int = Field(gt=0)
    item_name: str
    unit_price: Money
    qty: int = Field(gt=0)


class CartLineQuantityChanged(CartEvent):
    """The line's quantity is now `qty` (adding a product already in the cart lands here too)."""

    event_type: ClassVar[str] = "CartLineQuantityChanged"

    line_id: int = Field(gt=0)
    product_id: int = Field(gt=0)
    qty: int = Field(gt=0)


class CartLineRemoved(CartEvent):
    event_type: ClassVar[str] = "CartLineRemoved"

    line_id: int = Field(gt=0)
    product_id: int = Field(gt=0)


class CartCheckedOut(CartEvent):
    """The cart became order `order_number` and is empty again.

    The cart also counts its customer's open orders (placed, not yet paid or ended), which are limited:
    `ended_orders` are the earlier orders it counted that had ended by this checkout, and that it stops
    counting. Version 2 added `ended_orders`; a version-1 record is upcast with none (version 1 counted
    nothing: its orders are counted until a later checkout finds them ended)."""

    event_type: ClassVar[str] = "CartCheckedOut"
    schema_version: ClassVar[int] = 2

    order_number: int = Field(gt=0)
    ended_orders: tuple[Annotated[int, Field(gt=0)], ...] = ()


def cart_checked_out_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    return payload | {"ended_orders": []}


class OrderLine(BaseModel):
    """One line of an order, priced when the order was placed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    line_no: int = Field(gt=0)
    product_id: int = Field(gt=0)
    item_name: str
    qty: int = Field(gt=0)
    unit_price: Money

    @property
    def amount(self) -> Money:
        return self.unit_price.times(self.qty)


class OrderEvent(Event):
    """An order's aggregate id is `order-<order number>`."""

    aggregate_type: ClassVar[str] = "Order"

    order_number: int = Field(gt=0)


class OrderPlaced(OrderEvent):
    """A customer turned their cart into an order; its stock is not reserved yet (status pending)."""

    event_type: ClassVar[str] = "OrderPlaced"

    customer_id: int = Field(gt=0)
    lines: tuple[OrderLine, ...] = Field(min_length=1)
    total: Money


class OrderConfirmed(OrderEvent):
    """Every line's stock is held for the order; it awaits payment until `payment_due`."""

    event_type: ClassVar[str] = "OrderConfirmed"

    payment_due: AwareDatetime


RejectionReason = Literal["insufficient_stock", "product_unavailable"]


class OrderRejected(OrderEvent):
    """A line could not be reserved; whatever was reserved for the order is released."""

    event_type: ClassVar[str] = "OrderRejected"

    reason: RejectionReason
    product_ids: tuple[int, ...] = Field(min_length=1)


CancellationReason = Literal["customer", "payment_failed"]


class OrderCancelled(OrderEvent):
    event_type: ClassVar[str] = "OrderCancelled"

    reason: CancellationReason


class OrderExpired(OrderEvent):
    """The order was not paid by its deadline; its stock is released."""

    event_type: ClassVar[str] = "OrderExpired"

    payment_due: AwareDatetime


class OrderPaid(OrderEvent):
    """The payment succeeded: the order's held units leave stock for good."""

    event_type: ClassVar[str] = "OrderPaid"

    intent_id: str
    amount: Money


class OrderRefunded(OrderEvent):
    """Money went back to the customer for some or all of the order (once per refund); `fully` when
    nothing of the payment is left."""

    event_type: ClassVar[str] = "OrderRefunded"

    refund_id: str
    amount: Money
    units: tuple[RefundedUnits, ...] = ()
    fully: bool
