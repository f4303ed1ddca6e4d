"""HTTP routes of payments (read-only), refunds, and gateway statistics."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, JSONBody, PathParameter, QueryParameter

from billing.api.context import RequestContext
from billing.api.crud import OfCustomer, OfInvoice, list_and_retrieve
from billing.api.openapi import ERROR_RESPONSES
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

    list_, retrieve = list_and_retrieve(
        noun="payment",
        list_summary="List payments (attempts), newest first",
        url="/v1/payments",
        list_type=PaymentList,
        item_type=Payment,
        render=service.render_payment,
        list_rows=service.list_payments,
        get_row=service.get_payment,
        id_param="payment_id",
        id_type=PaymentId,
        filters={
            "customer": OfCustomer,
            "status": Annotated[
                PaymentStatus | None,
                QueryParameter(description="Only this status (requires_review: the risk review queue)."),
            ],
            "invoice": OfInvoice,
        },
    )

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

    list_, retrieve = list_and_retrieve(
        noun="refund",
        url="/v1/refunds",
        list_type=RefundList,
        item_type=Refund,
        render=refunds.render_refund,
        list_rows=refunds.list_refunds,
        get_row=refunds.get_refund,
        id_param="refund_id",
        id_type=RefundId,
        filters={
            "payment": Annotated[
                str | None, QueryParameter(description="Only this payment's.", max_length=64)
            ]
        },
    )


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
