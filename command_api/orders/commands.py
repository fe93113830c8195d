"""Requests the orders command side accepts."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from command_api.orders.domain import MAX_QTY

Quantity = Annotated[StrictInt, Field(gt=0, le=MAX_QTY)]
ProductId = Annotated[StrictInt, Field(gt=0, le=2**53)]


class AddToCart(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    product_id: ProductId = Field(alias="productId")
    qty: Quantity


class ChangeQuantity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    qty: Quantity


class ReservationResult(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    product_id: ProductId = Field(alias="productId")
    reserved: StrictBool
    reason: Literal["insufficient_stock", "product_unavailable"] | None = None


class RecordReservations(BaseModel):
    """The saga's report of every line's reservation in the catalog."""

    model_config = ConfigDict(extra="forbid")

    results: Annotated[list[ReservationResult], Field(min_length=1, max_length=200)]


class RecordPayment(BaseModel):
    """The saga's report that the order's payment succeeded."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    intent_id: Annotated[str, Field(min_length=1, max_length=255)] = Field(alias="intentId")
    amount_minor: Annotated[StrictInt, Field(gt=0)] = Field(alias="amountMinor")


class RefundedUnitsBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    product_id: ProductId = Field(alias="productId")
    qty: Quantity


class RecordRefund(BaseModel):
    """The saga's report that money went back for the order."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    refund_id: Annotated[str, Field(min_length=1, max_length=255)] = Field(alias="refundId")
    amount_minor: Annotated[StrictInt, Field(gt=0)] = Field(alias="amountMinor")
    units: Annotated[list[RefundedUnitsBody], Field(max_length=200)] = []
    fully: StrictBool
