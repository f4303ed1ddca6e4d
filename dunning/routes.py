"""HTTP routes of dunning: the cases (read-only) and the recovery metrics."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter

from billing.api.context import RequestContext
from billing.api.openapi import ERROR_RESPONSES, Limit, StartingAfter
from billing.api.schemas import page
from billing.errors import InvalidRequest
from dunning import cases as service
from dunning.schemas import DunningCase, DunningCaseList, DunningMetrics

CaseId = Annotated[str, PathParameter(description="A dunning case id, dc_...", max_length=64)]


class DunningController(Controller):
    path = "/dunning"
    tags = ["dunning"]  # noqa: RUF012

    @get("/metrics", responses=ERROR_RESPONSES, summary="Recovery metrics of failed automatic charges")
    async def metrics(
        self,
        ctx: NamedDependency[RequestContext],
        since: Annotated[
            datetime | None,
            QueryParameter(
                description="Only cases whose first failure is at or after this instant (RFC 3339)."
            ),
        ] = None,
    ) -> DunningMetrics:
        if since is not None and since.tzinfo is None:
            raise InvalidRequest("since needs a time zone offset, e.g. 2027-01-01T00:00:00Z.", param="since")
        return await service.recovery_metrics(ctx.session, ctx.merchant_id, since=since)

    @get("/cases", responses=ERROR_RESPONSES, summary="List dunning cases, newest first")
    async def list_(
        self,
        ctx: NamedDependency[RequestContext],
        limit: Limit = 10,
        starting_after: StartingAfter = None,
        invoice: Annotated[
            str | None, QueryParameter(description="Only this invoice's.", max_length=64)
        ] = None,
        customer: Annotated[
            str | None, QueryParameter(description="Only this customer's.", max_length=64)
        ] = None,
        case_state: Annotated[
            Literal["retrying", "awaiting_payment_method", "recovered", "exhausted", "voided"] | None,
            QueryParameter(name="state", description="Only cases in this state."),
        ] = None,
    ) -> DunningCaseList:
        result = await service.list_cases(
            ctx.session,
            ctx.merchant_id,
            limit=limit,
            starting_after=starting_after,
            invoice=invoice,
            customer=customer,
            state=case_state,
        )
        return page(
            DunningCaseList,
            [service.render_case(c) for c in result.rows],
            has_more=result.has_more,
            url="/v1/dunning/cases",
        )

    @get("/cases/{case_id:str}", responses=ERROR_RESPONSES, summary="Retrieve a dunning case")
    async def retrieve(self, ctx: NamedDependency[RequestContext], case_id: CaseId) -> DunningCase:
        return service.render_case(await service.get_case(ctx.session, ctx.merchant_id, case_id))
