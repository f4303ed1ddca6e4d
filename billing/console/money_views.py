"""The console's reconciliation page (SPEC §8) and risk review queue (SPEC §9): finance and admin users alike.

The handlers live here, beside the rest of the console's (billing.console.routes), which lends them its tools: the
login gate, page rendering, the audit entry and the CSRF check."""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.params import PathParameter
from litestar.response import Redirect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import utc_now
from billing.console.texts import text
from billing.customers.models import Customer
from billing.errors import BillingError
from billing.payments import review
from billing.payments.models import Payment
from billing.reconciliation import service as reconciliation
from billing.reconciliation.models import ReconciliationRun
from billing.risk.models import RiskDecision
from billing.services import Services
from billing.settings.service import gateway_connections

PathText = Annotated[str, PathParameter(max_length=64)]
QUEUE_LIMIT = 100
CSV_COLUMNS = (
    "status",
    "kind",
    "id",
    "reference",
    "currency",
    "settlement_amount",
    "engine_amount",
    "engine_currency",
    "fee",
)


@dataclass(frozen=True)
class ConsoleTools:
    """What the console's router lends these pages (see billing.console.routes)."""

    # The viewer, or the answer instead of the page (login form).
    gate: Callable[[AsyncSession, Request[Any, Any, Any]], Awaitable[Any]]
    is_viewer: Callable[[Any], bool]
    page: Callable[..., Awaitable[Response[str]]]
    message: Callable[..., Awaitable[Response[str]]]
    audit: Callable[..., None]
    csrf_ok: Callable[[Any, Any], bool]


@dataclass(frozen=True)
class HeldPayment:
    payment: Payment
    customer_email: str | None
    decision: RiskDecision | None


async def held_payments(db: AsyncSession, merchant_id: str) -> list[HeldPayment]:
    """The review queue: held payments, newest first, with their customer's email and their risk decision."""
    rows = (
        await db.execute(
            select(Payment, Customer.email)
            .join(Customer, Customer.id == Payment.customer_id)
            .where(Payment.merchant_id == merchant_id, Payment.status == "requires_review")
            .order_by(Payment.seq.desc())
            .limit(QUEUE_LIMIT)
        )
    ).all()
    ids = [payment.id for payment, _ in rows]
    decisions: dict[str, RiskDecision] = {}
    if ids:
        for decision in await db.scalars(
            select(RiskDecision)
            .where(RiskDecision.merchant_id == merchant_id, RiskDecision.subject_id.in_(ids))
            .order_by(RiskDecision.seq)
        ):
            decisions[decision.subject_id] = decision
    return [HeldPayment(payment, email, decisions.get(payment.id)) for payment, email in rows]


async def recent_blocks(db: AsyncSession, merchant_id: str) -> list[RiskDecision]:
    return list(
        await db.scalars(
            select(RiskDecision)
            .where(RiskDecision.merchant_id == merchant_id, RiskDecision.outcome == "block")
            .order_by(RiskDecision.seq.desc())
            .limit(20)
        )
    )


def _payment_view(payment: Payment) -> dict[str, Any]:
    return {
        "status": payment.status,
        "amount": payment.amount,
        "currency": payment.currency,
        "failure_code": payment.failure_code,
    }


