"""The payment gateway port: what the payments context needs from Stripe (or from the simulated
gateway that stands in for it locally). Amounts are integer minor units."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from event_schemas.payments import Gateway


class GatewayError(Exception):
    """The gateway refused or failed a request."""


class GatewayUnavailable(GatewayError):
    """The gateway did not answer (or answered 5xx / rate-limited): retry later."""


class IntentNotFound(GatewayError):
    pass


@dataclass(frozen=True)
class Intent:
    intent_id: str
    # Only for the customer's browser (Stripe.js confirms the payment with it); never stored or logged.
    client_secret: str
    status: (
        str  # Stripe's PaymentIntent status: requires_payment_method, processing, succeeded, canceled, ...
    )
    amount_minor: int
    currency: str  # upper case, like everywhere else here
    order_number: int | None  # from the intent's metadata
    failure: str | None = None  # the last payment error's message, if a payment attempt failed
    # Names the last payment attempt (Stripe's charge), so that each decline is recorded once.
    attempt: str | None = None

    @property
    def attempt_id(self) -> str:
        return self.attempt or f"{self.intent_id}:{self.status}:{self.failure or ''}"[:255]

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @property
    def failed(self) -> bool:
        """A payment attempt was declined (Stripe then asks for another method) or the intent was canceled."""
        return self.status == "canceled" or (
            self.status == "requires_payment_method" and self.failure is not None
        )


@dataclass(frozen=True)
class Refund:
    refund_id: str
    status: str
    amount_minor: int

    @property
    def gives_money_back(self) -> bool:
        """Done, or on its way (pending): not failed or canceled."""
        return self.status not in ("failed", "canceled")


@dataclass(frozen=True)
class GatewayPayment:
    """What the gateway holds for one intent: the money it captured, and each refund it made of it.
    Reconciliation compares it with what the log recorded."""

    intent: Intent
    captured_minor: int
    refunds: tuple[Refund, ...]

    @property
    def refunded(self) -> tuple[Refund, ...]:
        """The refunds that gave money back, or will (not failed or canceled)."""
        return tuple(refund for refund in self.refunds if refund.gives_money_back)


class PaymentGateway(Protocol):
    @property
    def name(self) -> Gateway: ...

    @property
    def publishable_key(self) -> str:
        """What the browser needs (with the client secret) to confirm a payment."""
        ...

    async def create_intent(
        self, *, amount_minor: int, currency: str, order_number: int, customer_id: int, idempotency_key: str
    ) -> Intent:
        """The same key always answers the same intent (a retry never makes a second charge)."""
        ...

    async def retrieve_intent(self, intent_id: str) -> Intent: ...

    async def refund(self, *, intent_id: str, amount_minor: int, idempotency_key: str) -> Refund: ...

    async def refunds_of(self, intent_id: str) -> list[Refund]:
        """Every refund the gateway made of the intent's payment."""
        ...

    def payments(self) -> AsyncIterator[GatewayPayment]:
        """Every intent this account holds, with its money (paged through, for reconciliation)."""
        ...
