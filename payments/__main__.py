"""Operator commands of the payments context, run on the server (they hold the gateway's key and sign
with the service key):

python -m payments reconcile            list every intent whose money disagrees with the log (captured
                                        but not recorded, recorded but not captured, refunded beyond
                                        the record...); exit status 1 if any does
python -m payments reconcile --repair   and repair what can be: append the missing facts through the
                                        payments service (the saga then pays or refunds the order),
                                        or refund at the gateway money captured for an intent no
                                        payment in the log names
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime

import httpx

from auth.tokens import load_service_issuer, service_token
from command_api.payments.app import payment_gateway
from command_api.payments.gateway import PaymentGateway
from command_api.payments.reconciliation import Discrepancy, reconcile, recorded_payments
from config.settings import Settings, get_settings
from event_schemas import topics
from read_models.pool import make_pool


async def reconcile_command(settings: Settings, repair: bool, payments_url: str) -> int:
    async with make_pool(settings.payments_database_url) as database:
        gateway = payment_gateway(settings, database)
        money = [payment async for payment in gateway.payments()]
        recorded = await recorded_payments(
            settings.kafka_bootstrap_servers, topics.in_namespace(settings.namespace, topics.PAYMENTS)
        )
        found = reconcile(money, recorded)
        for discrepancy in found:
            print(
                f"{discrepancy.kind} {discrepancy.intent_id} order={discrepancy.order_number}: {discrepancy.detail}"
            )
        print(
            f"{len(money)} intent(s) at the gateway, {len(recorded)} payment(s) in the log, {len(found)} discrepancy(ies)"
        )
        if not repair or not found:
            return 1 if found else 0
        unrepaired = 0
        async with httpx.AsyncClient(timeout=60) as http:
            for discrepancy in found:
                if not await _repair(settings, gateway, http, payments_url, discrepancy):
                    unrepaired += 1
        print(f"repaired {len(found) - unrepaired}; {unrepaired} need an operator")
        return 1 if unrepaired else 0


async def _repair(
    settings: Settings,
    gateway: PaymentGateway,
    http: httpx.AsyncClient,
    payments_url: str,
    discrepancy: Discrepancy,
) -> bool:
    """One discrepancy repaired, if it can be; True when it was."""
    if not discrepancy.repairable:
        return False
    if discrepancy.kind == "captured_unknown":
        intent = await gateway.retrieve_intent(discrepancy.intent_id)
        given_back = sum(refund.amount_minor for refund in await gateway.refunds_of(discrepancy.intent_id))
        refunded = await gateway.refund(
            intent_id=discrepancy.intent_id,
            amount_minor=intent.amount_minor - given_back,
            idempotency_key=f"{settings.namespace}:reconcile:{discrepancy.intent_id}",
        )
        print(
            f"refunded {refunded.amount_minor} of {discrepancy.intent_id} at the gateway ({refunded.refund_id})"
        )
        return True
    token = service_token(load_service_issuer(settings), "operator", datetime.now(UTC))
    response = await http.post(
        f"{payments_url.rstrip('/')}/internal/payments/{discrepancy.order_number}/reconcile",
        headers={"Authorization": f"Bearer {token}"},
    )
    print(f"order {discrepancy.order_number}: {response.status_code} {response.text}")
    return response.status_code == 200


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m payments")
    parser.add_argument("command", choices=["reconcile"])
    parser.add_argument(
        "--repair", action="store_true", help="append the missing facts, refund what no order names"
    )
    parser.add_argument(
        "--payments-url", default=None, help="the payments service (default: COMMERCE_PAYMENTS_URL)"
    )
    arguments = parser.parse_args()
    settings = get_settings()
    sys.exit(
        asyncio.run(
            reconcile_command(settings, arguments.repair, arguments.payments_url or settings.payments_url)
        )
    )


if __name__ == "__main__":
    main()
