"""What the orders query side returns: the seed's cart and order shapes, camelCased as its clients read
them. Amounts are decimal strings with two decimals, never floats."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from event_schemas.money import Amount
from event_schemas.orders import OrderStatus
from query_api.schemas import CamelModel
from read_models.orders_replica import ReplicaProduct


class OrderScope(StrEnum):
    """Whose orders `GET /orders` lists: the caller's own, or every customer's (admins only)."""

    own = "own"
    all = "all"


# An order line's id: the order number times this, plus the line's number.
LINE_ID_STRIDE = 1000


class CartLinePublic(CamelModel):
    id: int
    product_id: int
    cart_id: int  # the customer's id: one cart per customer
    item_name: str
    variant: None = None  # the seed's field; products have no variants
    qty: int
    price: Amount  # the product's current price, or the price it was added at if it is gone
    currency: str
    availability: int  # units of the product still free to sell (0 once it is deleted)
    created_at: datetime
    updated_at: datetime


class CartPublic(CamelModel):
    id: int  # the customer's id: one cart per customer
    customer_id: int
    created_at: datetime
    updated_at: datetime
    line_items: list[CartLinePublic]

    @classmethod
    def from_row(cls, row: Mapping[str, Any], products: Mapping[int, ReplicaProduct]) -> CartPublic:
        """The cart's row (its lines as the projector wrote them) with each product's current price and
        availability from the catalog replica."""
        customer_id: int = row["customer_id"]
        lines = []
        for line in row["lines"]:
            product = products.get(line["productId"])
            on_sale = None if product is None or product.deleted else product
            lines.append(
                CartLinePublic(
                    id=line["id"],
                    product_id=line["productId"],
                    cart_id=customer_id,
                    item_name=line["itemName"],
                    qty=line["qty"],
                    price=Decimal(line["price"]) if on_sale is None else on_sale.price,
                    currency=line["currency"] if on_sale is None else on_sale.currency,
                    availability=0 if on_sale is None else on_sale.stock,
                    created_at=line["createdAt"],
                    updated_at=line["updatedAt"],
                )
            )
        return cls(
            id=customer_id,
            customer_id=customer_id,
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            line_items=lines,
        )


class OrderLinePublic(CamelModel):
    id: int  # order number * 1000 + line number: unique across orders, stable across replays
    product_id: int
    item_name: str
    qty: int
    price: Amount  # the unit price the order was placed at
    order_id: int
    created_at: datetime
    updated_at: datetime


class StatusChangePublic(CamelModel):
    status: OrderStatus
    at: datetime
    reason: str | None


class CheckoutPublic(CamelModel):
    """What paying for an order needs (`GET /orders/{orderNumber}/checkout`)."""

    id: int  # the order number (the seed's database id is gone)
    order_number: int
    status: OrderStatus
    customer_id: int
    amount: Amount
    currency: str
    payment_due: datetime | None  # set once the order is confirmed
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> CheckoutPublic:
        return cls(
            id=row["order_number"],
            order_number=row["order_number"],
            status=row["status"],
            customer_id=row["customer_id"],
            amount=row["amount"],
            currency=row["currency"],
            payment_due=row["payment_due"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


class OrderPublic(CamelModel):
    id: int  # the order number (the seed's database id is gone)
    order_number: int
    customer_id: int
    amount: Amount
    currency: str
    status: OrderStatus
    txn_id: str | None  # the payment's intent id, once paid
    refunded_amount: Amount  # what went back to the customer (status `refunded` once it is all of it)
    reason: str | None  # why it was rejected or cancelled
    rejected_product_ids: list[int]  # the products that could not be reserved, if it was rejected
    payment_due: datetime | None
    created_at: datetime
    updated_at: datetime
    status_history: list[StatusChangePublic]
    line_items: list[OrderLinePublic]

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> OrderPublic:
        number: int = row["order_number"]
        return cls(
            id=number,
            order_number=number,
            customer_id=row["customer_id"],
            amount=row["amount"],
            currency=row["currency"],
            status=row["status"],
            txn_id=row["txn_id"],
            refunded_amount=row["refunded_amount"],
            reason=row["reason"],
            rejected_product_ids=row["rejected_product_ids"],
            payment_due=row["payment_due"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            status_history=[StatusChangePublic.model_validate(change) for change in row["history"]],
            line_items=[
                OrderLinePublic(
                    id=number * LINE_ID_STRIDE + line["lineNo"],
                    product_id=line["productId"],
                    item_name=line["itemName"],
                    qty=line["qty"],
                    price=Decimal(line["price"]),
                    order_id=number,
                    # Lines never change once the order is placed.
                    created_at=row["created_at"],
                    updated_at=row["created_at"],
                )
                for line in row["lines"]
            ],
        )
