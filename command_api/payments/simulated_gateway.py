"""The simulated gateway: a stand-in for Stripe on a machine without a Stripe account, so that a whole
purchase can be made locally. It behaves like Stripe's test mode:

- an intent is created for an amount, once per idempotency key, with status `requires_payment_method`;
- the customer "pays" with a test card (`POST /simulated-gateway/payment_intents/{id}/confirm`
  `{"clientSecret": ..., "card": "4242424242424242"}`, as Stripe.js would with the client secret): 4242 4242 4242 4242 succeeds, 4000 0000 0000 0002 is declined
  (the intent goes back to `requires_payment_method` with the decline as its last error), as in
  Stripe's test mode;
- refunds succeed at once, at most the amount paid in total.

Its records are the gateway's own, not this system's truth, so they live in the payments database
like a payment provider's would, not in the log.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

from psycopg import errors

from command_api.payments.gateway import GatewayError, GatewayPayment, Intent, IntentNotFound, Refund
from event_schemas.payments import Gateway
from read_models.pool import Pool

SCHEMA = """
CREATE TABLE IF NOT EXISTS simulated_payment_intents (
    id              text PRIMARY KEY,
    idempotency_key text NOT NULL UNIQUE,
    client_secret   text NOT NULL,
    amount_minor    bigint NOT NULL CHECK (amount_minor > 0),
    currency        char(3) NOT NULL,
    order_number    bigint NOT NULL,
    customer_id     bigint NOT NULL,
    status          text NOT NULL,
    failure         text,
    refunded_minor  bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE simulated_payment_intents ADD COLUMN IF NOT EXISTS attempts integer NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS simulated_refunds (
    id              text PRIMARY KEY,
    idempotency_key text NOT NULL UNIQUE,
    intent_id       text NOT NULL REFERENCES simulated_payment_intents (id),
    amount_minor    bigint NOT NULL CHECK (amount_minor > 0)
)
"""

SUCCEEDING_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000002"

SELECT_INTENT = (
    "SELECT id, client_secret, status, amount_minor, currency, order_number, failure, attempts"
    " FROM simulated_payment_intents WHERE "
)


class UnknownTestCard(GatewayError):
    """The simulated gateway knows only Stripe's two test cards it documents."""


def _intent(row: dict[str, Any]) -> Intent:
    return Intent(
        intent_id=row["id"],
        client_secret=row["client_secret"],
        status=row["status"],
        amount_minor=row["amount_minor"],
        currency=row["currency"],
        order_number=row["order_number"],
        failure=row["failure"],
        attempt=f"{row['id']}:attempt-{row['attempts']}" if row["attempts"] else None,
    )


def _refund(row: dict[str, Any]) -> Refund:
    """The simulated gateway's refunds succeed at once."""
    return Refund(row["id"], "succeeded", row["amount_minor"])


class SimulatedGateway:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._schema_ready = False

    @property
    def name(self) -> Gateway:
        return "simulated"

    @property
    def publishable_key(self) -> str:
        return "pk_simulated"

    async def ensure_schema(self) -> None:
        if not self._schema_ready:
            async with self._pool.connection() as conn:
                await conn.execute(SCHEMA)
            self._schema_ready = True

    async def create_intent(
        self, *, amount_minor: int, currency: str, order_number: int, customer_id: int, idempotency_key: str
    ) -> Intent:
        await self.ensure_schema()
        intent_id = f"pi_sim_{secrets.token_hex(12)}"
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO simulated_payment_intents (id, idempotency_key, client_secret, amount_minor,"
                " currency, order_number, customer_id, status) VALUES (%s, %s, %s, %s, %s, %s, %s,"
                " 'requires_payment_method') ON CONFLICT (idempotency_key) DO NOTHING",
                (
                    intent_id,
                    idempotency_key,
                    f"{intent_id}_secret_{secrets.token_hex(12)}",
                    amount_minor,
                    currency,
                    order_number,
                    customer_id,
                ),
            )
            cursor = await conn.execute(SELECT_INTENT + "idempotency_key = %s", (idempotency_key,))
            row = await cursor.fetchone()
        assert row is not None
        if (row["amount_minor"], row["currency"]) != (amount_minor, currency):
            raise GatewayError("this idempotency key was used for another amount")
        return _intent(row)

    async def retrieve_intent(self, intent_id: str) -> Intent:
        await self.ensure_schema()
        async with self._pool.connection() as conn:
            cursor = await conn.execute(SELECT_INTENT + "id = %s", (intent_id,))
            row = await cursor.fetchone()
        if row is None:
            raise IntentNotFound(f"no such payment intent: {intent_id}")
        return _intent(row)

    async def confirm(self, intent_id: str, client_secret: str, card: str) -> Intent:
        """What Stripe.js does in the customer's browser: pay the intent with a card, proving with the
        intent's client secret that it is the customer's."""
        if not secrets.compare_digest((await self.retrieve_intent(intent_id)).client_secret, client_secret):
            raise IntentNotFound(f"no such payment intent: {intent_id}")
        number = card.replace(" ", "")
        if number == SUCCEEDING_CARD:
            status, failure = "succeeded", None
        elif number == DECLINED_CARD:
            status, failure = "requires_payment_method", "Your card was declined."
        else:  # the caller's mistake (a 422), not the gateway failing (a 502)
            raise UnknownTestCard(
                f"use the test card {SUCCEEDING_CARD} (succeeds) or {DECLINED_CARD} (declined)"
            )
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE simulated_payment_intents SET status = %s, failure = %s, attempts = attempts + 1"
                " WHERE id = %s AND status <> 'succeeded'",
                (status, failure, intent_id),
            )
        return await self.retrieve_intent(intent_id)

    async def refund(self, *, intent_id: str, amount_minor: int, idempotency_key: str) -> Refund:
        refund_id = f"re_sim_{secrets.token_hex(12)}"
        async with self._pool.connection() as conn, conn.transaction():
            cursor = await conn.execute(
                "SELECT id, amount_minor FROM simulated_refunds WHERE idempotency_key = %s",
                (idempotency_key,),
            )
            earlier = await cursor.fetchone()
            if earlier is not None:
                return _refund(earlier)
            cursor = await conn.execute(
                "UPDATE simulated_payment_intents SET refunded_minor = refunded_minor + %s"
                " WHERE id = %s AND status = 'succeeded' AND refunded_minor + %s <= amount_minor RETURNING id",
                (amount_minor, intent_id, amount_minor),
            )
            if await cursor.fetchone() is None:
                raise GatewayError("the payment has not succeeded, or the refund exceeds what is left of it")
            try:
                await conn.execute(
                    "INSERT INTO simulated_refunds (id, idempotency_key, intent_id, amount_minor)"
                    " VALUES (%s, %s, %s, %s)",
                    (refund_id, idempotency_key, intent_id, amount_minor),
                )
            except errors.UniqueViolation as error:  # the same refund, asked twice at once
                raise GatewayError("this refund is being made already") from error
        return Refund(refund_id, "succeeded", amount_minor)

    async def refunds_of(self, intent_id: str) -> list[Refund]:
        await self.ensure_schema()
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT id, amount_minor FROM simulated_refunds WHERE intent_id = %s ORDER BY id",
                (intent_id,),
            )
            return [_refund(row) for row in await cursor.fetchall()]

    async def payments(self) -> AsyncIterator[GatewayPayment]:
        """Its own records, as Stripe's list API would give them."""
        await self.ensure_schema()
        async with self._pool.connection() as conn:
            cursor = await conn.execute(SELECT_INTENT + "true ORDER BY created_at, id")
            intents = [_intent(row) for row in await cursor.fetchall()]
            cursor = await conn.execute(
                "SELECT id, intent_id, amount_minor FROM simulated_refunds ORDER BY id"
            )
            refunds: dict[str, list[Refund]] = {}
            for row in await cursor.fetchall():
                refunds.setdefault(row["intent_id"], []).append(_refund(row))
        for intent in intents:
            captured = intent.amount_minor if intent.succeeded else 0
            yield GatewayPayment(intent, captured, tuple(refunds.get(intent.intent_id, ())))
