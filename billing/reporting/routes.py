"""HTTP of the reports and exports for a secret key: `GET /v1/reports/<name>` (the JSON twin of each console
chart) and `GET /v1/exports/<name>.csv` (streamed; see ApiMiddleware's streaming routes)."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter
from litestar.response import Stream

from billing.api.context import RequestContext
from billing.api.openapi import ERROR_RESPONSES
from billing.clock import SYSTEM_CLOCK
from billing.reporting import exports, reports, schemas

ReportName = Literal["mrr", "churn", "ar_aging", "payment_success", "revenue", "dunning"]
MonthFrom = Annotated[
    str | None,
    QueryParameter(
        name="from", description="First month, YYYY-MM (UTC). Default: 11 months before `to`.", max_length=7
    ),
]
MonthTo = Annotated[
    str | None,
    QueryParameter(name="to", description="Last month, YYYY-MM (UTC). Default: this month.", max_length=7),
]
DateFrom = Annotated[
    str | None,
    QueryParameter(name="from", description="First day, YYYY-MM-DD (UTC), included.", max_length=10),
]
DateTo = Annotated[
    str | None, QueryParameter(name="to", description="Last day, YYYY-MM-DD (UTC), included.", max_length=10)
]


class ReportsController(Controller):
    path = "/reports"
    tags = ["reports"]  # noqa: RUF012

    @get(
        "/{name:str}",
        responses=ERROR_RESPONSES,
        summary="A finance report: mrr, churn, ar_aging, payment_success, revenue or dunning",
        description="Definitions in docs/console.md. Amounts in minor units per currency; months YYYY-MM in UTC; "
        "ratios as decimal strings. Live data by default; `test_clock` reports that clock's customers as of its "
        "frozen time.",
    )
    async def report(
        self,
        ctx: NamedDependency[RequestContext],
        name: Annotated[ReportName, PathParameter(description="Which report.")],
        month_from: MonthFrom = None,
        month_to: MonthTo = None,
        test_clock: Annotated[
            str | None,
            QueryParameter(description="Report this test clock's customers (clk_...).", max_length=64),
        ] = None,
    ) -> schemas.AnyReport:
        scope = await reports.resolve_scope(
            ctx.session,
            ctx.merchant_id,
            SYSTEM_CLOCK,
            test_clock=test_clock,
            month_from=month_from,
            month_to=month_to,
        )
        return await reports.build_report(ctx.session, name, scope)


class ExportsController(Controller):
    path = "/exports"
    tags = ["exports"]  # noqa: RUF012

    @get(
        "/{filename:str}",
        media_type="text/csv",
        responses=ERROR_RESPONSES,
        summary="Export invoices, invoice_lines, payments, refunds or credit_notes as CSV (streamed)",
        description="Header row first, then one row per object created between `from` and `to` (UTC dates, "
        "both included; either may be left out), oldest first. Columns in docs/console.md.",
    )
    async def export(
        self,
        ctx: NamedDependency[RequestContext],
        filename: Annotated[
            str,
            PathParameter(
                description="invoices.csv, invoice_lines.csv, payments.csv, refunds.csv or credit_notes.csv.",
                max_length=40,
            ),
        ],
        date_from: DateFrom = None,
        date_to: DateTo = None,
    ) -> Stream:
        name = filename.removesuffix(".csv") if filename.endswith(".csv") else "?" + filename
        request = exports.export_request(name, date_from, date_to)
        return Stream(
            exports.stream_csv(ctx.services.engine, ctx.merchant_id, request),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{request.filename}"',
                "Cache-Control": "no-store",
            },
        )