def reconciliation_csv(run: ReconciliationRun) -> str:
    """The run's rows, header first (columns: CSV_COLUMNS; amounts in minor units)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in run.rows:
        writer.writerow(["" if row.get(c) is None else row[c] for c in CSV_COLUMNS])
    return out.getvalue()


def make_money_views(services: Services, tools: ConsoleTools) -> list[Any]:
    async def choice(
        db: AsyncSession, viewer: Any, request: Request[Any, Any, Any]
    ) -> tuple[list[str], str, str]:
        connections = [c.id for c in await gateway_connections(db, viewer.merchant_id)]
        chosen = request.query_params.get("connection") or (connections[0] if connections else "")
        day = request.query_params.get("date") or (utc_now().date() - timedelta(days=1)).isoformat()
        return connections, chosen, day

    async def run_for(viewer: Any, connection: str, day: str, refresh: bool) -> ReconciliationRun:
        """The stored run of the day, or one made now (its listing fetched with no connection held)."""
        try:
            wanted = date.fromisoformat(day)
        except ValueError:
            raise BillingError(text("recon_bad_date", viewer.locale)) from None
        if not refresh:
            async with services.sessions() as db:
                stored = await reconciliation.stored_run(db, viewer.merchant_id, connection, wanted)
            if stored is not None:
                return stored
        return await reconciliation.reconcile_day(services, viewer.merchant_id, connection, wanted)

    @get("/reconciliation")
    async def reconciliation_page(request: Request[Any, Any, Any]) -> Response[Any]:
        async with services.sessions() as db:
            viewer = await tools.gate(db, request)
            if not tools.is_viewer(viewer):
                return viewer  # type: ignore[no-any-return]
            connections, chosen, day = await choice(db, viewer, request)
        run, error = None, None
        if chosen and request.query_params.get("date"):
            try:
                run = await run_for(viewer, chosen, day, bool(request.query_params.get("refresh")))
            except BillingError as exc:
                error = text("action_failed", viewer.locale, reason=exc.message)
        async with services.sessions() as db:
            return await tools.page(
                viewer,
                db,
                "reconciliation.jinja",
                status=400 if error else 200,
                title=text("recon_title", viewer.locale),
                active="reconciliation",
                here="/console/reconciliation",
                connections=connections,
                chosen=chosen,
                chosen_day=day,
                run=run,
                error=error,
                csv_href="/console/reconciliation.csv?" + urlencode({"connection": chosen, "date": day}),
            )

    @get("/reconciliation.csv")
    async def reconciliation_export(request: Request[Any, Any, Any]) -> Response[Any]:
        async with services.sessions() as db:
            viewer = await tools.gate(db, request)
            if not tools.is_viewer(viewer):
                return viewer  # type: ignore[no-any-return]
            _, chosen, day = await choice(db, viewer, request)
        try:
            run = await run_for(viewer, chosen, day, False)
        except BillingError as exc:
            async with services.sessions() as db:
                return await tools.message(viewer, db, 400, text("recon_title", viewer.locale), exc.message)
        return Response(
            reconciliation_csv(run),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="reconciliation-{run.connection_id}-{run.day}.csv"',
                "Cache-Control": "no-store",
            },
        )

    @get("/risk")
    async def risk_queue(request: Request[Any, Any, Any]) -> Response[Any]:
        async with services.sessions() as db:
            viewer = await tools.gate(db, request)
            if not tools.is_viewer(viewer):
                return viewer  # type: ignore[no-any-return]
            done = request.query_params.get("done")
            notice = (
                text(f"risk_done_{done}", viewer.locale, payment=request.query_params.get("payment") or "")
                if done in ("approved", "refused")
                else None
            )
            return await tools.page(
                viewer,
                db,
                "risk.jinja",
                title=text("risk_title", viewer.locale),
                active="risk",
                here="/console/risk",
                held=await held_payments(db, viewer.merchant_id),
                blocks=await recent_blocks(db, viewer.merchant_id),
                notice=notice,
            )

    @post("/risk/{payment_id:str}/{action:str}", status_code=303)
    async def risk_action(
        request: Request[Any, Any, Any], payment_id: PathText, action: PathText
    ) -> Response[Any]:
        form = await request.form()
        async with services.sessions() as db:
            viewer = await tools.gate(db, request)
            if not tools.is_viewer(viewer):
                return viewer  # type: ignore[no-any-return]
            if action not in ("approve", "refuse"):
                return await tools.message(
                    viewer, db, 404, text("not_found", viewer.locale), text("not_found_body", viewer.locale)
                )
            if not tools.csrf_ok(viewer, form):
                return await tools.message(
                    viewer, db, 403, text("risk_title", viewer.locale), text("form_expired", viewer.locale)
                )
        before: dict[str, Any] = {"status": "requires_review"}

        def record(session: AsyncSession, payment: Payment) -> None:
            tools.audit(
                session,
                viewer,
                f"payment.{action}",
                "payment",
                payment.id,
                before=before,
                after=_payment_view(payment),
            )

        use_case = review.approve_payment if action == "approve" else review.refuse_payment
        try:
            # The review opens its own transactions (an approval charges): no connection of this request is held.
            await use_case(
                services, viewer.merchant_id, payment_id, by=f"console:{viewer.email}", record=record
            )
        except BillingError as exc:
            async with services.sessions() as db:
                return await tools.message(
                    viewer,
                    db,
                    exc.status if exc.status < 500 else 502,
                    text("risk_title", viewer.locale),
                    text("action_failed", viewer.locale, reason=exc.message),
                )
        done = "approved" if action == "approve" else "refused"
        return Redirect("/console/risk?" + urlencode({"done": done, "payment": payment_id}), status_code=303)

    return [reconciliation_page, reconciliation_export, risk_queue, risk_action]
