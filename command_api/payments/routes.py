"""HTTP routes of the payments command side: the seed's create-payment and verify-payment for the
order's own customer, and the simulated gateway's stand-in for Stripe.js (on a router of its own,
served only where the simulated gateway runs)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response, status

from auth.deps import CurrentAdmin, CurrentCustomer, CurrentService
from command_api.http import Context
from command_api.payments.commands import ConfirmSimulatedPayment, CreatePayment, RefundOrder
from command_api.payments.handlers import PaymentAnswer, PaymentsHandlers
from command_api.payments.simulated_gateway import SimulatedGateway
from command_api.payments.stripe_gateway import intent_from_stripe, refunds_from_stripe, verified_webhook
from event_schemas.money import amount_text
from web.errors import error_responses

ERRORS = error_responses(400, 401, 403, 404, 409, 413, 422, 502, 503)
router = APIRouter(tags=["payments"], responses=ERRORS)
# Anyone who holds an intent's client secret pays it with a test card here: mounted only with the simulated
# gateway, which production never runs (command_api/payments/app.py).
simulated_gateway_router = APIRouter(tags=["simulated gateway"], responses=ERRORS)


async def get_handlers(request: Request) -> PaymentsHandlers:
    handlers: PaymentsHandlers = request.app.state.payments_handlers
    return handlers


Handlers = Annotated[PaymentsHandlers, Depends(get_handlers)]


def order_public(answer: PaymentAnswer) -> dict[str, Any]:
    order = answer.order
    return {
        "id": order.order_number,
        "orderNumber": order.order_number,
        "status": order.status,
        "customerId": order.customer_id,
        "amount": amount_text(order.total.amount),
        "currency": order.total.currency,
    }


@router.post("/create-payment")
async def create_payment(
    command: CreatePayment,
    handlers: Handlers,
    context: Context,
    response: Response,
    customer: CurrentCustomer,
) -> dict[str, Any]:
    """Start paying one of the caller's confirmed orders: a PaymentIntent for its exact total (the
    same one however often this is called)."""
    answer = await handlers.create_payment(customer.user_id, command.order_number, context, datetime.now(UTC))
    response.headers["Cache-Control"] = "no-store"  # the answer holds the intent's client secret
    if answer.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return {
        "message": "Payment Successful",
        "data": {
            "secret": answer.intent.client_secret,
            "pubKey": handlers.gateway.publishable_key,
            "amount": answer.payment.amount_minor,
            "currency": answer.payment.currency,
            "intentId": answer.payment.intent_id,
            "gateway": handlers.gateway.name,
            "order": order_public(answer),
        },
    }


@router.post("/verify-payment/{intent_id}")
async def verify_payment(
    intent_id: Annotated[str, Path(pattern=r"^pi_[A-Za-z0-9_]{1,200}$")],
    handlers: Handlers,
    context: Context,
    customer: CurrentCustomer,
) -> dict[str, Any]:
    """Ask the gateway how the caller's payment stands, and record the verdict (once). After a
    decline (`status` "failed", `failure` says why) the order stays payable: pay the same intent
    with another card until the order's deadline."""
    answer = await handlers.verify_payment(customer.user_id, intent_id, context, datetime.now(UTC))
    return {
        "message": "Payment Verification Completed",
        "orderNumber": answer.order.order_number,
        "status": answer.payment.status,
        "intentStatus": answer.intent.status,
        "failure": answer.intent.failure if answer.payment.status == "failed" else None,
    }


@simulated_gateway_router.post("/simulated-gateway/payment_intents/{intent_id}/confirm")
async def confirm_simulated_payment(
    intent_id: Annotated[str, Path(pattern=r"^pi_[A-Za-z0-9_]{1,200}$")],
    command: ConfirmSimulatedPayment,
    handlers: Handlers,
) -> dict[str, Any]:
    """The simulated gateway's stand-in for Stripe.js: pay an intent with a test card
    (4242 4242 4242 4242 succeeds, 4000 0000 0000 0002 is declined). Only with the simulated gateway."""
    gateway = handlers.gateway
    if not isinstance(gateway, SimulatedGateway):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "the simulated gateway is not in use")
    intent = await gateway.confirm(intent_id, command.client_secret, command.card)
    return {"id": intent.intent_id, "status": intent.status, "lastPaymentError": intent.failure}


