"""Requests the catalog command side accepts. Prices are exact: a JSON number or a decimal string with
at most two decimals, never rounded, and never finer than their currency's smallest unit."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from event_schemas.money import AmountNotInCurrency, Money, minor_units
from web.json_numbers import NumberText
from web.text import Lines, SingleLine

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), SingleLine]
Description = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000), Lines]
Stock = Annotated[StrictInt, Field(ge=0, le=1_000_000_000)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]

# What Decimal() would also read is refused: "1e2", "1_000", " 9.99", "+5", ".5", other scripts' digits
# ([0-9] is ASCII only, unlike \d). A JSON number is held to the text it was written as.
PRICE_PATTERN = r"^[0-9]+(\.[0-9]{1,2})?$"
_PRICE_TEXT = re.compile(PRICE_PATTERN)
_PRICE_SHAPE = "a price is digits with at most two decimals, as 19.99 or 5"


def price_from_text(value: object) -> Decimal:
    """The exact price a JSON string, JSON number (`NumberText`) or integer spells; never a float."""
    if isinstance(value, NumberText):
        text = value.text
    elif isinstance(value, str | Decimal) or (isinstance(value, int) and not isinstance(value, bool)):
        text = str(value)
    else:
        raise PydanticCustomError("price_format", _PRICE_SHAPE)
    if _PRICE_TEXT.fullmatch(text) is None:
        raise PydanticCustomError("price_format", _PRICE_SHAPE)
    return Decimal(text)


Price = Annotated[
    Decimal,
    BeforeValidator(price_from_text),
    Field(gt=0, max_digits=10),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": PRICE_PATTERN},
                {"type": "number", "exclusiveMinimum": 0},
            ],
            "description": "Digits with at most two decimals (a zero-decimal currency's: none), as a "
            "string or a JSON number written that way",
            "examples": ["19.99"],
        }
    ),
]


class CreateProduct(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description
    # Before the price, so the price's check can read it.
    currency: Currency = "USD"
    price: Price
    stock: Stock

    @field_validator("price")
    @classmethod
    def _held_by_currency(cls, price: Decimal, info: ValidationInfo) -> Decimal:
        currency = info.data.get("currency")
        if currency is None:  # the currency's own error is answered
            return price
        try:
            minor_units(Money(amount=price, currency=currency))
        except AmountNotInCurrency as refused:
            raise PydanticCustomError("amount_not_in_currency", str(refused)) from refused
        return price


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
