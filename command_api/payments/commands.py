"""Requests the payments command side accepts."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt


class CreatePayment(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    order_number: Annotated[StrictInt, Field(gt=0, le=2**53)] = Field(alias="orderNumber")


class ConfirmSimulatedPayment(BaseModel):
    """What Stripe.js would send: the intent's client secret and a (test) card number."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    client_secret: Annotated[str, Field(min_length=1, max_length=255)] = Field(alias="clientSecret")
    card: Annotated[str, Field(pattern=r"^[0-9 ]{12,23}$")]


class RefundUnits(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    product_id: Annotated[StrictInt, Field(gt=0, le=2**53)] = Field(alias="productId")
    qty: Annotated[StrictInt, Field(gt=0, le=1_000)]


class RefundOrder(BaseModel):
    """Refund a paid order: the named lines' units, or everything not refunded yet."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    order_number: Annotated[StrictInt, Field(gt=0, le=2**53)] = Field(alias="orderNumber")
    lines: Annotated[list[RefundUnits], Field(min_length=1, max_length=200)] | None = None
