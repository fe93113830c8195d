"""The payment gateway adapters against real servers: Stripe's own API mock (stripe-mock) for the
Stripe adapter, PostgreSQL for the simulated gateway."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from command_api.payments.gateway import GatewayError, GatewayUnavailable
from command_api.payments.simulated_gateway import DECLINED_CARD, SUCCEEDING_CARD, SimulatedGateway
from command_api.payments.stripe_gateway import StripeGateway
from read_models.pool import make_pool
from tests.support.deployment import Deployment
from tests.support.servers import Servers

T = TypeVar("T")
TEST_KEY = "sk_test_123"  # stripe-mock's; not a secret


def with_simulated(deployment: Deployment, use: Callable[[SimulatedGateway], Awaitable[T]]) -> T:
    async def run() -> T:
        async with make_pool(deployment.database_url("payments")) as pool:
            gateway = SimulatedGateway(pool)
            await gateway.ensure_schema()
            return await use(gateway)

    return asyncio.run(run())


def test_the_stripe_adapter_creates_retrieves_and_refunds_intents_on_stripe_mock(servers: Servers) -> None:
    gateway = StripeGateway(TEST_KEY, "pk_test_123", api_base=servers.stripe_mock_url)

    async def run() -> None:
        created = await gateway.create_intent(
            amount_minor=1999,
            currency="USD",
            order_number=5004,
            customer_id=7003,
            idempotency_key=str(uuid.uuid4()),
        )
        assert created.intent_id.startswith("pi_")
        assert created.client_secret
        assert (created.amount_minor, created.currency) == (1999, "USD")
        fetched = await gateway.retrieve_intent(created.intent_id)
        assert fetched.intent_id == created.intent_id  # stripe-mock keeps no state: nothing else is compared
        refund = await gateway.refund(
            intent_id=created.intent_id, amount_minor=500, idempotency_key=str(uuid.uuid4())
        )
        assert refund.refund_id.startswith("re_")

    asyncio.run(run())


def test_the_stripe_adapter_pages_through_intents_and_refunds_for_reconciliation(servers: Servers) -> None:
    gateway = StripeGateway(TEST_KEY, "pk_test_123", api_base=servers.stripe_mock_url)

    async def run() -> None:
        listed = []
        async for payment in gateway.payments():
            listed.append(payment)
            if len(listed) == 3:
                break
        assert listed, "stripe-mock lists its fixture intents"
        assert all(payment.intent.intent_id.startswith("pi_") for payment in listed)
        assert all(payment.captured_minor >= 0 for payment in listed)
        refunds = await gateway.refunds_of(listed[0].intent.intent_id)
        assert all(refund.refund_id.startswith("re_") and refund.amount_minor > 0 for refund in refunds)

    asyncio.run(run())


def test_the_stripe_adapter_says_unavailable_when_stripe_does_not_answer_and_refused_for_a_bad_key(
    servers: Servers,
) -> None:
    nowhere = StripeGateway(TEST_KEY, "pk_test_123", api_base="http://127.0.0.1:9", timeout=1)
    with pytest.raises(GatewayUnavailable):
        asyncio.run(nowhere.retrieve_intent("pi_123"))
    refused = StripeGateway("not-a-key", "pk_test_123", api_base=servers.stripe_mock_url)
    with pytest.raises(GatewayError) as error:
        asyncio.run(
            refused.create_intent(
                amount_minor=1999,
                currency="USD",
                order_number=1,
                customer_id=1,
                idempotency_key=str(uuid.uuid4()),
            )
        )
    assert not isinstance(error.value, GatewayUnavailable)


def test_the_simulated_gateway_pays_with_test_cards_like_stripe_test_mode(deployment: Deployment) -> None:
    async def use(gateway: SimulatedGateway) -> None:
        key = str(uuid.uuid4())
        first = await gateway.create_intent(
            amount_minor=1999, currency="USD", order_number=5004, customer_id=7003, idempotency_key=key
        )
        again = await gateway.create_intent(
            amount_minor=1999, currency="USD", order_number=5004, customer_id=7003, idempotency_key=key
        )
        assert again == first
        assert first.status == "requires_payment_method"
        declined = await gateway.confirm(first.intent_id, first.client_secret, DECLINED_CARD)
        assert declined.failed and not declined.succeeded
        with pytest.raises(GatewayError):
            await gateway.confirm(first.intent_id, "not-the-secret", SUCCEEDING_CARD)
        paid = await gateway.confirm(first.intent_id, first.client_secret, SUCCEEDING_CARD)
        assert paid.succeeded
        refund_key = str(uuid.uuid4())
        refund = await gateway.refund(intent_id=first.intent_id, amount_minor=999, idempotency_key=refund_key)
        assert (
            await gateway.refund(intent_id=first.intent_id, amount_minor=999, idempotency_key=refund_key)
            == refund
        )
        with pytest.raises(GatewayError):
            await gateway.refund(
                intent_id=first.intent_id, amount_minor=1001, idempotency_key=str(uuid.uuid4())
            )

    with_simulated(deployment, use)
