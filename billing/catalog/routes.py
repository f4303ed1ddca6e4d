"""HTTP routes of the catalog (meters, plans, coupons, tax rates): parse, call the use case, render."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from litestar import Controller, Request, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter, QueryParameter

from billing.api.context import RequestContext
from billing.api.crud import list_and_retrieve
from billing.api.openapi import ERROR_RESPONSES
from billing.api.strict_input import query_families
from billing.catalog import coupons, meters, plans, tax_rates
from billing.catalog.schemas import (
    Coupon,
    CouponCreate,
    CouponList,
    CouponUpdate,
    Meter,
    MeterCreate,
    MeterList,
    MeterUpdate,
    Plan,
    PlanCreate,
    PlanList,
    PlanUpdate,
    PricePreview,
    PricePreviewRequest,
    TaxRate,
    TaxRateCreate,
    TaxRateList,
    TaxRateUpdate,
)

MeterId = Annotated[str, PathParameter(description="A meter id (mtr_...) or its code", max_length=100)]
PlanId = Annotated[str, PathParameter(description="A plan id (plan_...) or its code", max_length=100)]
CouponId = Annotated[str, PathParameter(description="A coupon id, cpn_...", max_length=64)]
TaxRateId = Annotated[str, PathParameter(description="A tax rate id, txr_...", max_length=64)]
Active = Annotated[
    bool | None, QueryParameter(description="true: only active objects; false: only archived ones.")
]
CodeFilter = Annotated[
    str | None, QueryParameter(description="Only the object with this code.", max_length=100)
]
PortalVisible = Annotated[
    bool | None, QueryParameter(description="Only plans offered (true) or not (false) in the portal.")
]


class MetersController(Controller):
    path = "/meters"
    tags = ["meters"]  # noqa: RUF012

    @post("/", status_code=200, responses=ERROR_RESPONSES, summary="Create a meter")
    async def create(self, ctx: NamedDependency[RequestContext], data: JSONBody[MeterCreate]) -> Meter:
        return meters.render_meter(await meters.create_meter(ctx.session, ctx.merchant_id, data))

    list_, retrieve = list_and_retrieve(
        noun="meter",
        url="/v1/meters",
        list_type=MeterList,
        item_type=Meter,
        render=meters.render_meter,
        list_rows=meters.list_meters,
        get_row=meters.get_meter,
        id_param="meter_id",
        id_type=MeterId,
        filters={"active": Active, "code": CodeFilter},
    )

    @patch(
        "/{meter_id:str}",
        responses=ERROR_RESPONSES,
        summary="Update a meter (aggregation and property only while no subscription uses it)",
    )
    async def update(
        self, ctx: NamedDependency[RequestContext], meter_id: MeterId, data: JSONBody[MeterUpdate]
    ) -> Meter:
        return meters.render_meter(await meters.update_meter(ctx.session, ctx.merchant_id, meter_id, data))

    @post(
        "/{meter_id:str}/archive",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Archive a meter: new plans can no longer charge for it",
    )
    async def archive(self, ctx: NamedDependency[RequestContext], meter_id: MeterId) -> Meter:
        return meters.render_meter(
            await meters.set_meter_archived(ctx.session, ctx.merchant_id, meter_id, True)
        )

    @post(
        "/{meter_id:str}/unarchive", status_code=200, responses=ERROR_RESPONSES, summary="Unarchive a meter"
    )
    async def unarchive(self, ctx: NamedDependency[RequestContext], meter_id: MeterId) -> Meter:
        return meters.render_meter(
            await meters.set_meter_archived(ctx.session, ctx.merchant_id, meter_id, False)
        )


class PlansController(Controller):
    path = "/plans"
    tags = ["plans"]  # noqa: RUF012

    @post("/", status_code=200, responses=ERROR_RESPONSES, summary="Create a plan")
    async def create(self, ctx: NamedDependency[RequestContext], data: JSONBody[PlanCreate]) -> Plan:
        return plans.render_plan(await plans.create_plan(ctx.session, ctx.merchant_id, data))

    list_, retrieve = list_and_retrieve(
        noun="plan",
        url="/v1/plans",
        list_type=PlanList,
        item_type=Plan,
        render=plans.render_plan,
        list_rows=plans.list_plans,
        get_row=plans.get_plan,
        id_param="plan_id",
        id_type=PlanId,
        filters={"active": Active, "code": CodeFilter, "portal_visible": PortalVisible},
    )

    @patch(
        "/{plan_id:str}",
        responses=ERROR_RESPONSES,
        summary="Update a plan (its pricing only while no subscription uses it)",
    )
    async def update(
        self, ctx: NamedDependency[RequestContext], plan_id: PlanId, data: JSONBody[PlanUpdate]
    ) -> Plan:
        return plans.render_plan(await plans.update_plan(ctx.session, ctx.merchant_id, plan_id, data))

    @post(
        "/{plan_id:str}/archive",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Archive a plan: new subscriptions to it are refused",
    )
    async def archive(self, ctx: NamedDependency[RequestContext], plan_id: PlanId) -> Plan:
        return plans.render_plan(await plans.set_plan_archived(ctx.session, ctx.merchant_id, plan_id, True))

    @post("/{plan_id:str}/unarchive", status_code=200, responses=ERROR_RESPONSES, summary="Unarchive a plan")
    async def unarchive(self, ctx: NamedDependency[RequestContext], plan_id: PlanId) -> Plan:
        return plans.render_plan(await plans.set_plan_archived(ctx.session, ctx.merchant_id, plan_id, False))

    @get(
        "/{plan_id:str}/price_preview",
        responses=ERROR_RESPONSES,
        summary="Price one period of a plan for a quantity and usage",
        description="Usage per meter code goes in query parameters usage[<meter code>]=<quantity>, e.g. "
        "`?quantity=3&usage[api_calls]=12000`. Each line shows its tier breakdown.",
        opt=query_families("usage[<meter code>]"),
    )
    async def price_preview(
        self,
        ctx: NamedDependency[RequestContext],
        request: Request[Any, Any, Any],
        plan_id: PlanId,
        quantity: Annotated[int, QueryParameter(description="Units (seats) billed in advance.")] = 1,
    ) -> PricePreview:
        plan = await plans.get_plan(ctx.session, ctx.merchant_id, plan_id)
        usage: dict[str, Decimal] = {}
        for key, value in request.query_params.items():
            if key.startswith("usage[") and key.endswith("]"):
                code = key[len("usage[") : -1]
                usage[code] = plans.parse_usage_quantity(value, param=f"usage[{code[:100]}]")
        return plans.preview_price(plan, quantity, usage)

    @post(
        "/{plan_id:str}/price_preview",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Price one period of a plan for a quantity and usage (body form)",
    )
    async def price_preview_body(
        self, ctx: NamedDependency[RequestContext], plan_id: PlanId, data: JSONBody[PricePreviewRequest]
    ) -> PricePreview:
        plan = await plans.get_plan(ctx.session, ctx.merchant_id, plan_id)
        return plans.preview_price(plan, data.quantity, data.usage)


class CouponsController(Controller):
    path = "/coupons"
    tags = ["coupons"]  # noqa: RUF012

    @post("/", status_code=200, responses=ERROR_RESPONSES, summary="Create a coupon")
    async def create(self, ctx: NamedDependency[RequestContext], data: JSONBody[CouponCreate]) -> Coupon:
        return coupons.render_coupon(await coupons.create_coupon(ctx.session, ctx.merchant_id, data))

    list_, retrieve = list_and_retrieve(
        noun="coupon",
        url="/v1/coupons",
        list_type=CouponList,
        item_type=Coupon,
        render=coupons.render_coupon,
        list_rows=coupons.list_coupons,
        get_row=coupons.get_coupon,
        id_param="coupon_id",
        id_type=CouponId,
        filters={"active": Active},
    )

    @patch(
        "/{coupon_id:str}",
        responses=ERROR_RESPONSES,
        summary="Update a coupon (its discount only until it is first redeemed)",
    )
    async def update(
        self, ctx: NamedDependency[RequestContext], coupon_id: CouponId, data: JSONBody[CouponUpdate]
    ) -> Coupon:
        return coupons.render_coupon(
            await coupons.update_coupon(ctx.session, ctx.merchant_id, coupon_id, data)
        )

    @post(
        "/{coupon_id:str}/archive",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Archive a coupon: it can no longer be redeemed",
    )
    async def archive(self, ctx: NamedDependency[RequestContext], coupon_id: CouponId) -> Coupon:
        return coupons.render_coupon(
            await coupons.set_coupon_archived(ctx.session, ctx.merchant_id, coupon_id, True)
        )

    @post(
        "/{coupon_id:str}/unarchive", status_code=200, responses=ERROR_RESPONSES, summary="Unarchive a coupon"
    )
    async def unarchive(self, ctx: NamedDependency[RequestContext], coupon_id: CouponId) -> Coupon:
        return coupons.render_coupon(
            await coupons.set_coupon_archived(ctx.session, ctx.merchant_id, coupon_id, False)
        )


class TaxRatesController(Controller):
    path = "/tax_rates"
    tags = ["tax_rates"]  # noqa: RUF012

    @post("/", status_code=200, responses=ERROR_RESPONSES, summary="Create a tax rate")
    async def create(self, ctx: NamedDependency[RequestContext], data: JSONBody[TaxRateCreate]) -> TaxRate:
        return tax_rates.render_tax_rate(await tax_rates.create_tax_rate(ctx.session, ctx.merchant_id, data))

    list_, retrieve = list_and_retrieve(
        noun="tax rate",
        url="/v1/tax_rates",
        list_type=TaxRateList,
        item_type=TaxRate,
        render=tax_rates.render_tax_rate,
        list_rows=tax_rates.list_tax_rates,
        get_row=tax_rates.get_tax_rate,
        id_param="tax_rate_id",
        id_type=TaxRateId,
        filters={"active": Active},
    )

    @patch(
        "/{tax_rate_id:str}",
        responses=ERROR_RESPONSES,
        summary="Update a tax rate (percentage and inclusive only while it is not in use)",
    )
    async def update(
        self, ctx: NamedDependency[RequestContext], tax_rate_id: TaxRateId, data: JSONBody[TaxRateUpdate]
    ) -> TaxRate:
        return tax_rates.render_tax_rate(
            await tax_rates.update_tax_rate(ctx.session, ctx.merchant_id, tax_rate_id, data)
        )

    @post(
        "/{tax_rate_id:str}/archive",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Archive a tax rate: it can no longer be added to new subscriptions",
    )
    async def archive(self, ctx: NamedDependency[RequestContext], tax_rate_id: TaxRateId) -> TaxRate:
        return tax_rates.render_tax_rate(
            await tax_rates.set_tax_rate_archived(ctx.session, ctx.merchant_id, tax_rate_id, True)
        )

    @post(
        "/{tax_rate_id:str}/unarchive",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Unarchive a tax rate",
    )
    async def unarchive(self, ctx: NamedDependency[RequestContext], tax_rate_id: TaxRateId) -> TaxRate:
        return tax_rates.render_tax_rate(
            await tax_rates.set_tax_rate_archived(ctx.session, ctx.merchant_id, tax_rate_id, False)
        )


CATALOG_CONTROLLERS = [MetersController, PlansController, CouponsController, TaxRatesController]
