"""What the payments query side returns. Amounts are integer minor units, as the gateways take them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from query_api.schemas import CamelModel


class RefundPublic(CamelModel):
    refund_id: str
    amount_minor: int
    at: datetime


class PaymentPublic(CamelModel):
    order_number: int
    customer_id: int
    gateway: str
    intent_id: str
    status: str  # initiated, succeeded, failed, refunded
    amount_minor: int
    currency: str
    refunded_minor: int
    refunds: list[RefundPublic]
    failure: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> PaymentPublic:
        return cls.model_validate(
            dict(row) | {"refunds": [RefundPublic.model_validate(refund) for refund in row["refunds"]]}
        )
