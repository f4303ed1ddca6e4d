from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter, QueryParameter

from billing.api.context import RequestContext
from billing.api.crud import list_and_retrieve
from billing.api.openapi import ERROR_RESPONSES
from billing.invoices.routes import collect_at_once
from billing.subscriptions import service
from billing.subscriptions.schemas import (
    Subscription,
    SubscriptionCancel,
    SubscriptionChange,
    SubscriptionCreate,
    SubscriptionList,
    SubscriptionResume,
    SubscriptionUpdate,
    UpcomingInvoice,
)

SubscriptionId = Annotated[str, PathParameter(description="A subscription id, sub_...", max_length=64)]


async def _with_first_charge(ctx: RequestContext, subscription_id: str) -> Subscription:
    """After a use case that invoiced: charge that invoice now (see invoices.routes.collect_at_once) and answer
    with the subscription as the charge left it (active, or incomplete / past_due after a decline)."""
    sub = await service.get_subscription(ctx.session, ctx.merchant_id, subscription_id)
    if sub.latest_invoice_id is not None:
        await collect_at_once(ctx, sub.latest_invoice_id)
        sub = await service.get_subscription(ctx.session, ctx.merchant_id, subscription_id)
    return service.render_subscription(sub)


class SubscriptionsController(Controller):
    path = "/subscriptions"
    tags = ["subscriptions"]  # noqa: RUF012

    @post(
        "/",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Create a subscription; the first period is invoiced (and charged) within the request",
    )
    async def create(
        self, ctx: NamedDependency[RequestContext], data: JSONBody[SubscriptionCreate]
    ) -> Subscription:
        sub = await service.create_subscription(ctx.session, ctx.merchant_id, data)
        return await _with_first_charge(ctx, sub.id)

    list_, retrieve = list_and_retrieve(
        noun="subscription",
        url="/v1/subscriptions",
        list_type=SubscriptionList,
        item_type=Subscription,
        render=service.render_subscription,
        list_rows=service.list_subscriptions,
        get_row=service.get_subscription,
        id_param="subscription_id",
        id_type=SubscriptionId,
        filters={
            "customer": Annotated[str | None, QueryParameter(description="Only this customer's.")],
            "status": Annotated[str | None, QueryParameter(description="Only subscriptions in this status.")],
            "plan": Annotated[
                str | None,
                QueryParameter(
                    description="Only subscriptions on this plan (its id or code).", max_length=100
                ),
            ],
        },
    )

    @patch("/{subscription_id:str}", responses=ERROR_RESPONSES, summary="Update metadata or payment method")
    async def update(
        self,
        ctx: NamedDependency[RequestContext],
        subscription_id: SubscriptionId,
        data: JSONBody[SubscriptionUpdate],
    ) -> Subscription:
        return service.render_subscription(
            await service.update_subscription(ctx.session, ctx.merchant_id, subscription_id, data)
        )

    @post(
        "/{subscription_id:str}/cancel",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Cancel now (optionally crediting unused time) or at the period end",
    )
    async def cancel(
        self,
        ctx: NamedDependency[RequestContext],
        subscription_id: SubscriptionId,
        data: JSONBody[SubscriptionCancel],
    ) -> Subscription:
        return service.render_subscription(
            await service.cancel_subscription(ctx.session, ctx.merchant_id, subscription_id, data)
        )

    @post(
        "/{subscription_id:str}/change",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Change plan and/or quantity, now (with a proration behaviour) or at the period end",
    )
    async def change(
        self,
        ctx: NamedDependency[RequestContext],
        subscription_id: SubscriptionId,
        data: JSONBody[SubscriptionChange],
    ) -> Subscription:
        await service.change_subscription(ctx.session, ctx.merchant_id, subscription_id, data)
        return await _with_first_charge(ctx, subscription_id)

    @post(
        "/{subscription_id:str}/pause",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Pause: no invoices until resumed",
    )
    async def pause(
        self, ctx: NamedDependency[RequestContext], subscription_id: SubscriptionId
    ) -> Subscription:
        return service.render_subscription(
            await service.pause_subscription(ctx.session, ctx.merchant_id, subscription_id)
        )

    @post(
        "/{subscription_id:str}/resume",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Resume: on the same calendar (nothing billed inside a paid period) or a new cycle from today",
    )
    async def resume(
        self,
        ctx: NamedDependency[RequestContext],
        subscription_id: SubscriptionId,
        data: JSONBody[SubscriptionResume | None] = None,
    ) -> Subscription:
        await service.resume_subscription(ctx.session, ctx.merchant_id, subscription_id, data)
        return await _with_first_charge(ctx, subscription_id)

    @get(
        "/{subscription_id:str}/upcoming_invoice",
        responses=ERROR_RESPONSES,
        summary="The next invoice exactly as the renewal would make it now",
    )
    async def upcoming(
        self, ctx: NamedDependency[RequestContext], subscription_id: SubscriptionId
    ) -> UpcomingInvoice:
        return await service.upcoming_invoice(ctx.session, ctx.merchant_id, subscription_id)
