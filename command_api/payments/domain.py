"""The Payment aggregate (`payment-<order number>`, one per order): pure decisions and the fold.

A payment is initiated once per order (a retry answers the same intent), for the order's exact total
in minor units. As with Stripe, a declined attempt is not the end: the intent waits for another card
until the order's deadline, and each decline is recorded once (by the gateway's attempt). The success
is recorded once, whether it arrives by verify-payment or by a webhook, even after declines; a success
the shop cannot honour (the order ended meanwhile) is refunded by the saga. Refunds are recorded once
per gateway refund id, whoever reports them (the admin's request, a webhook), decided here against the
refunds already recorded, so no refund is ever counted twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from functools import singledispatch
from typing import Literal

from command_api.eventstore.model import AggregateKind, Loaded
from command_api.payments.gateway import Intent, Refund
from event_schemas.envelope import Event
from event_schemas.money import Money, minor_units
from event_schemas.payments import (
    Gateway,
    PaymentFailed,
    PaymentInitiated,
    PaymentRefunded,
    PaymentRequested,
    PaymentSucceeded,
    RefundedUnits,
)

# "failed": the last attempt was declined; the payment can still succeed with another card.
PaymentStatus = Literal["initiated", "succeeded", "failed"]


class PaymentsError(Exception):
    """A command the payments context refuses."""


class OrderNotPayable(PaymentsError):
    """Only a confirmed order that is not paid yet can be paid."""


class PaymentNotFound(PaymentsError):
    pass


class IntentMismatch(PaymentsError):
    """The gateway's intent is not this payment's (another order's, or another amount)."""


class RefundNotAllowed(PaymentsError):
    pass


@dataclass(frozen=True)
class OrderToPay:
    """What the payments side knows of an order (from its replica of the orders' events)."""

    order_number: int
    customer_id: int
    status: str
    total: Money
    # product id -> (units ordered, unit price)
    lines: Mapping[int, tuple[int, Decimal]] = field(default_factory=dict)


@dataclass(frozen=True)
class PaymentState:
    order_number: int = 0
    customer_id: int = 0
    gateway: Gateway | None = None
    intent_id: str = ""
    amount_minor: int = 0
    currency: str = ""
    status: PaymentStatus | None = None
    refunded_minor: int = 0
    refund_ids: frozenset[str] = frozenset()
    refunded_units: Mapping[int, int] = field(default_factory=dict)
    gateway_events: frozenset[str] = frozenset()
    declined_attempts: frozenset[str] = frozenset()
    last_failure: str | None = None

    @property
    def initiated(self) -> bool:
        return self.status is not None


@singledispatch
def _apply(event: Event, state: PaymentState) -> PaymentState:
    return state


@_apply.register
def _initiated(event: PaymentInitiated, state: PaymentState) -> PaymentState:
    return PaymentState(
        event.order_number,
        event.customer_id,
        event.gateway,
        event.intent_id,
        event.amount_minor,
        event.currency,
        "initiated",
    )


def _seen(state: PaymentState, gateway_event_id: str | None) -> frozenset[str]:
    return state.gateway_events if gateway_event_id is None else state.gateway_events | {gateway_event_id}


@_apply.register
def _succeeded(event: PaymentSucceeded, state: PaymentState) -> PaymentState:
    return replace(state, status="succeeded", gateway_events=_seen(state, event.gateway_event_id))


@_apply.register
def _failed(event: PaymentFailed, state: PaymentState) -> PaymentState:
    return replace(
        state,
        status="failed",
        gateway_events=_seen(state, event.gateway_event_id),
        declined_attempts=state.declined_attempts | {event.attempt_id},
        last_failure=event.reason,
    )


@_apply.register
def _refunded(event: PaymentRefunded, state: PaymentState) -> PaymentState:
    units = dict(state.refunded_units)
    for unit in event.units:
        units[unit.product_id] = units.get(unit.product_id, 0) + unit.qty
    return replace(
        state,
        refunded_minor=state.refunded_minor + event.amount_minor,
        refund_ids=state.refund_ids | {event.refund_id},
        refunded_units=units,
        gateway_events=_seen(state, event.gateway_event_id),
    )


def evolve(state: PaymentState, event: Event) -> PaymentState:
    return _apply(event, state)


PAYMENT = AggregateKind[PaymentState](name="Payment", initial=PaymentState(), evolve=evolve, state_version=2)


def payment_aggregate_id(order_number: int) -> str:
    return f"payment-{order_number}"


def amount_due(order: OrderToPay) -> int:
    return minor_units(order.total)


def check_payable(payment: PaymentState, order: OrderToPay) -> None:
    """Before answering an intent: a confirmed order not paid yet. A declined attempt leaves the order
    payable (the same intent, another card) until its deadline."""
    if payment.status == "succeeded" or order.status in ("paid", "refunded"):
        raise OrderNotPayable(f"order {order.order_number} is paid already")
    if order.status != "confirmed":
        raise OrderNotPayable(
            f"order {order.order_number} is {order.status}; only a confirmed order can be paid"
        )


def initiate(
    payment: Loaded[PaymentState], *, order: OrderToPay, gateway: Gateway, intent: Intent, now: datetime
) -> list[Event]:
    """Record the intent made for the order; a payment already initiated decides nothing (the same
    intent is answered again)."""
    if payment.state.initiated:
        return []
    if intent.amount_minor != amount_due(order) or intent.currency != order.total.currency:
        raise IntentMismatch("the gateway's intent is not for this order's total")
    return [
        PaymentInitiated(
            aggregate_id=payment.aggregate_id,
            aggregate_version=payment.version + 1,
            occurred_at=now,
            order_number=order.order_number,
            customer_id=order.customer_id,
            gateway=gateway,
            intent_id=intent.intent_id,
            amount_minor=amount_due(order),
            currency=order.total.currency,
        )
    ]


def record_outcome(
    payment: Loaded[PaymentState], *, intent: Intent, gateway_event_id: str | None, now: datetime
) -> list[Event]:
    """The gateway's verdict on the intent: its success once (after any number of declines), and
    each declined attempt once; anything else (still processing, waiting for the customer) decides
    nothing. Nothing follows a success: a report of an older decline arriving late changes nothing."""
    state = payment.state
    if not state.initiated:
        raise PaymentNotFound("no payment for this order")
    if intent.intent_id != state.intent_id:
        raise IntentMismatch("this intent belongs to another payment")
    if state.status == "succeeded" or (
        gateway_event_id is not None and gateway_event_id in state.gateway_events
    ):
        return []
    envelope = {
        "aggregate_id": payment.aggregate_id,
        "aggregate_version": payment.version + 1,
        "occurred_at": now,
        "order_number": state.order_number,
        "intent_id": state.intent_id,
        "gateway_event_id": gateway_event_id,
    }
    if intent.succeeded:
        return [PaymentSucceeded(**envelope, amount_minor=state.amount_minor)]
    if intent.failed and intent.attempt_id not in state.declined_attempts:
        return [
            PaymentFailed(
                **envelope, attempt_id=intent.attempt_id, reason=(intent.failure or intent.status)[:500]
            )
        ]
    return []


@dataclass(frozen=True)
class RefundPlan:
    amount_minor: int
    units: tuple[RefundedUnits, ...]


def plan_refund(payment: PaymentState, order: OrderToPay, wanted: Mapping[int, int] | None) -> RefundPlan:
    """What a refund of these units (all that is left, if None) gives back: their price at the order,
    in minor units. Units already refunded cannot be refunded again. A payment whose order was never
    paid (it succeeded after the order had ended) gives all of it back and no units: the order's units
    were released when it ended, so none are taken to come back."""
    if payment.status != "succeeded":
        raise RefundNotAllowed("only a paid order can be refunded")
    if order.status not in ("paid", "refunded"):
        if wanted is not None:
            raise RefundNotAllowed(
                f"order {order.order_number} is {order.status}: its payment is refunded whole, without lines"
            )
        return plan_unclaimed_refund(payment)
    left = {
        product_id: ordered - payment.refunded_units.get(product_id, 0)
        for product_id, (ordered, _) in order.lines.items()
    }
    units = (
        {product_id: qty for product_id, qty in left.items() if qty > 0} if wanted is None else dict(wanted)
    )
    for product_id, qty in units.items():
        if qty > left.get(product_id, 0):
            raise RefundNotAllowed(
                f"only {left.get(product_id, 0)} units of product {product_id} can be refunded"
            )
    if not units:
        raise RefundNotAllowed("nothing of this order is left to refund")
    amount = sum((order.lines[product_id][1] * qty for product_id, qty in units.items()), Decimal(0))
    return RefundPlan(
        minor_units(Money(amount=amount, currency=payment.currency)),
        tuple(RefundedUnits(product_id=product_id, qty=qty) for product_id, qty in sorted(units.items())),
    )


def plan_unclaimed_refund(payment: PaymentState) -> RefundPlan:
    """A payment that succeeded for an order that had ended meanwhile (expired, cancelled): all of it
    goes back, and no units, since the order's were released when it ended."""
    if payment.status != "succeeded":
        raise RefundNotAllowed("only a payment that succeeded can be refunded")
    left = payment.amount_minor - payment.refunded_minor
    if left <= 0:
        raise RefundNotAllowed("nothing of this payment is left to refund")
    return RefundPlan(left, ())


def refund(
    payment: Loaded[PaymentState],
    *,
    refunded: Refund,
    units: tuple[RefundedUnits, ...],
    gateway_event_id: str | None,
    now: datetime,
) -> list[Event]:
    """Record a refund the gateway made, once per gateway refund id, whoever reports it first (the
    admin's request or a webhook). The gateway has paid it out, so it is a fact to record, never
    refused: what may be refunded was decided before asking the gateway (`plan_refund`), and the
    gateway itself refuses more than was captured."""
    state = payment.state
    if state.status != "succeeded":
        raise RefundNotAllowed("only a paid order can be refunded")
    if refunded.refund_id in state.refund_ids:
        return []
    return [
        PaymentRefunded(
            aggregate_id=payment.aggregate_id,
            aggregate_version=payment.version + 1,
            occurred_at=now,
            order_number=state.order_number,
            intent_id=state.intent_id,
            refund_id=refunded.refund_id,
            amount_minor=refunded.amount_minor,
            units=units,
            fully=state.refunded_minor + refunded.amount_minor >= state.amount_minor,
            gateway_event_id=gateway_event_id,
        )
    ]


@dataclass(frozen=True)
class PaymentRequestState:
    """The order a create-payment Idempotency-Key was first used for (0: not used yet)."""

    order_number: int = 0


def _evolve_request(state: PaymentRequestState, event: Event) -> PaymentRequestState:
    return PaymentRequestState(event.order_number) if isinstance(event, PaymentRequested) else state


def payment_request_id(order_number: int, scoped_key: str) -> str:
    """A create-payment key's claim for one order. It lives in its payment's partition: create-payment
    claims the key and initiates the payment in one request, and one request can only reach one
    partition's owner (a claim hashed by the key alone sat, with two instances, on the other instance
    half the time, and the request could never succeed)."""
    return f"payment-request-{order_number}-{scoped_key}"


def _beside_its_payment(request_id: str) -> str:
    order_number = int(request_id.removeprefix("payment-request-").split("-", 1)[0])
    return payment_aggregate_id(order_number)


PAYMENT_REQUEST = AggregateKind[PaymentRequestState](
    name="PaymentRequest",
    initial=PaymentRequestState(),
    evolve=_evolve_request,
    partition_key=_beside_its_payment,
)


def claim_request(request: Loaded[PaymentRequestState], *, order_number: int, now: datetime) -> list[Event]:
    """Claim the key for this order. The store answers a retry of the same request with its first
    outcome and refuses the key with another request (its fingerprint differs) while it remembers
    the key; past that window the key may start a new request, as Stripe's keys may."""
    if request.state.order_number == order_number:
        return []
    return [
        PaymentRequested(
            aggregate_id=request.aggregate_id,
            aggregate_version=request.version + 1,
            occurred_at=now,
            order_number=order_number,
        )
    ]
