"""HTTP of the finance console (SPEC §10): server-rendered pages under /console, no script.

Handlers stay thin: they read the cookie and the form, call the use cases the API calls (invoices, credit
notes, collection, invoice email, API keys, settings), write the audit entry in the same transaction, and render.
Every POST form carries the session's CSRF token (the login form a cookie-bound one); a successful action
redirects (303) so a reload does not repeat it. Every object is looked up within the viewer's merchant, so
another merchant's ids answer 404 like unknown ones.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, Response, Router, get, post
from litestar.datastructures import Cookie
from litestar.params import PathParameter
from litestar.response import Redirect, Stream
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import SYSTEM_CLOCK
from billing.console import key_actions, pages, users
from billing.console.audit import Actor, list_audit, record_audit
from billing.console.models import ConsoleSession, ConsoleUser
from billing.console.money_views import ConsoleTools, make_money_views
from billing.console.report_views import REPORT_NAV, sections_for
from billing.console.texts import pick_locale, text
from billing.credit_notes import service as credit_notes
from billing.credit_notes.schemas import CreditNoteCreate
from billing.customers.models import Customer
from billing.db.engine import transaction
from billing.db.pagination import PageRequest
from billing.errors import BillingError, NotFound
from billing.invoices import collection, states
from billing.invoices import service as invoices
from billing.invoices.hosted import hosted_invoice_url
from billing.invoices.labels import normalize_locale
from billing.invoices.models import Invoice
from billing.invoices.search import InvoiceFilters, search_invoices
from billing.merchants import keys
from billing.merchants.service import merchant_name
from billing.notifications.emails import card_words
from billing.notifications.invoice_email import send_invoice_email
from billing.payments.refunds import list_refunds
from billing.payments.service import list_payments
from billing.reporting import exports, reports
from billing.services import Services
from billing.settings import service as merchant_settings
from billing.settings.schemas import DunningSettingsUpdate, SettingsUpdate
from billing.test_clocks.models import TestClock
from webhooks.events import list_events

PathText = Annotated[str, PathParameter(max_length=64)]
COOKIE = "billing_console"
LOGIN_COOKIE = "billing_console_login"
PER_PAGE = 25
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}


@dataclass(frozen=True)
class Viewer:
    """The logged-in person looking at a page."""

    row: ConsoleSession
    user: ConsoleUser
    locale: str
    ip: str | None

    @property
    def merchant_id(self) -> str:
        return self.user.merchant_id

    @property
    def email(self) -> str:
        return self.user.email

    @property
    def role(self) -> str:
        return self.user.role

    @property
    def is_admin(self) -> bool:
        return self.user.role == "admin"

    @property
    def csrf(self) -> str:
        return self.row.csrf_token

    @property
    def actor(self) -> Actor:
        return Actor(label=self.user.email, user_id=self.user.id, ip=self.ip)


def _ip(request: Request[Any, Any, Any]) -> str | None:
    return request.client.host if request.client else None


def _now() -> datetime:
    return SYSTEM_CLOCK.now()


def _html(body: str, status: int = 200, cookies: list[Cookie] | None = None) -> Response[str]:
    return Response(
        body, status_code=status, media_type="text/html; charset=utf-8", headers=_HEADERS, cookies=cookies
    )


def _redirect(path: str, cookies: list[Cookie] | None = None) -> Response[Any]:
    return Redirect(path, status_code=303, headers={"Cache-Control": "no-store"}, cookies=cookies)


def _safe_next(value: object) -> str:
    target = str(value or "")
    return target if target.startswith("/console") and not target.startswith("//") else "/console/invoices"


def make_console_router(services: Services) -> Router:
    secure = services.settings.env != "development"

    def session_cookie(token: str, *, max_age: int) -> Cookie:
        return Cookie(
            key=COOKIE,
            value=token,
            path="/console",
            httponly=True,
            samesite="lax",
            secure=secure,
            max_age=max_age,
        )

    async def viewer_of(db: AsyncSession, request: Request[Any, Any, Any]) -> Viewer | None:
        found = await users.find_session(db, request.cookies.get(COOKIE), _now())
        if found is None:
            return None
        row, user = found
        return Viewer(
            row, user, pick_locale(row.locale, request.headers.get("accept-language")), _ip(request)
        )

    async def gate(
        db: AsyncSession, request: Request[Any, Any, Any], *, admin: bool = False
    ) -> Viewer | Response[Any]:
        """The page's viewer, or the answer instead of the page: the login form (no live session) or the
        "admins only" page."""
        viewer = await viewer_of(db, request)
        if viewer is None:
            return to_login(request)
        if admin and not viewer.is_admin:
            return await message(
                viewer, db, 403, text("forbidden", viewer.locale), text("forbidden_body", viewer.locale)
            )
        return viewer

    def audit(
        db: AsyncSession, viewer: Viewer, action: str, object_type: str, object_id: str | None, **change: Any
    ) -> None:
        """The audit entry of the viewer's action, in the action's transaction."""
        record_audit(
            db,
            merchant_id=viewer.merchant_id,
            actor=viewer.actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            now=_now(),
            **change,
        )

    async def not_found(viewer: Viewer, db: AsyncSession) -> Response[str]:
        return await message(
            viewer, db, 404, text("not_found", viewer.locale), text("not_found_body", viewer.locale)
        )

    async def page(
        viewer: Viewer, db: AsyncSession, template: str, status: int = 200, **context: Any
    ) -> Response[str]:
        return _html(
            pages.render(
                template,
                viewer.locale,
                viewer=viewer,
                csrf=viewer.csrf,
                merchant=await merchant_name(db, viewer.merchant_id),
                notice=context.pop("notice", None),
                error=context.pop("error", None),
                **context,
            ),
            status,
        )

    async def message(
        viewer: Viewer, db: AsyncSession, status: int, heading: str, body: str
    ) -> Response[str]:
        return await page(
            viewer,
            db,
            "message.jinja",
            status,
            title=heading,
            heading=heading,
            body=body,
            active="",
            here="/console",
        )

    def to_login(request: Request[Any, Any, Any]) -> Response[Any]:
        return _redirect(
            "/console/login?" + urlencode({"expired": "1"})
            if request.cookies.get(COOKIE)
            else "/console/login"
        )

    def csrf_ok(viewer: Viewer, form: Any) -> bool:
        return users.csrf_matches(viewer.row, form.get("csrf_token"))

    # --- Login ------------------------------------------------------------------------------------------

    def login_page(
        locale: str,
        *,
        error: str | None = None,
        email: str = "",
        status: int = 200,
        notice: str | None = None,
    ) -> Response[str]:
        token = secrets.token_urlsafe(24)
        body = pages.render(
            "login.jinja",
            locale,
            title=text("login_title", locale),
            viewer=None,
            merchant=None,
            csrf=token,
            email=email,
            error=error,
            notice=notice,
            attempts=users.LOCKOUT_THRESHOLD,
            minutes=int(users.LOCKOUT_DURATION.total_seconds() // 60),
            active="",
            here="/console/login",
        )
        cookie = Cookie(
            key=LOGIN_COOKIE,
            value=token,
            path="/console",
            httponly=True,
            samesite="strict",
            secure=secure,
            max_age=3600,
        )
        return _html(body, status, cookies=[cookie])

    @get("/login")
    async def login_form(request: Request[Any, Any, Any]) -> Response[Any]:
        locale = pick_locale(request.query_params.get("locale"), request.headers.get("accept-language"))
        async with services.sessions() as db:
            if await viewer_of(db, request) is not None:
                return _redirect("/console/invoices")
        notice = None
        if request.query_params.get("expired"):
            notice = text("session_expired", locale)
        elif request.query_params.get("logged_out"):
            notice = text("logged_out", locale)
        return login_page(locale, notice=notice)

    @post("/login", status_code=200)
    async def login(request: Request[Any, Any, Any]) -> Response[Any]:
        form = await request.form()
        locale = pick_locale(request.query_params.get("locale"), request.headers.get("accept-language"))
        email = str(form.get("email") or "")[:320]
        submitted, expected = form.get("csrf_token"), request.cookies.get(LOGIN_COOKIE)
        if not submitted or not expected or not secrets.compare_digest(str(submitted), expected):
            return login_page(locale, error=text("form_expired", locale), email=email, status=403)
        now = _now()
        async with transaction(services.sessions) as db:
            outcome = await users.check_login(db, email, str(form.get("password") or ""), now)
            if outcome.user is not None and outcome.result != "ok":
                actor = Actor(label=outcome.user.email, user_id=outcome.user.id, ip=_ip(request))
                record_audit(
                    db,
                    merchant_id=outcome.user.merchant_id,
                    actor=actor,
                    action=(
                        "login.locked"
                        if outcome.just_locked
                        else "login.refused_locked"
                        if outcome.result == "locked"
                        else "login.failed"
                    ),
                    object_type="console_user",
                    object_id=outcome.user.id,
                    now=now,
                    after={
                        "failed_logins": outcome.user.failed_logins,
                        "locked_until": outcome.user.locked_until,
                    },
                )
            if outcome.result == "ok" and outcome.user is not None:
                opened = await users.open_session(
                    db, outcome.user, now, locale=normalize_locale(request.query_params.get("locale"))
                )
                record_audit(
                    db,
                    merchant_id=outcome.user.merchant_id,
                    actor=Actor(label=outcome.user.email, user_id=outcome.user.id, ip=_ip(request)),
                    action="login.succeeded",
                    object_type="console_user",
                    object_id=outcome.user.id,
                    now=now,
                )
        if outcome.result == "ok":
            cookie = session_cookie(opened.token, max_age=int(users.SESSION_MAX.total_seconds()))
            gone = Cookie(
                key=LOGIN_COOKIE, value="", path="/console", max_age=0, httponly=True, secure=secure
            )
            return _redirect("/console/invoices", cookies=[cookie, gone])
        if outcome.result == "locked" and outcome.user is not None and outcome.user.locked_until is not None:
            until = pages.when(outcome.user.locked_until, locale) + " UTC"
            return login_page(
                locale, error=text("login_locked", locale, until=until), email=email, status=429
            )
        return login_page(locale, error=text("login_invalid", locale), email=email, status=401)

    @post("/logout", status_code=303)
    async def logout(request: Request[Any, Any, Any]) -> Response[Any]:
        form = await request.form()
        async with transaction(services.sessions) as db:
            viewer = await viewer_of(db, request)
            if viewer is not None and csrf_ok(viewer, form):
                await users.end_session(db, viewer.row, _now())
                audit(
                    db,
                    viewer,
                    "logout",
                    "console_user",
                    viewer.user.id,
                )
            elif viewer is not None:
                return await message(
                    viewer, db, 403, text("forbidden", viewer.locale), text("form_expired", viewer.locale)
                )
        gone = session_cookie("", max_age=0)
        return _redirect("/console/login?logged_out=1", cookies=[gone])

    @post("/locale", status_code=303)
    async def switch_locale(request: Request[Any, Any, Any]) -> Response[Any]:
        form = await request.form()
        async with transaction(services.sessions) as db:
            viewer = await gate(db, request)
            if not isinstance(viewer, Viewer):
                return viewer
            if not csrf_ok(viewer, form):
                return await message(
                    viewer, db, 403, text("forbidden", viewer.locale), text("form_expired", viewer.locale)
                )
            chosen = normalize_locale(str(form.get("locale") or ""))
            if chosen is not None:
                await users.set_session_locale(db, viewer.row, chosen)
        return _redirect(_safe_next(form.get("next")))

    @get("/")
    async def home() -> Response[Any]:
        return _redirect("/console/invoices")

    @get("/static/console.css")
    async def stylesheet() -> Response[bytes]:
        return Response(
            pages.STYLESHEET,
            media_type="text/css; charset=utf-8",
            headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    # --- Invoices ---------------------------------------------------------------------------------------

    @get("/invoices")
    async def invoice_list(request: Request[Any, Any, Any]) -> Response[Any]:
        query = {
            key: request.query_params.get(key)
            for key in (
                "q",
                "status",
                "customer",
                "currency",
                "created[gte]",
                "created[lte]",
                "total_min",
                "total_max",
                "overdue",
                "sort",
                "dir",
                "page",
            )
        }
        async with services.sessions() as db:
            viewer = await gate(db, request)
            if not isinstance(viewer, Viewer):
                return viewer
            now = _now()
            error = None
            currency = query["currency"] or None
            try:
                total_gte = pages.parse_major(query["total_min"], currency)
                total_lte = pages.parse_major(query["total_max"], currency)
            except ValueError:
                total_gte = total_lte = None
                error = text(
                    "amount_invalid",
                    viewer.locale,
                    field=text("total", viewer.locale),
                    currency=currency or "",
                    digits=pages.decimals(currency) if currency else 2,
                )
            try:
                filters = InvoiceFilters.from_query(
                    {
                        **{
                            k: v
                            for k, v in query.items()
                            if k in ("q", "status", "customer", "currency", "created[gte]", "created[lte]")
                        },
                        "total[gte]": None if total_gte is None else str(total_gte),
                        "total[lte]": None if total_lte is None else str(total_lte),
                    },
                    overdue_at=now if query["overdue"] else None,
                )
            except BillingError as exc:
                filters = InvoiceFilters()
                error = text("action_failed", viewer.locale, reason=exc.message)
            sort = (
                query["sort"]
                if query["sort"] in ("created", "due_date", "total", "amount_remaining", "number", "status")
                else "created"
            )
            descending = query["dir"] != "asc"
            raw_page = query["page"] or ""
            page_number = int(raw_page) if raw_page.isdigit() and int(raw_page) > 0 else 1
            result = await search_invoices(
                db,
                viewer.merchant_id,
                filters,
                sort=sort,
                descending=descending,
                page=page_number,
                per_page=PER_PAGE,
            )
            currencies = sorted(
                (
                    await db.scalars(
                        select(Invoice.currency).where(Invoice.merchant_id == viewer.merchant_id).distinct()
                    )
                ).all()
            )

            def href(**changes: Any) -> str:
                params = {k: v for k, v in query.items() if v}
                params.update({k: v for k, v in changes.items()})
                return "/console/invoices?" + urlencode(
                    {k: v for k, v in params.items() if v not in (None, "")}
                )

            def sort_href(key: str) -> str:
                flip = "asc" if sort == key and descending else "desc"
                return href(sort=key, dir=flip, page=None)

            rows = []
            for found in result.rows:
                inv = found.invoice
                due = inv.due_date or inv.finalized_at
                overdue_days = (
                    (now - due).days if inv.status == states.OPEN and due is not None and due < now else 0
                )
                rows.append(
                    {
                        "id": inv.id,
                        "number": inv.number,
                        "customer": inv.customer_id,
                        "customer_name": found.customer_name,
                        "customer_email": found.customer_email,
                        "test_clock": found.test_clock_id,
                        "status": inv.status,
                        "total": inv.total,
                        "amount_remaining": inv.amount_remaining,
                        "currency": inv.currency,
                        "created_at": inv.created_at,
                        "due": inv.due_date,
                        "overdue_days": overdue_days,
                    }
                )
            return await page(
                viewer,
                db,
                "invoices.jinja",
                title=text("invoices_title", viewer.locale),
                active="invoices",
                here=href(),
                query=query,
                statuses=states.STATUSES,
                currencies=currencies,
                result=result,
                rows=rows,
                sort=sort,
                descending=descending,
                sort_href=sort_href,
                prev_href=href(page=result.page - 1) if result.page > 1 else None,
                next_href=href(page=result.page + 1) if result.page < result.pages else None,
                error=error,
            )

    async def invoice_page(
        db: AsyncSession,
        viewer: Viewer,
        invoice_id: str,
        *,
        status: int = 200,
        notice: str | None = None,
        error: str | None = None,
    ) -> Response[str]:
        try:
            inv = await invoices.get_invoice(db, viewer.merchant_id, invoice_id)
        except BillingError:
            return await not_found(viewer, db)
        lines = await invoices.invoice_lines(db, inv.id)
        customer = await db.get(Customer, inv.customer_id)
        payments = (await list_payments(db, viewer.merchant_id, PageRequest(100), invoice=inv.id)).rows
        refunds = []
        for payment in payments:
            refunds += (await list_refunds(db, viewer.merchant_id, PageRequest(100), payment=payment.id)).rows
        notes = (
            await credit_notes.list_credit_notes(db, viewer.merchant_id, PageRequest(100), invoice=inv.id)
        ).rows
        events = (await list_events(db, viewer.merchant_id, PageRequest(100), object_id=inv.id)).rows
        audit = (await list_audit(db, viewer.merchant_id, limit=50, object_id=inv.id)).entries
        taxes = [
            {
                "name": tax.tax_rate.display_name,
                "percentage": pages.format_number(tax.tax_rate.percentage, viewer.locale),
                "inclusive": tax.tax_rate.inclusive,
                "taxable": tax.taxable_amount,
                "amount": tax.amount,
            }
            for tax in await invoices.tax_by_rate(db, inv)
        ]
        now = _now()
        due = inv.due_date or inv.finalized_at
        actions: list[tuple[str, str, str]] = []
        if inv.status == states.DRAFT:
            actions.append(("finalize", "finalize", ""))
        if inv.status in (states.OPEN, states.UNCOLLECTIBLE) and inv.amount_remaining > 0:
            actions.append(("retry", "retry_payment", ""))
        if inv.status in (states.OPEN, states.PAID, states.UNCOLLECTIBLE):
            actions.append(("send", "resend_email", "secondary"))
        if inv.status == states.OPEN:
            actions.append(("mark_uncollectible", "mark_uncollectible", "secondary"))
        if inv.status in (states.OPEN, states.UNCOLLECTIBLE):
            actions.append(("void", "void", "danger"))
        creditable = (
            max(inv.total, 0) - inv.pre_payment_credit_notes_amount - inv.post_payment_credit_notes_amount
        )
        line_views = [
            {
                "description": line.description,
                "type": line.type,
                "period_start": line.period_start,
                "period_end": line.period_end,
                "quantity": pages.format_number(line.quantity, viewer.locale),
                "unit_price": pages.unit_price(line.unit_amount_decimal, inv.currency, viewer.locale)
                if line.unit_amount_decimal is not None
                else pages.money(line.amount, inv.currency, viewer.locale)
                if line.quantity == 1
                else "",
                "discount_amount": line.discount_amount,
                "tax_amount": line.tax_amount,
                "amount": line.amount,
                "tiers": (line.details or {}).get("tiers") or [],
            }
            for line in lines
        ]
        return await page(
            viewer,
            db,
            "invoice.jinja",
            status,
            title=f"{text('invoice', viewer.locale)} {inv.number or inv.id}",
            active="invoices",
            here=f"/console/invoices/{inv.id}",
            inv=inv,
            customer=customer,
            lines=line_views,
            taxes=taxes,
            payments=[{"row": p, "card": card_words(p.card_brand, p.card_last4)} for p in payments],
            refunds=refunds,
            credit_notes=notes,
            events=events,
            audit=audit,
            actions=actions,
            can_credit=inv.status in (states.OPEN, states.PAID, states.UNCOLLECTIBLE) and creditable > 0,
            creditable=creditable,
            credited=inv.pre_payment_credit_notes_amount + inv.post_payment_credit_notes_amount,
            overdue_days=(now - due).days
            if inv.status == states.OPEN and due is not None and due < now
            else 0,
            hosted_url=hosted_invoice_url(inv.hosted_token),
            form_key=secrets.token_urlsafe(16),
            notice=notice,
            error=error,
        )

    @get("/invoices/{invoice_id:str}")
    async def invoice_detail(request: Request[Any, Any, Any], invoice_id: PathText) -> Response[Any]:
        async with services.sessions() as db:
            viewer = await gate(db, request)
            if not isinstance(viewer, Viewer):
                return viewer
            done = request.query_params.get("done")
            notice = None
            if done in ("finalize", "void", "mark_uncollectible", "retry_paid", "retry_pending"):
                notice = text(f"done_{done}", viewer.locale)
            elif done == "retry_failed":
                notice = text(
                    "done_retry_failed", viewer.locale, reason=request.query_params.get("reason") or ""
                )
            elif done == "credit_note":
                notice = text(
                    "done_credit_note", viewer.locale, number=request.query_params.get("number") or ""
                )
            elif done == "email":
                notice = text("done_email", viewer.locale, email=request.query_params.get("to") or "")
            return await invoice_page(db, viewer, invoice_id, notice=notice)

    def snapshot(inv: Invoice) -> dict[str, Any]:
        return {
            "status": inv.status,
            "number": inv.number,
            "currency": inv.currency,
            "total": inv.total,
            "amount_due": inv.amount_due,
            "amount_paid": inv.amount_paid,
            "amount_remaining": inv.amount_remaining,
            "pre_payment_credit_notes_amount": inv.pre_payment_credit_notes_amount,
            "post_payment_credit_notes_amount": inv.post_payment_credit_notes_amount,
        }

    async def simple_action(
        db: AsyncSession, viewer: Viewer, invoice_id: PathText, action: PathText
    ) -> Invoice:
        before = snapshot(await invoices.get_invoice(db, viewer.merchant_id, invoice_id))
        if action == "finalize":
            inv = await invoices.finalize_invoice(db, viewer.merchant_id, invoice_id)
        elif action == "void":
            inv = await invoices.void_invoice(db, viewer.merchant_id, invoice_id)
        else:
            inv = await invoices.mark_uncollectible(db, viewer.merchant_id, invoice_id)
        audit(
            db,
            viewer,
            f"invoice.{action}",
            "invoice",
            inv.id,
            before=before,
            after=snapshot(inv),
        )
        return inv

    def amount_field(form: Any, name: str, label_key: str, inv: Invoice, locale: str) -> int | None:
        try:
            return pages.parse_major(str(form.get(name) or ""), inv.currency)
        except ValueError:
            raise _FormError(
                text(
                    "amount_invalid",
                    locale,
                    field=text(label_key, locale),
                    currency=inv.currency,
                    digits=pages.decimals(inv.currency),
                )
            ) from None

    @post("/invoices/{invoice_id:str}/{action:str}", status_code=303)
    async def invoice_action(
        request: Request[Any, Any, Any], invoice_id: PathText, action: PathText
    ) -> Response[Any]:
        form = await request.form()
        base = f"/console/invoices/{invoice_id}"
        task_id: str | None = None
        async with transaction(services.sessions) as db:
            viewer = await gate(db, request)
            if not isinstance(viewer, Viewer):
                return viewer
            if not csrf_ok(viewer, form):
                return await invoice_page(
                    db, viewer, invoice_id, status=403, error=text("form_expired", viewer.locale)
                )
            locale = viewer.locale
            savepoint = await db.begin_nested()
            try:
                if action in ("finalize", "void", "mark_uncollectible"):
                    await simple_action(db, viewer, invoice_id, action)
                    target = f"{base}?done={action}"
                elif action == "retry":
                    before = snapshot(await invoices.get_invoice(db, viewer.merchant_id, invoice_id))
                    inv = await collection.request_payment(db, viewer.merchant_id, invoice_id)
                    task_id = await collection.pending_collection(db, inv.id)
                    audit(
                        db,
                        viewer,
                        "invoice.retry_payment",
                        "invoice",
                        inv.id,
                        before=before,
                        after={**snapshot(inv), "collection_task": task_id},
                    )
                    target = base
                elif action == "send":
                    inv, email_id = await send_invoice_email(
                        db,
                        viewer.merchant_id,
                        invoice_id,
                        request_key=str(form.get("form_key") or "") or None,
                    )
                    customer = await db.get(Customer, inv.customer_id)
                    audit(
                        db,
                        viewer,
                        "invoice.email_sent",
                        "invoice",
                        inv.id,
                        after={"email": email_id, "to": customer.email if customer else None},
                    )
                    target = f"{base}?" + urlencode(
                        {"done": "email", "to": customer.email if customer else ""}
                    )
                elif action == "credit_note":
                    inv = await invoices.get_invoice(db, viewer.merchant_id, invoice_id)
                    before = snapshot(inv)
                    amount = amount_field(form, "amount", "cn_amount", inv, locale)
                    reason = str(form.get("reason") or "") or None
                    memo = str(form.get("memo") or "").strip() or None
                    params = CreditNoteCreate(
                        invoice=inv.id,
                        amount=amount,
                        reason=reason,  # type: ignore[arg-type]
                        memo=memo,
                        refund_amount=amount_field(form, "refund_amount", "cn_refund", inv, locale),
                        credit_amount=amount_field(form, "credit_amount", "cn_credit", inv, locale),
                        out_of_band_amount=amount_field(
                            form, "out_of_band_amount", "cn_out_of_band", inv, locale
                        ),
                    )
                    if reason not in (
                        None,
                        "duplicate",
                        "fraudulent",
                        "order_change",
                        "product_unsatisfactory",
                    ):
                        raise _FormError(text("action_failed", locale, reason=f"reason {reason!r}"))
                    if amount is None or amount <= 0:
                        raise _FormError(
                            text(
                                "amount_invalid",
                                locale,
                                field=text("cn_amount", locale),
                                currency=inv.currency,
                                digits=pages.decimals(inv.currency),
                            )
                        )
                    note = await credit_notes.create_credit_note(
                        db,
                        services,
                        viewer.merchant_id,
                        params,
                        idempotency_key=f"console:{viewer.row.id}:{form.get('form_key')}",
                    )
                    inv = await invoices.get_invoice(db, viewer.merchant_id, invoice_id)
                    audit(
                        db,
                        viewer,
                        "credit_note.created",
                        "invoice",
                        inv.id,
                        before=before,
                        after={
                            "invoice": snapshot(inv),
                            "credit_note": await credit_notes.render_note(db, note),
                        },
                    )
                    target = f"{base}?" + urlencode({"done": "credit_note", "number": note.number})
                else:
                    return await not_found(viewer, db)
            except (BillingError, _FormError) as exc:
                await savepoint.rollback()
                # What the savepoint touched is expired; the page reads everything again, the viewer too.
                await db.refresh(viewer.user)
                await db.refresh(viewer.row)
                reason_text = exc.message if isinstance(exc, BillingError) else str(exc)
                shown = (
                    reason_text
                    if isinstance(exc, _FormError)
                    else text("action_failed", locale, reason=reason_text)
                )
                status = (
                    404 if isinstance(exc, NotFound) else 409 if getattr(exc, "status", 400) == 409 else 400
                )
                return await invoice_page(db, viewer, invoice_id, status=status, error=shown)
            await savepoint.commit()
        if task_id is not None:
            # Committed first (the task and its audit entry), then charged at once, as the API's pay does (one
            # pooled connection at a time, the gateway call within the process's bound).
            await collection.collect_now(services, task_id)
            async with services.sessions() as db:
                inv = await invoices.get_invoice(db, viewer.merchant_id, invoice_id)
                if inv.status == states.PAID:
                    target = f"{base}?done=retry_paid"
                else:
                    payment = await collection.latest_payment(db, invoice_id)
                    if payment is not None and payment.status == "pending":
                        target = f"{base}?done=retry_pending"
                    else:
                        error = inv.last_payment_error or {}
                        target = f"{base}?" + urlencode(
                            {
                                "done": "retry_failed",
                                "reason": str(error.get("message") or error.get("code") or ""),
                            }
                        )
        return _redirect(target)

    # --- Audit, exports -----------------------------------------------------------------------------------

    @get("/audit")
    async def audit_page(request: Request[Any, Any, Any]) -> Response[Any]:
        raw_page = request.query_params.get("page") or "1"
        number = int(raw_page) if raw_page.isdigit() and int(raw_page) > 0 else 1
        async with services.sessions() as db:
            viewer = await gate(db, request)
            if not isinstance(viewer, Viewer):
                return viewer
            found = await list_audit(db, viewer.merchant_id, limit=50, offset=(number - 1) * 50)
            return await page(
                viewer,
                db,
                "audit.jinja",
                title=text("audit_title", viewer.locale),
                active="audit",
                here="/console/audit",
                audit=found.entries,
                page=number,
                pages=max(1, -(-found.total // 50)),
                total=found.total,
            )

    @get("/exports")
    async def exports_page(request: Request[Any, Any, Any]) -> Response[Any]:
        async with services.sessions() as db:
            viewer = await gate(db, request)
            if not isinstance(viewer, Viewer):
                return viewer
            today = _now().date()
            return await page(
                viewer,
                db,
                "exports.jinja",
                title=text("exports_title", viewer.locale),
                active="exports",
                here="/console/exports",
                names=exports.NAMES,
                date_from=today.replace(day=1).isoformat(),
                date_to=today.isoformat(),
            )

    @get("/exports/{name:str}")
    async def export_file(request: Request[Any, Any, Any], name: PathText) -> Response[Any]:
        async with services.sessions() as db:
            viewer = await gate(db, request)
            if not isinstance(viewer, Viewer):
                return viewer
            if not name.endswith(".csv"):
                return await not_found(viewer, db)
            try:
                wanted = exports.export_request(
                    name[: -len(".csv")], request.query_params.get("from"), request.query_params.get("to")
                )
            except BillingError as exc:
                status = 404 if exc.param == "name" else 400
                return await message(viewer, db, status, text("exports_title", viewer.locale), exc.message)
            merchant_id = viewer.merchant_id
        # The page's connection is back in the pool; the export streams from its own cursor.
        return Stream(
            exports.stream_csv(services.engine, merchant_id, wanted),
            media_type="text/csv; charset=utf-8",
            headers={**_HEADERS, "Content-Disposition": f'attachment; filename="{wanted.filename}"'},
        )

    # --- Reports ------------------------------------------------------------------------------------------

    @get("/reports")
    async def reports_home(request: Request[Any, Any, Any]) -> Response[Any]:
        return _redirect("/console/reports/mrr" + (f"?{request.url.query}" if request.url.query else ""))

    @get("/reports/{name:str}")
    async def report_page(request: Request[Any, Any, Any], name: PathText) -> Response[Any]:
        params = {k: request.query_params.get(k) or "" for k in ("test_clock", "from", "to")}
        async with services.sessions() as db:
            viewer = await gate(db, request)
            if not isinstance(viewer, Viewer):
                return viewer
            if name not in reports.NAMES:
                return await not_found(viewer, db)
            error = None
            try:
                scope = await reports.resolve_scope(
                    db,
                    viewer.merchant_id,
                    SYSTEM_CLOCK,
                    test_clock=params["test_clock"] or None,
                    month_from=params["from"] or None,
                    month_to=params["to"] or None,
                )
            except BillingError as exc:
                error = text("action_failed", viewer.locale, reason=exc.message)
                params = {"test_clock": "", "from": "", "to": ""}
                scope = await reports.resolve_scope(db, viewer.merchant_id, SYSTEM_CLOCK)
            report = await reports.build_report(db, name, scope)
            clocks = (
                await db.execute(
                    select(TestClock.id, TestClock.name)
                    .where(TestClock.merchant_id == viewer.merchant_id, TestClock.deleted_at.is_(None))
                    .order_by(TestClock.seq.desc())
                    .limit(50)
                )
            ).all()
            query = urlencode({k: v for k, v in params.items() if v})

            def scope_href(key: str) -> str:
                return f"/console/reports/{key}" + (f"?{query}" if query else "")

            return await page(
                viewer,
                db,
                "reports.jinja",
                title=text("reports_title", viewer.locale),
                active="reports",
                here=scope_href(name),
                report=name,
                report_nav=REPORT_NAV,
                scope_href=scope_href,
                sections=sections_for(report, viewer.locale),
                clocks=[(cid, cname or cid) for cid, cname in clocks],
                test_clock=scope.test_clock_id or "",
                month_from=scope.months[0].label,
                month_to=scope.months[-1].label,
                as_of=scope.now,
                json_href=f"/v1/reports/{name}" + (f"?{query}" if query else ""),
                error=error,
            )

    # --- Admin: API keys, settings -----------------------------------------------------------------------

    async def keys_page(
        db: AsyncSession,
        viewer: Viewer,
        *,
        status: int = 200,
        new_key: str | None = None,
        notice: str | None = None,
        error: str | None = None,
    ) -> Response[str]:
        return await page(
            viewer,
            db,
            "keys.jinja",
            status,
            title=text("keys_title", viewer.locale),
            active="keys",
            here="/console/keys",
            keys=await keys.list_keys(db, viewer.merchant_id, _now()),
            new_key=new_key,
            notice=notice,
            error=error,
        )

    @get("/keys")
    async def keys_list(request: Request[Any, Any, Any]) -> Response[Any]:
        async with services.sessions() as db:
            viewer = await gate(db, request, admin=True)
            if not isinstance(viewer, Viewer):
                return viewer
            return await keys_page(db, viewer)

    @post("/keys/{key_id:str}/{action:str}", status_code=200)
    async def key_action(
        request: Request[Any, Any, Any], key_id: PathText, action: PathText
    ) -> Response[Any]:
        return await _key_change(request, key_id, action)

    @post("/keys", status_code=200)
    async def key_create(request: Request[Any, Any, Any]) -> Response[Any]:
        return await _key_change(request, None, "create")

    async def _key_change(request: Request[Any, Any, Any], key_id: str | None, action: str) -> Response[Any]:
        form = await request.form()
        async with transaction(services.sessions) as db:
            viewer = await gate(db, request, admin=True)
            if not isinstance(viewer, Viewer):
                return viewer
            locale = viewer.locale
            if not csrf_ok(viewer, form):
                return await keys_page(db, viewer, status=403, error=text("form_expired", locale))
            now = _now()
            savepoint = await db.begin_nested()
            try:
                if action == "create":
                    issued = await key_actions.create_key(
                        db, viewer.merchant_id, str(form.get("kind") or "secret"), viewer.actor, now
                    )
                    await savepoint.commit()
                    return await keys_page(
                        db,
                        viewer,
                        new_key=issued.secret,
                        notice=text("key_created", locale, id=issued.key.id),
                    )
                if action == "roll" and key_id is not None:
                    raw = str(form.get("expires_in_hours") or "").strip()
                    hours = int(raw) if raw.lstrip("-").isdigit() else None
                    old, issued = await key_actions.roll_key(
                        db, viewer.merchant_id, key_id, keys.roll_grace(hours), viewer.actor, now
                    )
                    await savepoint.commit()
                    until = pages.when(old.expires_at, locale) + " UTC"
                    return await keys_page(
                        db,
                        viewer,
                        new_key=issued.secret,
                        notice=text("key_rolled", locale, old=old.id, until=until, id=issued.key.id),
                    )
                if action == "revoke" and key_id is not None:
                    await key_actions.revoke_key(db, viewer.merchant_id, key_id, viewer.actor, now)
                    await savepoint.commit()
                    return await keys_page(db, viewer, notice=text("key_revoked_done", locale, id=key_id))
                return await not_found(viewer, db)
            except BillingError as exc:
                await savepoint.rollback()
                status = 404 if isinstance(exc, NotFound) else exc.status
                return await keys_page(
                    db, viewer, status=status, error=text("action_failed", locale, reason=exc.message)
                )

    async def settings_page(
        db: AsyncSession,
        viewer: Viewer,
        *,
        status: int = 200,
        notice: str | None = None,
        error: str | None = None,
    ) -> Response[str]:
        current = merchant_settings.render_settings(
            await merchant_settings.get_settings(db, viewer.merchant_id)
        )
        return await page(
            viewer,
            db,
            "settings.jinja",
            status,
            title=text("settings_title", viewer.locale),
            active="settings",
            here="/console/settings",
            schedule=", ".join(str(d) for d in current.dunning.retry_schedule_days),
            final_action=current.dunning.final_action,
            smart_retries=current.dunning.smart_retries,
            gateways=current.gateways,
            notice=notice,
            error=error,
        )

    @get("/settings")
    async def settings_form(request: Request[Any, Any, Any]) -> Response[Any]:
        async with services.sessions() as db:
            viewer = await gate(db, request, admin=True)
            if not isinstance(viewer, Viewer):
                return viewer
            return await settings_page(
                db,
                viewer,
                notice=text("settings_saved", viewer.locale) if request.query_params.get("saved") else None,
            )

    @post("/settings", status_code=303)
    async def settings_save(request: Request[Any, Any, Any]) -> Response[Any]:
        form = await request.form()
        async with transaction(services.sessions) as db:
            viewer = await gate(db, request, admin=True)
            if not isinstance(viewer, Viewer):
                return viewer
            if not csrf_ok(viewer, form):
                return await settings_page(db, viewer, status=403, error=text("form_expired", viewer.locale))
            raw_days = [
                part.strip() for part in str(form.get("retry_schedule_days") or "").split(",") if part.strip()
            ]
            savepoint = await db.begin_nested()
            try:
                before = merchant_settings.render_settings(
                    await merchant_settings.get_settings(db, viewer.merchant_id)
                )
                days = (
                    [int(part) for part in raw_days]
                    if all(p.lstrip("-").isdigit() for p in raw_days)
                    else None
                )
                if days is None:
                    raise BillingError(text("retry_schedule_hint", viewer.locale))
                final_action = str(form.get("final_action") or "cancel")
                if final_action not in ("cancel", "unpaid", "past_due"):
                    raise BillingError("final_action must be cancel, unpaid or past_due.")
                update = SettingsUpdate(
                    dunning=DunningSettingsUpdate(
                        retry_schedule_days=days,
                        final_action=final_action,  # type: ignore[arg-type]
                        smart_retries=bool(form.get("smart_retries")),
                    )
                )
                merchant = await merchant_settings.update_settings(
                    db, viewer.merchant_id, update, production=services.settings.is_production
                )
                audit(
                    db,
                    viewer,
                    "settings.updated",
                    "settings",
                    viewer.merchant_id,
                    before=before,
                    after=merchant_settings.render_settings(merchant),
                )
            except BillingError as exc:
                await savepoint.rollback()
                return await settings_page(
                    db, viewer, status=400, error=text("action_failed", viewer.locale, reason=exc.message)
                )
            await savepoint.commit()
        return _redirect("/console/settings?saved=1")

    money_views = make_money_views(
        services,
        ConsoleTools(
            gate=gate,
            is_viewer=lambda found: isinstance(found, Viewer),
            page=page,
            message=message,
            audit=audit,
            csrf_ok=csrf_ok,
        ),
    )

    return Router(
        path="/console",
        route_handlers=[
            *money_views,
            home,
            stylesheet,
            login_form,
            login,
            logout,
            switch_locale,
            invoice_list,
            invoice_detail,
            invoice_action,
            audit_page,
            exports_page,
            export_file,
            reports_home,
            report_page,
            keys_list,
            key_create,
            key_action,
            settings_form,
            settings_save,
        ],
        include_in_schema=False,
    )


class _FormError(Exception):
    """A form field a person must correct; the message is already in their language."""
