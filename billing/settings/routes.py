"""HTTP routes of settings: GET and PATCH /v1/settings."""

from __future__ import annotations

from litestar import Controller, get, patch
from litestar.di import NamedDependency
from litestar.params import JSONBody

from billing.api.context import RequestContext
from billing.api.openapi import ERROR_RESPONSES
from billing.settings import service
from billing.settings.schemas import MerchantSettings, SettingsUpdate


class SettingsController(Controller):
    path = "/settings"
    tags = ["settings"]  # noqa: RUF012

    @get("/", responses=ERROR_RESPONSES, summary="Retrieve the account's settings")
    async def retrieve(self, ctx: NamedDependency[RequestContext]) -> MerchantSettings:
        return service.render_settings(await service.get_settings(ctx.session, ctx.merchant_id))

    @patch("/", responses=ERROR_RESPONSES, summary="Update the account's settings (gateways and routing)")
    async def update(
        self, ctx: NamedDependency[RequestContext], data: JSONBody[SettingsUpdate]
    ) -> MerchantSettings:
        merchant = await service.update_settings(
            ctx.session,
            ctx.merchant_id,
            data,
            production=ctx.services.settings.is_production,
            gateways=ctx.services.gateways,
        )
        return service.render_settings(merchant)
