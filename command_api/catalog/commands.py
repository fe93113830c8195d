"""Requests the catalog command side accepts. Prices are exact: a JSON number or a decimal string with
at most two decimals, never rounded."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, model_validator

from web.text import Lines, SingleLine

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), SingleLine]
Description = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000), Lines]
Price = Annotated[Decimal, Field(gt=0, max_digits=10, decimal_places=2, allow_inf_nan=False)]
Stock = Annotated[StrictInt, Field(ge=0, le=1_000_000_000)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class CreateProduct(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description
    price: Price
    stock: Stock
    currency: Currency = "USD"


class UpdateProduct(BaseModel):
    """Changes only what it names."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    description: Description | None = None
    price: Price | None = None
    stock: Stock | None = None

    @model_validator(mode="after")
    def _names_something(self) -> UpdateProduct:
        if not self.model_fields_set:
            raise ValueError("name at least one of name, description, price, stock")
        return self


class AdjustStock(BaseModel):
    """Restock (positive) or write off (negative) units."""

    model_config = ConfigDict(extra="forbid")

    delta: Annotated[StrictInt, Field(ge=-1_000_000_000, le=1_000_000_000)]
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), SingleLine]

    @model_validator(mode="after")
    def _changes_something(self) -> AdjustStock:
        if self.delta == 0:
            raise ValueError("delta must not be 0")
        return self


OrderId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,80}$")]


class ReservationCommand(BaseModel):
    """The saga's request about one order's hold on one product."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    order_id: OrderId = Field(alias="orderId")
    product_id: Annotated[StrictInt, Field(gt=0, le=2**53)] = Field(alias="productId")


class ReserveStock(ReservationCommand):
    quantity: Annotated[StrictInt, Field(gt=0, le=1_000_000)]


class ReturnStock(ReservationCommand):
    """Units of a refunded order back in stock, once per refund."""

    refund_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,255}$")] = Field(
        alias="refundId"
    )
    quantity: Annotated[StrictInt, Field(gt=0, le=1_000_000)]
