"""HTTP routes of entitlements: features, their values on plans, and a customer's effective entitlements."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter

from billing.api.context import RequestContext
from billing.api.crud import list_and_retrieve
from billing.api.openapi import ERROR_RESPONSES
from billing.catalog.plans import get_plan
from billing.catalog.routes import Active, CodeFilter, PlanId
from billing.entitlements import service
from billing.entitlements.schemas import (
    CustomerEntitlements,
    Feature,
    FeatureCreate,
    FeatureList,
    FeatureUpdate,
    PlanEntitlements,
    PlanEntitlementSet,
)

FeatureId = Annotated[str, PathParameter(description="A feature id (feat_...) or its code", max_length=100)]
CustomerId = Annotated[str, PathParameter(description="A customer id, cus_...", max_length=64)]


class FeaturesController(Controller):
    path = "/features"
    tags = ["entitlements"]  # noqa: RUF012

    @post("/", status_code=200, responses=ERROR_RESPONSES, summary="Create a feature")
    async def create(self, ctx: NamedDependency[RequestContext], data: JSONBody[FeatureCreate]) -> Feature:
        return service.render_feature(await service.create_feature(ctx.session, ctx.merchant_id, data))

    list_, retrieve = list_and_retrieve(
        noun="feature",
        url="/v1/features",
        list_type=FeatureList,
        item_type=Feature,
        render=service.render_feature,
        list_rows=service.list_features,
        get_row=service.get_feature,
        id_param="feature_id",
        id_type=FeatureId,
        filters={"active": Active, "code": CodeFilter},
    )

    @patch(
        "/{feature_id:str}",
        responses=ERROR_RESPONSES,
        summary="Update a feature's name, description, metadata",
    )
    async def update(
        self, ctx: NamedDependency[RequestContext], feature_id: FeatureId, data: JSONBody[FeatureUpdate]
    ) -> Feature:
        return service.render_feature(
            await service.update_feature(ctx.session, ctx.merchant_id, feature_id, data)
        )

    @post(
        "/{feature_id:str}/archive",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Archive a feature: it can no longer be added to plans (plans granting it still do)",
    )
    async def archive(self, ctx: NamedDependency[RequestContext], feature_id: FeatureId) -> Feature:
        return service.render_feature(
            await service.set_feature_archived(ctx.session, ctx.merchant_id, feature_id, True)
        )

    @post(
        "/{feature_id:str}/unarchive",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Unarchive a feature",
    )
    async def unarchive(self, ctx: NamedDependency[RequestContext], feature_id: FeatureId) -> Feature:
        return service.render_feature(
            await service.set_feature_archived(ctx.session, ctx.merchant_id, feature_id, False)
        )


class PlanEntitlementsController(Controller):
    path = "/plans/{plan_id:str}/entitlements"
    tags = ["entitlements"]  # noqa: RUF012

    @get("/", responses=ERROR_RESPONSES, summary="List the features a plan grants, with their values")
    async def list_(self, ctx: NamedDependency[RequestContext], plan_id: PlanId) -> PlanEntitlements:
        plan = await get_plan(ctx.session, ctx.merchant_id, plan_id)
        return await service.plan_entitlements(ctx.session, plan)

    @post(
        "/",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Grant a feature on a plan, or change its value (true/false, a limit, or an enum option)",
    )
    async def set_(
        self, ctx: NamedDependency[RequestContext], plan_id: PlanId, data: JSONBody[PlanEntitlementSet]
    ) -> PlanEntitlements:
        return await service.set_plan_entitlement(ctx.session, ctx.merchant_id, plan_id, data)

    @delete(
        "/{feature_id:str}",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Stop granting a feature on a plan",
    )
    async def remove(
        self, ctx: NamedDependency[RequestContext], plan_id: PlanId, feature_id: FeatureId
    ) -> PlanEntitlements:
        return await service.remove_plan_entitlement(ctx.session, ctx.merchant_id, plan_id, feature_id)


class CustomerEntitlementsController(Controller):
    path = "/customers/{customer_id:str}/entitlements"
    tags = ["entitlements"]  # noqa: RUF012

    @get(
        "/",
        responses=ERROR_RESPONSES,
        summary="What a customer may use now: the features granted by its live subscriptions' plans",
        description="One entry per feature granted by the plan of an active, trialing or past_due subscription; "
        "across subscriptions the highest value wins (true over false, the highest limit, the highest enum "
        "option). A feature absent from the list is not granted.",
    )
    async def retrieve(
        self, ctx: NamedDependency[RequestContext], customer_id: CustomerId
    ) -> CustomerEntitlements:
        return await service.customer_entitlements(ctx.session, ctx.merchant_id, customer_id)


ENTITLEMENT_CONTROLLERS = [FeaturesController, PlanEntitlementsController, CustomerEntitlementsController]
