"""HTTP routes of risk decisions (read-only): every check, with its score and the rules that fired."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from billing.api.context import RequestContext
from billing.api.openapi import ERROR_RESPONSES, Limit, StartingAfter
from billing.api.schemas import page
from billing.db.pagination import PageRequest
from billing.risk import service
from billing.risk.schemas import RiskDecisionList


class RiskDecisionsController(Controller):
    path = "/risk_decisions"
    tags = ["risk"]  # noqa: RUF012

    @get("/", responses=ERROR_RESPONSES, summary="List risk decisions, newest first")
    async def list_(
        self,
        ctx: NamedDependency[RequestContext],
        limit: Limit = 10,
        starting_after: StartingAfter = None,
        subject: Annotated[
            str | None,
            QueryParameter(
                description="Only the decisions on this payment, payment method or token.", max_length=64
            ),
        ] = None,
        outcome: Annotated[
            Literal["allow", "review", "block"] | None, QueryParameter(description="Only this outcome.")
        ] = None,
    ) -> RiskDecisionList:
        result = await service.list_decisions(
            ctx.session,
            ctx.merchant_id,
            PageRequest(limit, starting_after),
            subject=subject,
            outcome=outcome,
        )
        return page(
            RiskDecisionList,
            [service.render_decision(d) for d in result.rows],
            has_more=result.has_more,
            url="/v1/risk_decisions",
        )
