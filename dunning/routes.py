"""HTTP routes of dunning: the cases (read-only) and the recovery metrics."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from billing.api.context import RequestContext
from billing.api.crud import OfCustomer, OfInvoice, list_and_retrieve
from billing.api.openapi import ERROR_RESPONSES
from billing.db.pagination import Page, PageRequest
from billing.errors import InvalidRequest
from dunning import cases as service
from dunning.models import DunningCase as DunningCaseRow
from dunning.schemas import DunningCase, DunningCaseList, DunningMetrics

CaseId = Annotated[str, PathParameter(description="A dunning case id, dc_...", max_length=64)]


async def _list_cases(
    session: AsyncSession,
    merchant_id: str,
    page: PageRequest,
    *,
    case_state: str | None,
    **filters: str | None,
) -> Page[DunningCaseRow]:
    return await service.list_cases(session, merchant_id, page, state=case_state, **filters)


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

    list_, retrieve = list_and_retrieve(
        noun="dunning case",
        path="/cases",
        url="/v1/dunning/cases",
        list_type=DunningCaseList,
        item_type=DunningCase,
        render=service.render_case,
        list_rows=_list_cases,
        get_row=service.get_case,
        id_param="case_id",
        id_type=CaseId,
        filters={
            "invoice": OfInvoice,
            "customer": OfCustomer,
            # `state` is a name Litestar keeps for the application state: the parameter is declared under another.
            "case_state": Annotated[
                Literal["retrying", "awaiting_payment_method", "recovered", "exhausted", "voided"] | None,
                QueryParameter(name="state", description="Only cases in this state."),
            ],
        },
    )
