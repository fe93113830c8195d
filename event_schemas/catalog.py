"""Events of the catalog context: products, their stock, and stock held for orders."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from event_schemas.envelope import Event
from event_schemas.money import Money


class ProductEvent(Event):
    aggregate_type: ClassVar[str] = "Product"

    product_id: int = Field(gt=0)


class ProductCreated(ProductEvent):
    event_type: ClassVar[str] = "ProductCreated"

    name: str
    description: str
    price: Money
    stock: int = Field(ge=0)


class ProductUpdated(ProductEvent):
    """What changed; a field left out did not change."""

    event_type: ClassVar[str] = "ProductUpdated"

    name: str | None = None
    description: str | None = None
    price: Money | None = None


class ProductDeleted(ProductEvent):
    event_type: ClassVar[str] = "ProductDeleted"


class StockAdjusted(ProductEvent):
    """An operator counted, restocked or wrote off units; `stock` is the level after the change."""

    event_type: ClassVar[str] = "StockAdjusted"

    delta: int
    stock: int = Field(ge=0)
    reason: str


class StockReserved(ProductEvent):
    """Units held for an order: they leave the sellable `stock` (still on hand) until released or
    committed."""

    event_type: ClassVar[str] = "StockReserved"

    order_id: str
    quantity: int = Field(gt=0)
    stock: int = Field(ge=0)


class StockReservationRejected(ProductEvent):
    event_type: ClassVar[str] = "StockReservationRejected"

    order_id: str
    quantity: int = Field(gt=0)
    available: int = Field(ge=0)
    reason: Literal["insufficient_stock", "product_unavailable"]


class StockReleased(ProductEvent):
    """Units held for an order went back to the sellable stock (the order was cancelled or failed)."""

    event_type: ClassVar[str] = "StockReleased"

    order_id: str
    quantity: int = Field(gt=0)
    stock: int = Field(ge=0)


class StockReservationCommitted(ProductEvent):
    """The order was paid: its held units left the shop for good (stock on hand falls by `quantity`;
    the units still free to sell, `stock`, do not change)."""

    event_type: ClassVar[str] = "StockReservationCommitted"

    order_id: str
    quantity: int = Field(gt=0)
    stock: int = Field(ge=0)


class StockReturned(ProductEvent):
    """Units of a paid order came back (the order was refunded for them): they are on hand and free to
    sell again. Recorded once per refund."""

    event_type: ClassVar[str] = "StockReturned"

    order_id: str
    refund_id: str
    quantity: int = Field(gt=0)
    stock: int = Field(ge=0)
