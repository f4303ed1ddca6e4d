"""HTTP routes of payments (read-only), refunds, and gateway statistics."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, JSONBody, PathParameter, QueryParameter

from billing.api.context import RequestContext
from billing.api.openapi import ERROR_RESPONSES, Limit, StartingAfter
from billing.api.schemas import page
from billing.clock import utc_now
from billing.payments import refunds, review, service
from billing.payments.schemas import (
    GatewayStats,
    Payment,
    PaymentList,
    PaymentStatus,
    Refund,
    RefundCreate,
    RefundList,
)

PaymentId = Annotated[str, PathParameter(description="A payment id, pay_...", max_length=64)]
RefundId = Annotated[str, PathParameter(description="A refund id, re_...", max_length=64)]


class PaymentsController(Controller):
    path = "/payments"
    tags = ["payments"]  # noqa: RUF012

    @get("/", responses=ERROR_RESPONSES, summary="List payments (attempts), newest first")
    async def list_(
        self,
        ctx: NamedDependency[RequestContext],
        limit: Limit = 10,
        starting_after: StartingAfter = None,
        customer: Annotated[
            str | None, QueryParameter(description="Only this customer's.", max_length=64)
        ] = None,
        status: Annotated[
            PaymentStatus | None,
            QueryParameter(description="Only this status (requires_review: the risk review queue)."),
        ] = None,
        invoice: Annotated[
            str | None, QueryParameter(description="Only this invoice's.", max_length=64)
        ] = None,
    ) -> PaymentList:
        result = await service.list_payments(
            ctx.session,
            ctx.merchant_id,
            limit=limit,
            starting_after=starting_after,
            customer=customer,
            status=status,
            invoice=invoice,
        )
        return page(
            PaymentList,
            [service.render_payment(p) for p in result.rows],
            has_more=result.has_more,
            url="/v1/payments",
        )

    @get("/{payment_id:str}", responses=ERROR_RESPONSES, summary="Retrieve a payment")
    async def retrieve(self, ctx: NamedDependency[RequestContext], payment_id: PaymentId) -> Payment:
        return service.render_payment(await service.get_payment(ctx.session, ctx.merchant_id, payment_id))

    @post(
        "/{payment_id:str}/approve",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Approve a payment held for review: it is charged, once",
        description="Only a payment with status requires_review (held by the risk check, docs/risk.md). The "
        "answer is the payment as the charge left it (succeeded, failed, or pending while its gateway confirms). "
        "Approving again returns the payment as it stands and never charges twice.",
    )
    async def approve(self, ctx: NamedDependency[RequestContext], payment_id: PaymentId) -> Payment:
        assert ctx.committed is not None
        # The charge commits its pending row before the gateway hears of it, outside the request's transaction.
        async with ctx.committed():
            payment = await review.approve_payment(ctx.services, ctx.merchant_id, payment_id, by="api")
        return service.render_payment(payment)

    @post(
        "/{payment_id:str}/refuse",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Refuse a payment held for review: it fails as a hard decline (highest_risk_level)",
    )
    async def refuse(self, ctx: NamedDependency[RequestContext], payment_id: PaymentId) -> Payment:
        assert ctx.committed is not None
        async with ctx.committed():
            payment = await review.refuse_payment(ctx.services, ctx.merchant_id, payment_id, by="api")
        return service.render_payment(payment)


class RefundsController(Controller):
    path = "/refunds"
    tags = ["refunds"]  # noqa: RUF012

    @post(
        "/",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Refund a payment, in full or in part",
        description="Goes through the gateway connection that took the payment. The answer is the refund in its "
        "state: `succeeded`, `failed` (see failure_code), or `pending` (the gateway did not answer; it is "
        "settled automatically). With an Idempotency-Key, a retry returns the same refund and never refunds twice.",
    )
    async def create(
        self,
        ctx: NamedDependency[RequestContext],
        data: JSONBody[RefundCreate],
        idempotency_key: Annotated[
            str | None,
            HeaderParameter(
                name="Idempotency-Key", required=False, description="Makes a retry return the same refund."
            ),
        ] = None,
    ) -> Refund:
        assert ctx.committed is not None
        # The refund commits its pending row before the gateway hears of it: the request's own transaction is
        # committed first, so the request never holds two pooled connections.
        async with ctx.committed():
            refund = await refunds.create_refund(
                ctx.services,
                merchant_id=ctx.merchant_id,
                payment_id=data.payment,
                amount=data.amount,
                reason=data.reason,
                metadata=data.metadata,
                idempotency_key=idempotency_key,
            )
        return refunds.render_refund(refund)

    @get("/", responses=ERROR_RESPONSES, summary="List refunds, newest first")
    async def list_(
        self,
        ctx: NamedDependency[RequestContext],
        limit: Limit = 10,
        starting_after: StartingAfter = None,
        payment: Annotated[
            str | None, QueryParameter(description="Only this payment's.", max_length=64)
        ] = None,
    ) -> RefundList:
        result = await refunds.list_refunds(
            ctx.session, ctx.merchant_id, limit=limit, starting_after=starting_after, payment=payment
        )
        return page(
            RefundList,
            [refunds.render_refund(r) for r in result.rows],
            has_more=result.has_more,
            url="/v1/refunds",
        )

    @get("/{refund_id:str}", responses=ERROR_RESPONSES, summary="Retrieve a refund")
    async def retrieve(self, ctx: NamedDependency[RequestContext], refund_id: RefundId) -> Refund:
        return refunds.render_refund(await refunds.get_refund(ctx.session, ctx.merchant_id, refund_id))


class GatewaysController(Controller):
    path = "/gateways"
    tags = ["settings"]  # noqa: RUF012

    @get(
        "/stats",
        responses=ERROR_RESPONSES,
        summary="Success rate, latency and circuit state per gateway connection",
    )
    async def stats(
        self,
        ctx: NamedDependency[RequestContext],
        since_hours: Annotated[
            int,
            QueryParameter(ge=1, le=24 * 90, description="The window, in hours back from now (default 24)."),
        ] = 24,
    ) -> GatewayStats:
        return await service.gateway_stats(
            ctx.session, ctx.merchant_id, utc_now() - timedelta(hours=since_hours)
        )
