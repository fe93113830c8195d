"""Given events, when a command, then events: the Payment aggregate's rules, and exact minor units."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from command_api.eventstore.model import Loaded
from command_api.payments import domain
from command_api.payments.domain import PAYMENT, OrderToPay, PaymentState
from command_api.payments.gateway import Intent, Refund
from event_schemas.envelope import Event
from event_schemas.money import Money, minor_units
from event_schemas.payments import (
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    RefundedUnits,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ORDER = OrderToPay(5004, 7003, "confirmed", Money(amount=Decimal("19.99")))


def intent(status: str = "requires_payment_method", failure: str | None = None, amount: int = 1999) -> Intent:
    return Intent("pi_1", "pi_1_secret", status, amount, "USD", 5004, failure)


def after(payment: Loaded[PaymentState], events: Sequence[Event]) -> Loaded[PaymentState]:
    state = payment.state
    for event in events:
        state = PAYMENT.evolve(state, event)
    return Loaded(payment.aggregate_id, state, payment.version + len(events), 0)


def initiated() -> Loaded[PaymentState]:
    fresh: Loaded[PaymentState] = Loaded("payment-5004", PAYMENT.initial, 0, 0)
    return after(fresh, domain.initiate(fresh, order=ORDER, gateway="simulated", intent=intent(), now=NOW))


def test_minor_units_are_exact() -> None:
    assert minor_units(Money(amount=Decimal("19.99"))) == 1999
    assert minor_units(Money(amount=Decimal("0.10") * 3)) == 30
    assert minor_units(Money(amount=Decimal(1200), currency="JPY")) == 1200
    with pytest.raises(ValueError):
        minor_units(Money(amount=Decimal("12.5"), currency="JPY"))


def test_a_payment_is_initiated_once_for_the_orders_exact_total() -> None:
    payment = initiated()
    assert (payment.state.status, payment.state.amount_minor, payment.state.intent_id) == (
        "initiated",
        1999,
        "pi_1",
    )
    assert domain.initiate(payment, order=ORDER, gateway="simulated", intent=intent(), now=NOW) == []
    fresh: Loaded[PaymentState] = Loaded("payment-5004", PAYMENT.initial, 0, 0)
    with pytest.raises(domain.IntentMismatch):
        domain.initiate(fresh, order=ORDER, gateway="simulated", intent=intent(amount=1998), now=NOW)


def test_only_a_confirmed_unpaid_order_is_payable() -> None:
    for status in ("pending", "rejected", "cancelled", "expired", "paid"):
        with pytest.raises(domain.OrderNotPayable):
            domain.check_payable(PAYMENT.initial, OrderToPay(5004, 7003, status, ORDER.total))
    domain.check_payable(PAYMENT.initial, ORDER)


def test_the_gateways_verdict_is_recorded_once() -> None:
    payment = initiated()
    [succeeded] = domain.record_outcome(
        payment, intent=intent("succeeded"), gateway_event_id="evt_1", now=NOW
    )
    assert isinstance(succeeded, PaymentSucceeded)
    paid = after(payment, [succeeded])
    assert domain.record_outcome(paid, intent=intent("succeeded"), gateway_event_id=None, now=NOW) == []
    assert domain.record_outcome(paid, intent=intent("succeeded"), gateway_event_id="evt_1", now=NOW) == []
    [failed] = domain.record_outcome(
        payment, intent=intent(failure="Your card was declined."), gateway_event_id=None, now=NOW
    )
    assert isinstance(failed, PaymentFailed)
    assert domain.record_outcome(payment, intent=intent("processing"), gateway_event_id=None, now=NOW) == []


def test_refunds_are_recorded_once_and_never_exceed_what_was_paid() -> None:
    payment = initiated()
    paid = after(
        payment, domain.record_outcome(payment, intent=intent("succeeded"), gateway_event_id=None, now=NOW)
    )
    units = (RefundedUnits(product_id=1001, qty=1),)
    [refunded] = domain.refund(
        paid, refunded=Refund("re_1", "succeeded", 999), units=units, gateway_event_id=None, now=NOW
    )
    assert isinstance(refunded, PaymentRefunded)
    partly = after(paid, [refunded])
    assert (
        domain.refund(
            partly, refunded=Refund("re_1", "succeeded", 999), units=units, gateway_event_id=None, now=NOW
        )
        == []
    )
    with pytest.raises(domain.RefundNotAllowed):
        domain.refund(
            partly, refunded=Refund("re_2", "succeeded", 1001), units=(), gateway_event_id=None, now=NOW
        )
    with pytest.raises(domain.RefundNotAllowed):
        domain.refund(
            payment, refunded=Refund("re_3", "succeeded", 1), units=(), gateway_event_id=None, now=NOW
        )
