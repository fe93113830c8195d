"""Given events, when a command, then events: the Payment aggregate's rules, and exact minor units."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import pytest

from command_api.eventstore.model import Loaded
from command_api.eventstore.partitioning import partition_of
from command_api.payments import domain
from command_api.payments.domain import (
    PAYMENT,
    PAYMENT_REQUEST,
    OrderToPay,
    PaymentState,
    payment_aggregate_id,
    payment_request_id,
)
from command_api.payments.gateway import Intent, Refund
from event_schemas.envelope import Event
from event_schemas.money import Money, minor_units
from event_schemas.payments import (
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    RefundedUnits,
)
from event_schemas.registry import REGISTRY

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


def paid_payment() -> Loaded[PaymentState]:
    payment = initiated()
    return after(
        payment, domain.record_outcome(payment, intent=intent("succeeded"), gateway_event_id=None, now=NOW)
    )


PAID_ORDER = OrderToPay(5004, 7003, "paid", Money(amount=Decimal("19.99")), {1001: (1, Decimal("19.99"))})


def test_refunds_are_recorded_once_by_the_gateways_refund_id_whoever_reports_them() -> None:
    paid = paid_payment()
    units = (RefundedUnits(product_id=1001, qty=1),)
    [refunded] = domain.refund(
        paid, refunded=Refund("re_1", "succeeded", 999), units=units, gateway_event_id=None, now=NOW
    )
    assert isinstance(refunded, PaymentRefunded)
    partly = after(paid, [refunded])
    # The same refund reported again by a webhook (`refund.created`), after the admin's request
    # recorded it: not counted twice, so a later real refund is not refused.
    assert (
        domain.refund(
            partly, refunded=Refund("re_1", "succeeded", 999), units=(), gateway_event_id="evt_9", now=NOW
        )
        == []
    )
    [second] = domain.refund(
        partly, refunded=Refund("re_2", "succeeded", 1000), units=(), gateway_event_id="evt_10", now=NOW
    )
    assert isinstance(second, PaymentRefunded) and second.fully
    with pytest.raises(domain.RefundNotAllowed):
        domain.refund(
            initiated(), refunded=Refund("re_3", "succeeded", 1), units=(), gateway_event_id=None, now=NOW
        )


def test_a_refund_is_planned_within_what_is_left() -> None:
    paid = paid_payment()
    plan = domain.plan_refund(paid.state, PAID_ORDER, None)
    assert (plan.amount_minor, plan.units) == (1999, (RefundedUnits(product_id=1001, qty=1),))
    [refunded] = domain.refund(
        paid, refunded=Refund("re_1", "succeeded", 1999), units=plan.units, gateway_event_id=None, now=NOW
    )
    with pytest.raises(domain.RefundNotAllowed):
        domain.plan_refund(after(paid, [refunded]).state, PAID_ORDER, {1001: 1})


def test_a_late_payments_refund_gives_all_of_it_back_and_no_units() -> None:
    paid = paid_payment()
    expired = OrderToPay(5004, 7003, "expired", ORDER.total, {1001: (1, Decimal("19.99"))})
    plan = domain.plan_refund(paid.state, expired, None)
    assert (plan.amount_minor, plan.units) == (1999, ())
    with pytest.raises(domain.RefundNotAllowed):
        domain.plan_refund(paid.state, expired, {1001: 1})


def test_a_declined_card_then_a_good_one_pays_the_order() -> None:
    payment = initiated()
    declined = intent(failure="Your card was declined.")
    declined = replace(declined, attempt="ch_declined")
    [failed] = domain.record_outcome(payment, intent=declined, gateway_event_id=None, now=NOW)
    assert isinstance(failed, PaymentFailed)
    after_decline = after(payment, [failed])
    # The same decline reported again (verify-payment twice, then its webhook) is recorded once.
    assert domain.record_outcome(after_decline, intent=declined, gateway_event_id=None, now=NOW) == []
    assert domain.record_outcome(after_decline, intent=declined, gateway_event_id="evt_2", now=NOW) == []
    # The order is still payable with the same intent.
    domain.check_payable(after_decline.state, ORDER)
    [succeeded] = domain.record_outcome(
        after_decline, intent=intent("succeeded"), gateway_event_id=None, now=NOW
    )
    assert isinstance(succeeded, PaymentSucceeded)
    # A second decline, of another attempt, is a fact of its own.
    again = replace(declined, attempt="ch_declined_2")
    assert len(domain.record_outcome(after_decline, intent=again, gateway_event_id=None, now=NOW)) == 1


def test_a_failed_payment_of_version_1_is_upcast_with_an_attempt() -> None:
    record = (
        b'{"event_id":"6f0c1d3e-8d6b-4a39-9d53-0f0b6c3a4a11","aggregate_id":"payment-5004",'
        b'"aggregate_version":2,"occurred_at":"2026-01-01T00:00:00Z","correlation_id":null,'
        b'"causation_id":null,"event_type":"PaymentFailed","schema_version":1,"aggregate_type":"Payment",'
        b'"payload":{"order_number":5004,"intent_id":"pi_1","reason":"declined","gateway_event_id":null}}'
    )
    event = REGISTRY.from_bytes(record)
    assert isinstance(event, PaymentFailed)
    assert event.attempt_id == "pi_1:first"


@pytest.mark.parametrize("partitions", [2, 6, 12])
def test_a_create_payment_keys_claim_lives_in_its_payments_partition(partitions: int) -> None:
    """create-payment claims its key and initiates the payment in one request, which reaches one
    partition's owner: with the claim anywhere else, it could never succeed on two instances."""
    for order_number in range(1000, 1200):
        for key in ("k", "pay-1-2", str(uuid4())):
            claim = partition_of(PAYMENT_REQUEST, payment_request_id(order_number, key), partitions)
            payment = partition_of(PAYMENT, payment_aggregate_id(order_number), partitions)
            assert claim == payment
