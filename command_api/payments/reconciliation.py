"""Reconciliation: the gateway's money against the payments log, as a payment provider's books are
checked against a bank's. For every intent the gateway holds, what it captured and refunded is
compared with the Payment aggregate folded from the log; each disagreement is named, and those the
log can catch up with (a capture or a refund it never heard of) can be repaired by appending the
missing facts through the payments service, after which the saga does the rest (a paid order, or
the refund of a payment its order can no longer take)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from command_api.payments.domain import PAYMENT, PaymentState
from command_api.payments.gateway import GatewayPayment
from event_schemas.payments import PaymentInitiated
from event_schemas.registry import REGISTRY
from projectors.runtime.replay import end_offsets, read_range

DiscrepancyKind = Literal[
    # money captured for an intent no payment in the log names (repair: refund it at the gateway)
    "captured_unknown",
    # captured, but the payment's success is not in the log (repair: record it)
    "captured_not_recorded",
    # the log says succeeded, the gateway captured nothing (an operator must look)
    "recorded_not_captured",
    # refunds the gateway made that the log does not hold (repair: record them)
    "refunded_beyond_record",
    # refunds in the log the gateway does not hold (an operator must look)
    "refund_not_at_gateway",
]
REPAIRABLE: frozenset[DiscrepancyKind] = frozenset(
    {"captured_unknown", "captured_not_recorded", "refunded_beyond_record"}
)


@dataclass(frozen=True)
class Discrepancy:
    kind: DiscrepancyKind
    intent_id: str
    order_number: int | None
    detail: str

    @property
    def repairable(self) -> bool:
        return self.kind in REPAIRABLE


def compare(money: GatewayPayment, recorded: PaymentState | None) -> list[Discrepancy]:
    """What disagrees between the gateway's record of one intent and the log's payment of it."""
    intent = money.intent
    if recorded is None or recorded.intent_id != intent.intent_id:
        if money.captured_minor - sum(refund.amount_minor for refund in money.refunded) > 0:
            return [
                Discrepancy(
                    "captured_unknown",
                    intent.intent_id,
                    intent.order_number,
                    f"{money.captured_minor} captured, and no payment in the log names this intent",
                )
            ]
        return []
    found: list[Discrepancy] = []

    def found_one(kind: DiscrepancyKind, detail: str) -> None:
        found.append(Discrepancy(kind, intent.intent_id, recorded.order_number, detail))

    if money.captured_minor > 0 and recorded.status != "succeeded":
        found_one("captured_not_recorded", f"{money.captured_minor} captured; the log says {recorded.status}")
    if money.captured_minor == 0 and recorded.status == "succeeded":
        found_one("recorded_not_captured", f"the log says succeeded; the gateway's intent is {intent.status}")
    at_gateway = {refund.refund_id: refund for refund in money.refunded}
    unrecorded = sorted(set(at_gateway) - recorded.refund_ids)
    if unrecorded:
        amount = sum(at_gateway[refund_id].amount_minor for refund_id in unrecorded)
        found_one("refunded_beyond_record", f"{amount} refunded by {', '.join(unrecorded)}, not in the log")
    missing = sorted(recorded.refund_ids - set(at_gateway))
    if missing:
        found_one(
            "refund_not_at_gateway", f"the log records {', '.join(missing)}; the gateway has no such refund"
        )
    return found


async def recorded_payments(bootstrap_servers: str, payments_topic: str) -> dict[str, PaymentState]:
    """Every payment the log holds, folded from the start of the payments topic, by intent id."""
    by_aggregate: dict[str, PaymentState] = {}
    ends = await end_offsets(bootstrap_servers, payments_topic)
    async for _, records in read_range(bootstrap_servers, payments_topic, {}, ends):
        for record in records:
            event = REGISTRY.from_bytes(record.value)
            if isinstance(event, PaymentInitiated) or event.aggregate_id in by_aggregate:
                state = by_aggregate.get(event.aggregate_id, PAYMENT.initial)
                by_aggregate[event.aggregate_id] = PAYMENT.evolve(state, event)
    return {state.intent_id: state for state in by_aggregate.values()}


def reconcile(money: list[GatewayPayment], recorded: Mapping[str, PaymentState]) -> list[Discrepancy]:
    return [
        discrepancy
        for payment in money
        for discrepancy in compare(payment, recorded.get(payment.intent.intent_id))
    ]
