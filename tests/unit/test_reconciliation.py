"""Reconciliation's comparison of the gateway's money with the log's payments, without a server."""

from __future__ import annotations

from dataclasses import replace

from command_api.payments.domain import PaymentState
from command_api.payments.gateway import GatewayPayment, Intent, Refund
from command_api.payments.reconciliation import compare, reconcile

INTENT = Intent("pi_1", "", "succeeded", 1999, "USD", 5004)
RECORDED = PaymentState(
    order_number=5004,
    customer_id=7003,
    intent_id="pi_1",
    amount_minor=1999,
    currency="USD",
    status="succeeded",
)


def kinds(money: GatewayPayment, recorded: PaymentState | None) -> list[str]:
    return [discrepancy.kind for discrepancy in compare(money, recorded)]


def test_money_and_log_that_agree_show_nothing() -> None:
    assert kinds(GatewayPayment(INTENT, 1999, ()), RECORDED) == []
    refunded = replace(RECORDED, refund_ids=frozenset({"re_1"}), refunded_minor=1999)
    assert kinds(GatewayPayment(INTENT, 1999, (Refund("re_1", "succeeded", 1999),)), refunded) == []
    waiting = Intent("pi_1", "", "requires_payment_method", 1999, "USD", 5004)
    assert kinds(GatewayPayment(waiting, 0, ()), replace(RECORDED, status="initiated")) == []


def test_each_disagreement_is_named() -> None:
    assert kinds(GatewayPayment(INTENT, 1999, ()), replace(RECORDED, status="failed")) == [
        "captured_not_recorded"
    ]
    assert kinds(GatewayPayment(INTENT, 0, ()), RECORDED) == ["recorded_not_captured"]
    assert kinds(GatewayPayment(INTENT, 1999, (Refund("re_2", "succeeded", 500),)), RECORDED) == [
        "refunded_beyond_record"
    ]
    assert kinds(GatewayPayment(INTENT, 1999, ()), replace(RECORDED, refund_ids=frozenset({"re_3"}))) == [
        "refund_not_at_gateway"
    ]
    assert kinds(GatewayPayment(INTENT, 1999, ()), None) == ["captured_unknown"]
    # A failed refund gave nothing back: it is not a refund the log lacks.
    assert kinds(GatewayPayment(INTENT, 1999, (Refund("re_4", "failed", 500),)), RECORDED) == []


def test_reconcile_looks_each_intent_up_in_the_log_by_its_id() -> None:
    found = reconcile([GatewayPayment(INTENT, 1999, ())], {"pi_1": replace(RECORDED, status="initiated")})
    assert [(d.kind, d.order_number, d.repairable) for d in found] == [("captured_not_recorded", 5004, True)]
