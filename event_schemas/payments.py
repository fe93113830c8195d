"""Events of the payments context: one payment per order, through a payment gateway (Stripe, or the
local simulated gateway).

Amounts are integer minor units of their currency (19.99 USD is 1999), as the gateways take them.
Nothing secret is ever in an event: the client secret of a PaymentIntent is fetched from the gateway
when a customer needs it, and card details never reach this system.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from event_schemas.envelope import Event

Gateway = Literal["stripe", "simulated"]


class PaymentEvent(Event):
    """A payment's aggregate id is `payment-<order number>`."""

    aggregate_type: ClassVar[str] = "Payment"

    order_number: int = Field(gt=0)


class PaymentRequested(Event):
    """A customer's create-payment request with an Idempotency-Key, claimed once per key: the
    aggregate (`payment-request-<digest of caller, route and key>`) exists so that the same key can
    never start paying another order. It carries no personal data: the digest is opaque."""

    event_type: ClassVar[str] = "PaymentRequested"
    aggregate_type: ClassVar[str] = "PaymentRequest"

    order_number: int = Field(gt=0)


class PaymentInitiated(PaymentEvent):
    """A PaymentIntent was created at the gateway for the order's exact total."""

    event_type: ClassVar[str] = "PaymentInitiated"

    customer_id: int = Field(gt=0)
    gateway: Gateway
    intent_id: str = Field(min_length=1, max_length=255)
    amount_minor: int = Field(gt=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")


class PaymentSucceeded(PaymentEvent):
    """The gateway took the money. `gateway_event_id` names the webhook event that said so, if one did."""

    event_type: ClassVar[str] = "PaymentSucceeded"

    intent_id: str
    amount_minor: int = Field(gt=0)
    gateway_event_id: str | None = None


class PaymentFailed(PaymentEvent):
    """A payment attempt was declined. Not the end of the order: as with Stripe, the intent waits for
    another payment method until the order's deadline. `attempt_id` names the attempt (the gateway's
    charge), so each decline is recorded once however often it is reported.

    Version 2 added `attempt_id`; a version-1 record is upcast with the attempt named by its webhook
    event, or by its intent (version 1 ended the order at the first decline, so it had one)."""

    event_type: ClassVar[str] = "PaymentFailed"
    schema_version: ClassVar[int] = 2

    intent_id: str
    attempt_id: str = Field(min_length=1, max_length=255)
    reason: str = Field(max_length=500)
    gateway_event_id: str | None = None


def payment_failed_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    attempt = payload.get("gateway_event_id") or f"{payload['intent_id']}:first"
    return payload | {"attempt_id": attempt}


class RefundedUnits(BaseModel):
    """Units of one product whose price was refunded; they go back to stock."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    product_id: int = Field(gt=0)
    qty: int = Field(gt=0)


class PaymentRefunded(PaymentEvent):
    """An admin refunded a paid order, whole or some of its lines; the gateway's refund is `refund_id`."""

    event_type: ClassVar[str] = "PaymentRefunded"

    intent_id: str
    refund_id: str = Field(min_length=1, max_length=255)
    amount_minor: int = Field(gt=0)
    units: tuple[RefundedUnits, ...] = ()
    # Nothing of the payment is left after this refund.
    fully: bool
    gateway_event_id: str | None = None
