"""Routes of a subscription's items: `/v1/subscriptions/{id}/items` (list, add) and `…/items/{item}` (change
quantity, remove), each with a `proration_behavior` (docs/billing.md "Subscription items")."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter, QueryParameter

from billing.api.context import RequestContext
from billing.api.openapi import ERROR_RESPONSES
from billing.api.schemas import DeletedObject, page
from billing.invoices.routes import collect_at_once
from billing.subscriptions import items, service
from billing.subscriptions.item_schemas import (
    ProrationBehavior,
    SubscriptionItemCreate,
    SubscriptionItemList,
    SubscriptionItemUpdate,
)
from billing.subscriptions.schemas import SubscriptionItem

SubscriptionId = Annotated[str, PathParameter(description="A subscription id, sub_...", max_length=64)]
ItemId = Annotated[str, PathParameter(description="A subscription item id, si_...", max_length=64)]


async def _charge_if_invoiced(ctx: RequestContext, subscription_id: str) -> None:
    """With always_invoice the change was invoiced: charge that invoice now, as a plan change does."""
    sub = await service.get_subscription(ctx.session, ctx.merchant_id, subscription_id)
    if sub.latest_invoice_id is not None:
        await collect_at_once(ctx, sub.latest_invoice_id)


class SubscriptionItemsController(Controller):
    path = "/subscriptions/{subscription_id:str}/items"
    tags = ["subscriptions"]  # noqa: RUF012

    @get(
        "/",
        responses=ERROR_RESPONSES,
        summary="List a subscription's items: its plan first, then its add-ons",
    )
    async def list_(
        self, ctx: NamedDependency[RequestContext], subscription_id: SubscriptionId
    ) -> SubscriptionItemList:
        rows = await items.list_items(ctx.session, ctx.merchant_id, subscription_id)
        return page(
            SubscriptionItemList, rows, has_more=False, url=f"/v1/subscriptions/{subscription_id}/items"
        )

    @post(
        "/",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Add an add-on item (a plan × quantity) now, prorated for the rest of the period",
    )
    async def add(
        self,
        ctx: NamedDependency[RequestContext],
        subscription_id: SubscriptionId,
        data: JSONBody[SubscriptionItemCreate],
    ) -> SubscriptionItem:
        item = await items.add_item(ctx.session, ctx.merchant_id, subscription_id, data)
        if data.proration_behavior == "always_invoice":
            await _charge_if_invoiced(ctx, subscription_id)
        return item

    @post(
        "/{item_id:str}",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Change an item's quantity now, the difference prorated",
    )
    async def update(
        self,
        ctx: NamedDependency[RequestContext],
        subscription_id: SubscriptionId,
        item_id: ItemId,
        data: JSONBody[SubscriptionItemUpdate],
    ) -> SubscriptionItem:
        item = await items.update_item(ctx.session, ctx.merchant_id, subscription_id, item_id, data)
        if data.proration_behavior == "always_invoice":
            await _charge_if_invoiced(ctx, subscription_id)
        return item

    @delete(
        "/{item_id:str}",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Remove an add-on item now, its unused time credited (the first item, the plan, stays)",
    )
    async def remove(
        self,
        ctx: NamedDependency[RequestContext],
        subscription_id: SubscriptionId,
        item_id: ItemId,
        proration_behavior: Annotated[
            ProrationBehavior, QueryParameter(description="How the unused paid time is credited.")
        ] = "create_prorations",
    ) -> DeletedObject:
        removed = await items.remove_item(
            ctx.session, ctx.merchant_id, subscription_id, item_id, proration_behavior
        )
        if proration_behavior == "always_invoice":
            await _charge_if_invoiced(ctx, subscription_id)
        return DeletedObject(id=removed, object="subscription_item")
