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


def currency_decimals(currency: str) -> int:
    """How many decimals an amount of the currency can have: 0 for a zero-decimal currency, else 2."""
    return 0 if currency in ZERO_DECIMAL_CURRENCIES else 2


class AmountNotInCurrency(ValueError):
    """An amount finer than its currency's smallest unit (19.99 JPY): no gateway can charge it."""

    def __init__(self, amount: Decimal, currency: str) -> None:
        decimals = currency_decimals(currency)
        takes = "whole amounts only" if decimals == 0 else f"at most {decimals} decimals"
        super().__init__(f"{amount} is not an amount of {currency}: {currency} takes {takes}")
        self.amount = amount
        self.currency = currency


def minor_units(money: Money) -> int:
    """The amount in the currency's smallest unit, exactly (19.99 USD -> 1999, never 1998.9999...);
    AmountNotInCurrency for an amount the currency cannot hold."""
    scaled = money.amount.scaleb(currency_decimals(money.currency))
    if scaled != scaled.to_integral_value():
        raise AmountNotInCurrency(money.amount, money.currency)
    return int(scaled)


def from_minor_units(amount_minor: int, currency: str) -> Money:
    return Money(amount=Decimal(amount_minor).scaleb(-currency_decimals(currency)), currency=currency)
