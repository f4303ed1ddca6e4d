"""HTTP routes of current usage: `GET /v1/customers/{id}/usage` and `GET /v1/subscriptions/{id}/usage`."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import PathParameter

from billing.api.context import RequestContext
from billing.api.openapi import ERROR_RESPONSES
from billing.usage import summary
from billing.usage.summary_schemas import CustomerUsage, SubscriptionUsage

CustomerId = Annotated[str, PathParameter(description="A customer id, cus_...", max_length=64)]
SubscriptionId = Annotated[str, PathParameter(description="A subscription id, sub_...", max_length=64)]


class UsageSummaryController(Controller):
    path = "/"
    tags = ["usage"]  # noqa: RUF012

    @get(
        "/customers/{customer_id:str}/usage",
        responses=ERROR_RESPONSES,
        summary="A customer's usage so far in the current period of each renewing subscription, priced",
    )
    async def customer(self, ctx: NamedDependency[RequestContext], customer_id: CustomerId) -> CustomerUsage:
        return await summary.customer_usage(ctx.session, ctx.merchant_id, customer_id)

    @get(
        "/subscriptions/{subscription_id:str}/usage",
        responses=ERROR_RESPONSES,
        summary="A subscription's usage so far in its current period, priced per charge with the tier breakdown",
    )
    async def subscription(
        self, ctx: NamedDependency[RequestContext], subscription_id: SubscriptionId
    ) -> SubscriptionUsage:
        return await summary.subscription_usage(ctx.session, ctx.merchant_id, subscription_id)
