"""Load -> decide -> append for the payments context. The gateway is called before the decision
(an intent must exist to be recorded) with an idempotency key of its own, so a retry after any
failure finds the same intent; the order's facts come from the payments side's replica of the orders."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from command_api.eventstore.model import CommandContext, EventStore
from command_api.payments import domain
from command_api.payments.domain import PAYMENT, OrderToPay, PaymentState, payment_aggregate_id
from command_api.payments.gateway import Intent, IntentNotFound, PaymentGateway, Refund
from event_schemas.money import Money
from event_schemas.payments import RefundedUnits
from read_models.log_ends import LogEnds, caught_up
from read_models.payments import PAYABLE_ORDERS, PAYMENTS, order_of_intent, payable_order
from read_models.pool import Pool
from read_models.read_again import read_again_once_caught_up


class OrderNotFound(domain.PaymentsError):
    pass


@dataclass(frozen=True)
class PaymentAnswer:
    order: OrderToPay
    payment: PaymentState
    intent: Intent
    # A retry of a request with the same Idempotency-Key: answered as the first one was.
    replayed: bool = False


@dataclass
class PaymentsHandlers:
    store: EventStore
    gateway: PaymentGateway
    replica: Pool
    log_ends: LogEnds
    orders_topic: str
    payments_topic: str
    namespace: str
    replica_wait: float = 5.0

    async def _order(self, customer_id: int | None, order_number: int) -> OrderToPay:
        """The caller's order as the replica has it; one it has not heard of, or still pending, may
        have moved just now, so the replica first catches up with the orders' log (boundedly)."""
        found = await read_again_once_caught_up(
            lambda: payable_order(self.replica, order_number),
            missed=lambda found: found is None or found.status == "pending",
            catch_up=lambda: caught_up(
                self.replica, PAYABLE_ORDERS, self.orders_topic, self.log_ends, self.replica_wait
            ),
        )
        if found is None or (customer_id is not None and found.customer_id != customer_id):
            raise OrderNotFound("order not found")
        return OrderToPay(
            found.order_number,
            found.customer_id,
            found.status,
            Money(amount=found.amount, currency=found.currency),
            {line.product_id: (line.qty, line.unit_price) for line in found.lines},
        )

    async def create_payment(
        self, customer_id: int, order_number: int, context: CommandContext, now: datetime
    ) -> PaymentAnswer:
        """The order's intent, made once; asked again (after a decline, say), the same intent. With an
        Idempotency-Key, the key is claimed for this order first, and a retry is answered as the first
        request was, whatever happened since. A key is the order's own, as on every keyed route whose
        command names its aggregate: the same key for another order is that order's request."""
        order = await self._order(customer_id, order_number)
        replayed = False
        if context.idempotency_key is not None:
            own_key = f"order-{order_number}:{context.idempotency_key}"
            context = replace(context, idempotency_key=own_key)
            claimed = await self.store.execute(
                domain.PAYMENT_REQUEST,
                domain.payment_request_id(order_number, own_key),
                lambda request: domain.claim_request(request, order_number=order_number, now=now),
                context,
            )
            replayed = claimed.replayed
        payment = await self._payment(order_number)
        if payment.initiated:  # the same intent again (its client secret is the gateway's to tell)
            if not replayed:
                domain.check_payable(payment, order)
            intent = await self.gateway.retrieve_intent(payment.intent_id)
            return PaymentAnswer(order, payment, intent, replayed)
        domain.check_payable(payment, order)
        intent = await self.gateway.create_intent(
            amount_minor=domain.amount_due(order),
            currency=order.total.currency,
            order_number=order_number,
            customer_id=customer_id,
            idempotency_key=f"{self.namespace}:payment:order-{order_number}",
        )
        committed = await self.store.execute(
            PAYMENT,
            payment_aggregate_id(order_number),
            lambda loaded: domain.initiate(
                loaded, order=order, gateway=self.gateway.name, intent=intent, now=now
            ),
            context,
        )
        return PaymentAnswer(order, committed.state, intent, replayed)

    async def verify_payment(
        self, customer_id: int, intent_id: str, context: CommandContext, now: datetime
    ) -> PaymentAnswer:
        """Ask the gateway how the intent stands and record its verdict (once)."""
        intent = await self.gateway.retrieve_intent(intent_id)
        if intent.order_number is None:
            raise IntentNotFound("no such payment")
        order = await self._order(customer_id, intent.order_number)
        payment = await self._payment(order.order_number)
        if payment.intent_id != intent_id:
            raise IntentNotFound("no such payment")
        return PaymentAnswer(
            order, await self._record_outcome(order.order_number, intent, None, context, now), intent
        )

    async def refund(
        self, order_number: int, wanted: Mapping[int, int] | None, context: CommandContext, now: datetime
    ) -> tuple[PaymentState, Refund]:
        """An admin gives money back for some units of a paid order (all that is left, if none are
        named)."""
        order = await self._order(None, order_number)
        payment = await self._payment(order_number)
        return await self._refund(
            order_number, payment, domain.plan_refund(payment, order, wanted), context, now
        )

    async def _refund(
        self,
        order_number: int,
        payment: PaymentState,
        plan: domain.RefundPlan,
        context: CommandContext,
        now: datetime,
    ) -> tuple[PaymentState, Refund]:
        """The gateway refunds once (its idempotency key names the payment's next refund), then the
        refund is recorded once."""
        refunded = await self.gateway.refund(
            intent_id=payment.intent_id,
            amount_minor=plan.amount_minor,
            idempotency_key=f"{self.namespace}:refund:order-{order_number}:{len(payment.refund_ids) + 1}",
        )
        return await self._record_refund(order_number, refunded, plan.units, None, context, now), refunded

    async def _record_refund(
        self,
        order_number: int,
        refunded: Refund,
        units: tuple[RefundedUnits, ...],
        gateway_event_id: str | None,
        context: CommandContext,
        now: datetime,
    ) -> PaymentState:
        committed = await self.store.execute(
            PAYMENT,
            payment_aggregate_id(order_number),
            lambda loaded: domain.refund(
                loaded, refunded=refunded, units=units, gateway_event_id=gateway_event_id, now=now
            ),
            context,
        )
        state: PaymentState = committed.state
        return state

    async def refund_unclaimed(
        self, order_number: int, context: CommandContext, now: datetime
    ) -> PaymentState:
        """The saga's request: the order ended before its payment succeeded, so the money goes back."""
        payment = await self._payment(order_number)
        if payment.status == "succeeded" and payment.refunded_minor >= payment.amount_minor:
            return payment  # refunded already (a repeated request)
        state, _ = await self._refund(
            order_number, payment, domain.plan_unclaimed_refund(payment), context, now
        )
        return state

    async def record_refund_webhook(
        self,
        intent_id: str,
        refunds: list[Refund],
        gateway_event_id: str,
        context: CommandContext,
        now: datetime,
    ) -> PaymentState | None:
        """Refunds the gateway reports (one made in Stripe's dashboard, say, or this system's own
        reported back), each recorded once by its refund id, decided inside the aggregate: a refund
        this system recorded when it asked for it is not counted again. Which units came back is not
        known here, so stock does not move."""
        order_number = await read_again_once_caught_up(
            lambda: order_of_intent(self.replica, intent_id),
            missed=lambda number: number is None,
            catch_up=lambda: caught_up(
                self.replica, PAYMENTS, self.payments_topic, self.log_ends, self.replica_wait
            ),
        )
        if order_number is None:
            return None
        payment = await self._payment(order_number)
        if payment.intent_id != intent_id:
            return None
        return await self._record_refunds(order_number, payment, refunds, gateway_event_id, context, now)

    async def _record_refunds(
        self,
        order_number: int,
        payment: PaymentState,
        refunds: list[Refund],
        gateway_event_id: str | None,
        context: CommandContext,
        now: datetime,
    ) -> PaymentState:
        """Refunds the gateway made, money only, each recorded once (the aggregate decides by refund id)."""
        for refunded in refunds:
            if refunded.gives_money_back:
                payment = await self._record_refund(
                    order_number, refunded, (), gateway_event_id, context, now
                )
        return payment

    async def _record_outcome(
        self,
        order_number: int,
        intent: Intent,
        gateway_event_id: str | None,
        context: CommandContext,
        now: datetime,
    ) -> PaymentState:
        committed = await self.store.execute(
            PAYMENT,
            payment_aggregate_id(order_number),
            lambda loaded: domain.record_outcome(
                loaded, intent=intent, gateway_event_id=gateway_event_id, now=now
            ),
            context,
        )
        state: PaymentState = committed.state
        return state

    async def record_webhook(
        self, intent: Intent, gateway_event_id: str, context: CommandContext, now: datetime
    ) -> PaymentState | None:
        """A payment's verdict as a webhook told it, once per Stripe event; an intent this system did not
        make (another integration on the same account) is acknowledged and ignored."""
        if intent.order_number is None:
            return None
        payment = await self._payment(intent.order_number)
        if not payment.initiated or payment.intent_id != intent.intent_id:
            return None
        return await self._record_outcome(intent.order_number, intent, gateway_event_id, context, now)

    async def reconcile(self, order_number: int, context: CommandContext, now: datetime) -> PaymentState:
        """Catch the log up with the gateway (reconciliation's repair): the intent's verdict, and every
        refund the gateway made that the payment does not hold, recorded once each (money only: which
        units a refund was for is not known here). The saga takes it from there."""
        payment = await self._payment(order_number)
        if not payment.initiated:
            raise domain.PaymentNotFound("no payment for this order")
        intent = await self.gateway.retrieve_intent(payment.intent_id)
        state = await self._record_outcome(order_number, intent, None, context, now)
        if state.status != "succeeded":
            return state
        refunds = await self.gateway.refunds_of(payment.intent_id)
        return await self._record_refunds(order_number, state, refunds, None, context, now)

    async def _payment(self, order_number: int) -> PaymentState:
        """The order's payment as its writer knows it now."""
        return (await self.store.load(PAYMENT, payment_aggregate_id(order_number))).state