HANDLED_WEBHOOKS = frozenset({"payment_intent.succeeded", "payment_intent.payment_failed"})
# Events whose object is one Refund; `charge.refunded` carries a Charge, with its refunds when expanded.
REFUND_WEBHOOKS = frozenset({"refund.created", "refund.updated", "charge.refund.updated"})


@router.post("/webhooks/stripe", tags=["webhooks"])
async def stripe_webhook(request: Request, handlers: Handlers, context: Context) -> dict[str, Any]:
    """Stripe's report of a payment, signed with the endpoint's secret (`Stripe-Signature`); a bad or
    stale signature is refused (400). Stripe retries until it gets a 2xx: each event is recorded once."""
    secret = request.app.state.stripe_webhook_secret
    if not secret:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, "webhooks are not configured (COMMERCE_STRIPE_WEBHOOK_SECRET)"
        )
    event = verified_webhook(await request.body(), request.headers.get("stripe-signature"), secret)
    if event.type in REFUND_WEBHOOKS or event.type == "charge.refunded":
        intent_id, refunds = refunds_from_stripe(event.type, event.data.object)
        if intent_id is None or not refunds:
            return {"received": True, "handled": False}
        recorded = await handlers.record_refund_webhook(
            intent_id, refunds, event.id, context, datetime.now(UTC)
        )
        return {"received": True, "handled": recorded is not None}
    if event.type not in HANDLED_WEBHOOKS:
        return {"received": True, "handled": False}
    intent = intent_from_stripe(event.data.object)
    recorded = await handlers.record_webhook(intent, event.id, context, datetime.now(UTC))
    return {"received": True, "handled": recorded is not None}


@router.post("/refunds")
async def refund_order(
    command: RefundOrder, handlers: Handlers, context: Context, admin: CurrentAdmin
) -> dict[str, Any]:
    """Give money back for a paid order (admins): the named lines' units, or all that is left; the
    refunded units return to stock."""
    wanted: dict[int, int] | None = None
    if command.lines is not None:
        wanted = {}
        for line in command.lines:
            wanted[line.product_id] = wanted.get(line.product_id, 0) + line.qty
    payment, refund = await handlers.refund(command.order_number, wanted, context, datetime.now(UTC))
    return {
        "orderNumber": command.order_number,
        "refundId": refund.refund_id,
        "amount": refund.amount_minor,
        "currency": payment.currency,
        "refundedTotal": payment.refunded_minor,
        "paid": payment.amount_minor,
    }


@router.post("/internal/payments/{order_number}/refund-unclaimed", tags=["internal"])
async def refund_unclaimed(
    order_number: Annotated[int, Path(gt=0, le=2**53)],
    handlers: Handlers,
    context: Context,
    service: CurrentService,
) -> dict[str, Any]:
    """The order saga's request: the payment succeeded after its order had ended (expired, cancelled),
    so all of it goes back to the customer (once)."""
    payment = await handlers.refund_unclaimed(order_number, context, datetime.now(UTC))
    return {
        "orderNumber": order_number,
        "refundedTotal": payment.refunded_minor,
        "paid": payment.amount_minor,
    }


@router.post("/internal/payments/{order_number}/reconcile", tags=["internal"])
async def reconcile_payment(
    order_number: Annotated[int, Path(gt=0, le=2**53)],
    handlers: Handlers,
    context: Context,
    service: CurrentService,
) -> dict[str, Any]:
    """Reconciliation's repair (`python -m payments reconcile --repair`): record what the gateway did
    with the order's payment and the log does not hold yet (its success, its refunds)."""
    payment = await handlers.reconcile(order_number, context, datetime.now(UTC))
    return {
        "orderNumber": order_number,
        "status": payment.status,
        "refundedTotal": payment.refunded_minor,
        "paid": payment.amount_minor,
    }
