"""GET /v1/reconciliation: one connection's day, run on demand when it was not run yet."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from billing.api.context import RequestContext
from billing.api.openapi import ERROR_RESPONSES
from billing.reconciliation import service
from billing.reconciliation.schemas import Reconciliation


class ReconciliationController(Controller):
    path = "/reconciliation"
    tags = ["reconciliation"]  # noqa: RUF012

    @get(
        "/",
        responses=ERROR_RESPONSES,
        summary="A connection's settlement listing of one day, matched against payments and refunds",
        description="Rows are `matched`, `amount_mismatch` (both sides shown), `missing_in_engine` (the gateway "
        "settled something the engine has no record of) or `missing_in_settlement` (the engine's succeeded payment "
        "or refund is not in the listing); totals per currency: charges, refunds, fees, net. The day's stored run "
        "is answered; without one (or with refresh=true) the listing is fetched and matched now. docs/"
        "reconciliation.md.",
    )
    async def retrieve(
        self,
        ctx: NamedDependency[RequestContext],
        connection: Annotated[
            str,
            QueryParameter(description="A connection id of settings.gateways, e.g. sandbox.", max_length=40),
        ],
        date_: Annotated[
            date,
            QueryParameter(name="date", description="The settlement day, YYYY-MM-DD (the gateway's day)."),
        ],
        refresh: Annotated[
            bool, QueryParameter(description="Fetch and match again even if the day was run.")
        ] = False,
    ) -> Reconciliation:
        run = None if refresh else await service.stored_run(ctx.session, ctx.merchant_id, connection, date_)
        if run is None:
            assert ctx.committed is not None
            # The listing is fetched with no database connection held; the run is stored in its own transaction.
            async with ctx.committed():
                run = await service.reconcile_day(ctx.services, ctx.merchant_id, connection, date_)
        return service.render_run(run)
