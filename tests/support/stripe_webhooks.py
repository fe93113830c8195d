"""Webhook events as Stripe sends them, signed with a test endpoint's secret the way Stripe signs them:
for the Stripe tests and for the chaos run's webhook path."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any


def signed(event: dict[str, Any], secret: str, at: int | None = None) -> tuple[bytes, str]:
    """The body and the Stripe-Signature header, computed the way Stripe signs a webhook."""
    payload = json.dumps(event).encode()
    timestamp = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return payload, f"t={timestamp},v1={mac}"


def stripe_event(kind: str, resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "type": kind,
        "api_version": "2026-08-26.dahlia",
        "created": int(time.time()),
        "livemode": False,
        "data": {"object": resource},
    }


def intent_event(
    kind: str, intent_id: str, order_number: int, amount: int, status: str, currency: str = "usd"
) -> dict[str, Any]:
    """A `payment_intent.*` event of the intent, succeeded or declined."""
    return stripe_event(
        kind,
        {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "currency": currency.lower(),
            "status": status,
            "metadata": {"orderNumber": str(order_number), "userId": "1"},
            "last_payment_error": None if status == "succeeded" else {"message": "Your card was declined."},
        },
    )


def refund_event(kind: str, refund_id: str, intent_id: str, amount: int) -> dict[str, Any]:
    """A `refund.*` (or `charge.refund.updated`) event of one refund of the intent's payment."""
    return stripe_event(
        kind,
        {
            "id": refund_id,
            "object": "refund",
            "amount": amount,
            "currency": "usd",
            "payment_intent": intent_id,
            "status": "succeeded",
        },
    )
