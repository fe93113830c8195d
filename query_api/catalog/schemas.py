"""What the catalog query side accepts and returns. Prices are decimal strings, never floats."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, computed_field

from event_schemas.money import Amount
from web.text import SingleLineText


class ProductPublic(BaseModel):
    """`stock` keeps the seed's meaning, the units still free to sell; `reserved` are held by orders,
    and `onHand` (stock + reserved) is what the shop holds."""

    model_config = ConfigDict(serialize_by_alias=True)  # `onHand` in every answer, cached ones too

    id: int
    name: str
    description: str
    price: Amount
    currency: str
    stock: int
    # Search documents indexed before reservations were counted have none (none had been made).
    reserved: int = 0
    version: int
    created_at: datetime
    updated_at: datetime

    @computed_field(alias="onHand")  # type: ignore[prop-decorator]
    @property
    def on_hand(self) -> int:
        return self.stock + self.reserved

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ProductPublic:
        return cls.model_validate(row)


class ProductSort(StrEnum):
    relevance = "relevance"
    id = "id"
    newest = "newest"
    name = "name"
    price_asc = "price_asc"
    price_desc = "price_desc"


class ProductFilters(BaseModel):
    """The list's query parameters."""

    limit: int = Field(20, ge=1, le=100)
    offset: int = Field(0, ge=0, le=10_000)
    search: SingleLineText | None = Field(None, min_length=1, max_length=200)
    min_price: Decimal | None = Field(None, ge=0, max_digits=12, decimal_places=2)
    max_price: Decimal | None = Field(None, ge=0, max_digits=12, decimal_places=2)
    in_stock: bool = False
    sort: ProductSort | None = None


class StockQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[StrictInt, Field(gt=0)]] = Field(min_length=1, max_length=100)
