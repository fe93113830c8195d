"""Money: an exact decimal amount with its currency. Never a float, in events or on the wire."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer


def amount_text(amount: Decimal) -> str:
    """How an amount is written on the wire: a string with two decimals ("19.99"), so no client parses
    it as a float."""
    return f"{amount:.2f}"


Amount = Annotated[
    Decimal,
    Field(max_digits=12, decimal_places=2, allow_inf_nan=False),
    PlainSerializer(amount_text, return_type=str, when_used="json"),
]


class Money(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: Amount
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$")

    def times(self, quantity: int) -> Money:
        return Money(amount=self.amount * quantity, currency=self.currency)


# Currencies whose smallest unit is the unit itself (Stripe's "zero-decimal currencies").
ZERO_DECIMAL_CURRENCIES = frozenset(
    {
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    }
)


def minor_units(money: Money) -> int:
    """The amount in the currency's smallest unit, exactly (19.99 USD -> 1999, never 1998.9999...)."""
    exponent = 0 if money.currency in ZERO_DECIMAL_CURRENCIES else 2
    scaled = money.amount.scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{money.amount} {money.currency} is not a whole number of minor units")
    return int(scaled)


def from_minor_units(amount_minor: int, currency: str) -> Money:
    exponent = 0 if currency in ZERO_DECIMAL_CURRENCIES else 2
    return Money(amount=Decimal(amount_minor).scaleb(-exponent), currency=currency)
