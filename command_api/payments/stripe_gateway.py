"""The Stripe adapter: PaymentIntents and refunds through the official `stripe` package, against
Stripe itself or any API base (stripe-mock in tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from command_api.payments.gateway import (
    GatewayError,
    GatewayPayment,
    GatewayUnavailable,
    Intent,
    IntentNotFound,
    Refund,
)
from event_schemas.payments import Gateway


def intent_from_stripe(resource: Any) -> Intent:
    """A PaymentIntent as the API (or a webhook event's `data.object`) gives it, in the port's terms."""
    intent: dict[str, Any] = resource.to_dict()
    metadata = intent.get("metadata") or {}
    error = intent.get("last_payment_error")
    order = str(metadata.get("orderNumber", ""))
    return Intent(
        intent_id=intent["id"],
        client_secret=intent.get("client_secret") or "",
        status=intent["status"],
        amount_minor=int(intent["amount"]),
        currency=str(intent["currency"]).upper(),
        order_number=int(order) if order.isdigit() else None,
        failure=None if not error else str(error.get("message") or error.get("code") or "declined"),
        attempt=_attempt(intent, error),
    )


def _attempt(intent: dict[str, Any], error: dict[str, Any] | None) -> str | None:
    """The charge of the intent's last attempt: a declined one is named in the payment error."""
    charge = (error or {}).get("charge") or intent.get("latest_charge")
    if isinstance(charge, dict):
        charge = charge.get("id")
    return str(charge) if charge else None


def refund_from_stripe(refund: dict[str, Any]) -> Refund:
    """A Refund as the API (or a webhook event) gives it, as a plain dict, in the port's terms."""
    return Refund(str(refund["id"]), str(refund.get("status") or ""), int(refund["amount"]))


def refunds_from_stripe(event_type: str, resource: Any) -> tuple[str | None, list[Refund]]:
    """The intent and the refunds a webhook event reports: one Refund object (`refund.*`,
    `charge.refund.updated`), or the refunds a Charge lists (`charge.refunded`; Stripe lists them only
    when expanded, so the `refund.*` events are the ones to subscribe to)."""
    document: dict[str, Any] = resource.to_dict()
    if event_type == "charge.refunded":
        listed = (document.get("refunds") or {}).get("data") or []
    else:
        listed = [document]
    refunds = [refund_from_stripe(refund) for refund in listed if refund.get("id") and refund.get("amount")]
    intent = document.get("payment_intent")
    if isinstance(intent, dict):
        intent = intent.get("id")
    return (str(intent) if intent else None), refunds


class StripeGateway:
    def __init__(
        self, secret_key: str, publishable_key: str, api_base: str | None = None, timeout: float = 10
    ) -> None:
        import stripe  # here, not at the top: a payments service on the simulated gateway never loads it

        self._client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=2,  # with Stripe's own idempotency keys, so a retry is safe
            http_client=stripe.HTTPXClient(timeout=timeout),
        )
        self._publishable_key = publishable_key

    @property
    def name(self) -> Gateway:
        return "stripe"

    @property
    def publishable_key(self) -> str:
        return self._publishable_key

    async def create_intent(
        self, *, amount_minor: int, currency: str, order_number: int, customer_id: int, idempotency_key: str
    ) -> Intent:
        request = self._client.v1.payment_intents.create_async(
            params={
                "amount": amount_minor,
                "currency": currency.lower(),
                "metadata": {"orderNumber": str(order_number), "userId": str(customer_id)},
                "automatic_payment_methods": {"enabled": True},
            },
            options={"idempotency_key": idempotency_key},
        )
        return intent_from_stripe(await self._call(request))

    async def retrieve_intent(self, intent_id: str) -> Intent:
        return intent_from_stripe(await self._call(self._client.v1.payment_intents.retrieve_async(intent_id)))

    async def refund(self, *, intent_id: str, amount_minor: int, idempotency_key: str) -> Refund:
        refund = await self._call(
            self._client.v1.refunds.create_async(
                params={"payment_intent": intent_id, "amount": amount_minor},
                options={"idempotency_key": idempotency_key},
            )
        )
        return refund_from_stripe(refund.to_dict())

    async def refunds_of(self, intent_id: str) -> list[Refund]:
        page = await self._call(
            self._client.v1.refunds.list_async(params={"payment_intent": intent_id, "limit": 100})
        )
        return [refund_from_stripe(refund.to_dict()) async for refund in page.auto_paging_iter()]

    async def payments(self) -> AsyncIterator[GatewayPayment]:
        """Every PaymentIntent of the account, a page of 100 at a time (Stripe's list API), with the
        refunds of those that captured money."""
        page = await self._call(self._client.v1.payment_intents.list_async(params={"limit": 100}))
        async for resource in page.auto_paging_iter():
            intent = intent_from_stripe(resource)
            captured = int(resource.to_dict().get("amount_received") or 0)
            refunds = tuple(await self.refunds_of(intent.intent_id)) if captured else ()
            yield GatewayPayment(intent, captured, refunds)

    @staticmethod
    async def _call(request: Any) -> Any:
        """Stripe's errors in the port's terms (the message never carries a secret)."""
        import stripe

        try:
            return await request
        except (stripe.APIConnectionError, stripe.RateLimitError) as error:
            raise GatewayUnavailable(
                f"Stripe did not answer: {error.user_message or type(error).__name__}"
            ) from error
        except stripe.InvalidRequestError as error:
            if error.code == "resource_missing":
                raise IntentNotFound(error.user_message or "no such payment") from error
            raise GatewayError(error.user_message or str(error.code)) from error
        except stripe.APIError as error:
            raise GatewayUnavailable(f"Stripe failed: {error.user_message or 'server error'}") from error
        except stripe.StripeError as error:
            raise GatewayError(error.user_message or type(error).__name__) from error


class BadWebhook(GatewayError):
    """A webhook whose signature does not verify (or is too old), or whose body is not an event."""


# Stripe's default: a signed webhook older than this is refused (a replay by someone who caught one).
WEBHOOK_TOLERANCE_SECONDS = 300


def verified_webhook(payload: bytes, signature: str | None, secret: str) -> Any:
    """The event, if Stripe signed it with the endpoint's secret within the tolerance."""
    import stripe

    try:
        return stripe.Webhook.construct_event(payload, signature, secret, tolerance=WEBHOOK_TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError as error:
        raise BadWebhook(f"the Stripe-Signature does not verify: {error.user_message or error}") from error
    except ValueError as error:
        raise BadWebhook("the body is not a Stripe event") from error
