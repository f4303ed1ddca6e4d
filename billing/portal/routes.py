"""HTTP of the portal: `POST /v1/portal_sessions` (API), and the hosted pages under /portal that a session's
link opens (docs/portal.md). Handlers parse, call billing.portal (views to show, actions to do), render.

Pages are outside /v1 and take no API key. A link (`/portal/s/<token>`) starts a login: an HttpOnly, SameSite=Lax
cookie (Secure outside development) scoped to /portal, then a redirect to a URL without the token. Every form
carries the login's CSRF token and a random form key (billing.portal.guard): a form posts once. After a POST the
browser is redirected (303), so a reload does nothing twice. Charges run after the form's transaction commits,
with no transaction of the request open (billing.portal.actions.collect_now).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from litestar import Controller, Request, Response, Router, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.response import Redirect
from sqlalchemy.ext.asyncio import AsyncSession

from billing.api.context import RequestContext
from billing.api.openapi import ERROR_RESPONSES
from billing.catalog.plans import get_plan, priced_plan
from billing.clock import utc_now
from billing.customers.service import get_customer
from billing.db.engine import transaction
from billing.db.pagination import PageRequest
from billing.errors import BillingError
from billing.invoices import collection
from billing.invoices.hosted import find_invoice_by_token
from billing.invoices.labels import normalize_locale
from billing.invoices.search import InvoiceFilters
from billing.invoices.service import list_invoices
from billing.notifications.emails import card_words
from billing.payment_methods.service import EnteredCard
from billing.portal import actions, guard, schemas, service, tokens, views
from billing.portal.links import INVOICE_SESSION_LIFETIME, open_portal_session
from billing.portal.models import PortalSession
from billing.portal.render import Frame, page_headers, render, stylesheet
from billing.portal.texts import text
from billing.services import Services
from billing.settings.branding import DEFAULT_ACCENT, Branding
from billing.settings.logo import load_logo
from billing.settings.schemas import PortalSettings
from billing.settings.service import get_settings, merchant_branding, portal_settings
from billing.subscriptions import states
from billing.subscriptions.preview import preview_change
from billing.test_clocks.service import clock_for


class PortalSessionsController(Controller):
    path = "/portal_sessions"
    tags = ["portal_sessions"]  # noqa: RUF012

    @post(
        "/",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Create a portal session: a one-hour, single-use link into the customer's billing portal",
        description="Redirect the customer to `url` at once: it is a bearer secret, shown only in this "
        "response, valid for one hour (in the customer's clock), and it opens the portal once (a second open "
        "shows a page that sends the customer back to `return_url`). The portal shows the customer's "
        "subscriptions, plan changes with a proration preview, cancellation, payment methods, invoices and "
        "billing details, in English or Simplified Chinese. `flow` opens one task directly.",
    )
    async def create(
        self, ctx: NamedDependency[RequestContext], data: JSONBody[schemas.PortalSessionCreate]
    ) -> schemas.PortalSession:
        opened = await service.create_portal_session(ctx.session, ctx.merchant_id, data)
        return service.render_portal_session(opened)


Token = Annotated[str, PathParameter(description="The signed token of a portal link.", max_length=200)]
SubscriptionId = Annotated[str, PathParameter(max_length=64)]
InvoiceId = Annotated[str, PathParameter(max_length=64)]
MethodId = Annotated[str, PathParameter(max_length=64)]
Notice = Annotated[str | None, QueryParameter(description="What the last form did.", max_length=40)]
Ref = Annotated[str | None, QueryParameter(description="The object the notice is about.", max_length=64)]
PlanParam = Annotated[str | None, QueryParameter(description="The plan to change to.", max_length=64)]
QuantityParam = Annotated[str | None, QueryParameter(description="The new quantity.", max_length=12)]
LocaleParam = Annotated[str | None, QueryParameter(description="en or zh-CN.", max_length=8)]
AnyRequest = Request[Any, Any, Any]
Refusal = Callable[[AsyncSession, "Ctx", "actions.PortalRefusal"], Awaitable[Response[str]]]


@dataclass(frozen=True)
class Ctx:
    """A request of a live login: who, in which language, under which of the merchant's settings."""

    found: service.FoundLogin
    locale: str
    words: views.Words
    settings: PortalSettings
    brand: Branding

    def frame(self, section: str, path: str, **extra: Any) -> Frame:
        found = self.found
        return Frame(
            locale=self.locale,
            brand=self.brand,
            logo_src="/portal/logo" if self.brand.logo_url else None,
            csrf=found.login.csrf_token,
            section=section,
            navigation=not found.restricted,
            return_url=found.link.return_url,
            session_until=self.words.moment(found.login.expires_at),
            path=path,
            **extra,
        )


@dataclass(frozen=True)
class Done:
    """Where a form's post leads, and what runs once its transaction committed (a charge): that may return
    another place to lead to."""

    location: str
    after: Callable[[], Awaitable[str | None]] | None = None


def _html(body: str, frame: Frame, status: int = 200, cookies: list[Cookie] | None = None) -> Response[str]:
    return Response(
        body,
        status_code=status,
        media_type="text/html; charset=utf-8",
        headers=page_headers(frame),
        cookies=cookies or [],
    )


def _page(template: str, frame: Frame, status: int = 200, **data: Any) -> Response[str]:
    return _html(render(template, frame, **data), frame, status)


def _message(
    frame: Frame,
    title_key: str,
    body_key: str,
    status: int,
    back_url: str | None = None,
    back_key: str = "back",
) -> Response[str]:
    loc = frame.locale
    back_label = text(back_key, loc, merchant=frame.brand.name)
    return _page(
        "message.html",
        frame,
        status,
        title=text(title_key, loc),
        body=text(body_key, loc, merchant=frame.brand.name),
        back_url=back_url,
        back_label=back_label,
    )


def _anonymous_frame(request: AnyRequest, locale: str | None = None, brand: Branding | None = None) -> Frame:
    chosen = (
        normalize_locale(locale) or service.accepted_locale(request.headers.get("accept-language")) or "en"
    )
    return Frame(
        locale=chosen,
        brand=brand
        or Branding(
            name=text("portal", chosen), logo_url=None, accent_color=DEFAULT_ACCENT, support_email=None
        ),
    )


def _login_cookie(secret: str | None, *, secure: bool, max_age: int) -> Cookie:
    return Cookie(
        key=service.COOKIE,
        value=secret or "",
        path=service.COOKIE_PATH,
        max_age=max_age,
        httponly=True,
        secure=secure,
        samesite="lax",
    )


def _local_path(value: object, fallback: str = "/portal/") -> str:
    """A path inside the portal to go back to, never another site."""
    path = str(value or "")
    if not path.startswith("/portal/") or "//" in path or "\\" in path or any(ord(c) < 33 for c in path):
        return fallback
    return path


def _with_notice(path: str, notice: str, ref: str | None = None) -> str:
    query = {"notice": notice, **({"ref": ref} if ref else {})}
    return f"{path}?{urlencode(query)}"


def make_portal_router(services: Services) -> Router:
    secure_cookie = services.settings.env != "development"

    async def load(session: AsyncSession, request: AnyRequest) -> Ctx | None:
        found = await service.find_login(session, request.cookies.get(service.COOKIE))
        if found is None:
            return None
        merchant = await get_settings(session, found.customer.merchant_id)
        locale = service.page_locale(found, request.headers.get("accept-language"))
        return Ctx(
            found=found,
            locale=locale,
            words=views.words_for(found, locale),
            settings=portal_settings(merchant.settings or {}),
            brand=merchant_branding(merchant),
        )

    def signed_out(request: AnyRequest) -> Response[str]:
        frame = _anonymous_frame(request)
        return _message(frame, "session_ended_title", "session_ended_body", 401)

    def not_found(ctx: Ctx) -> Response[str]:
        frame = ctx.frame("", "/portal/")
        home = None if ctx.found.restricted else "/portal/"
        return _message(
            frame, "not_found_title", "not_found_body", 404, back_url=home, back_key="nav_overview"
        )

    async def notices(
        session: AsyncSession, ctx: Ctx, notice: str | None, ref: str | None
    ) -> tuple[str | None, str | None]:
        """The words of `?notice=` (and the object `ref` it is about, if this customer's): (notice, error)."""
        loc, words = ctx.locale, ctx.words
        simple = {
            "defaulted": "defaulted",
            "removed": "removed",
            "agreement_started": "agreement_started",
            "cancelled_now": "cancelled_now_notice",
            "renewed": "renewed_notice",
            "saved": "saved",
            "tax_id_removed": "tax_id_removed",
            "in_progress": "in_progress",
        }
        if notice in simple:
            return text(simple[notice], loc), None
        if notice == "cancel_scheduled" and ref:
            sub = await views.owned_subscription(session, ctx.found, ref)
            if sub is not None:
                return text("cancel_scheduled_notice", loc, date=words.day(sub.current_period_end)), None
        if notice in ("paid", "card_added", "changed"):
            invoice = await views.owned_invoice(session, ctx.found, ref) if ref else None
            first = {"card_added": text("card_added", loc), "changed": text("changed_notice", loc)}.get(
                notice
            )
            if invoice is None:
                return first, None
            payment = await collection.latest_payment(session, invoice.id)
            number = invoice.number or invoice.id
            amount = words.money(invoice.amount_paid or invoice.amount_due, invoice.currency)
            if invoice.status == "paid":
                if notice == "changed":
                    return text("changed_paid_notice", loc, amount=amount), None
                if notice == "card_added":
                    return f"{first} {text('retried_paid', loc, number=number, amount=amount)}", None
                card = card_words(payment.card_brand, payment.card_last4) if payment else None
                if card:
                    return text("paid_notice", loc, number=number, amount=amount, card=card), None
                return text("paid_notice_plain", loc, number=number), None
            if payment is not None and payment.status == "pending":
                return first, text("pay_pending", loc)
            reason = words.decline(
                payment.failure_code if payment else (invoice.last_payment_error or {}).get("code")
            )
            due = words.money(invoice.amount_remaining, invoice.currency)
            if notice == "changed":
                return None, text("changed_failed_notice", loc, amount=due, reason=reason, number=number)
            if notice == "card_added":
                return first, text("retried_failed", loc, number=number, amount=due, reason=reason)
            return None, text("pay_failed", loc, reason=reason)
        return None, None

    # --- pages -------------------------------------------------------------------------------------------------

    async def overview_page(
        session: AsyncSession,
        ctx: Ctx,
        notice: str | None = None,
        error: str | None = None,
        status: int = 200,
    ) -> Response[str]:
        if ctx.found.restricted:
            return Redirect(service.landing_path(ctx.found.link), status_code=303)
        data = await views.overview(session, ctx.found, ctx.words, ctx.settings)
        return _page(
            "overview.html", ctx.frame("overview", "/portal/", notice=notice, error=error), status, **data
        )

    async def methods_page(
        session: AsyncSession,
        ctx: Ctx,
        notice: str | None = None,
        error: str | None = None,
        status: int = 200,
    ) -> Response[str]:
        now = utc_now()
        left = await guard.card_attempts_left(session, ctx.found.link.id, now)
        return _page(
            "payment_methods.html",
            ctx.frame("payment_methods", "/portal/payment_methods", notice=notice, error=error),
            status,
            methods=await views.methods(session, ctx.found, ctx.words),
            agreements=[
                (kind, views.channel_name(kind, ctx.locale))
                for kind in await views.agreement_types(session, ctx.found.customer.merchant_id)
            ],
            attempts_left=left if left <= 2 else None,
            default_pays=await views.pays_subscription(session, ctx.found),
        )

    async def invoices_page(
        session: AsyncSession,
        ctx: Ctx,
        notice: str | None = None,
        error: str | None = None,
        status: int = 200,
    ) -> Response[str]:
        rows = await views.invoices(session, ctx.found, ctx.words)
        return _page(
            "invoices.html",
            ctx.frame("invoices", "/portal/invoices", notice=notice, error=error),
            status,
            rows=rows,
            open_count=sum(1 for row in rows if row.pay_href),
        )

    async def pay_page(
        session: AsyncSession,
        ctx: Ctx,
        invoice_id: str,
        notice: str | None = None,
        error: str | None = None,
        status: int = 200,
    ) -> Response[str]:
        invoice = await views.owned_invoice(session, ctx.found, invoice_id)
        if invoice is None:
            return not_found(ctx)
        return _page(
            "pay.html",
            ctx.frame("invoices", f"/portal/invoices/{invoice.id}/pay", notice=notice, error=error),
            status,
            invoice=views.invoice_summary(invoice, ctx.words),
            methods=await views.chargeable_methods(session, ctx.found, ctx.words),
            restricted=ctx.found.restricted,
        )

    async def billing_page(
        session: AsyncSession,
        ctx: Ctx,
        notice: str | None = None,
        error: str | None = None,
        status: int = 200,
    ) -> Response[str]:
        return _page(
            "billing.html",
            ctx.frame("billing", "/portal/billing", notice=notice, error=error),
            status,
            details=views.billing_details(ctx.found, ctx.words),
        )

    async def change_page(
        session: AsyncSession,
        ctx: Ctx,
        subscription_id: str,
        *,
        plan: str | None = None,
        quantity: str | None = None,
        error: str | None = None,
        status: int = 200,
    ) -> Response[str]:
        sub = await views.owned_subscription(session, ctx.found, subscription_id)
        if sub is None or ctx.found.restricted:
            return not_found(ctx)
        path = f"/portal/subscriptions/{sub.id}/change"
        if not views.changeable(sub, ctx.settings):
            frame = ctx.frame("overview", path)
            return _message(
                frame, "change_title", "change_not_allowed", 409, back_url="/portal/", back_key="back"
            )
        choices = await views.plan_choices(session, ctx.found, sub, ctx.words)
        shown_quantity = quantity if quantity and quantity.isdigit() else str(sub.quantity)
        return _page(
            "change.html",
            ctx.frame("overview", path, error=error),
            status,
            subscription=sub.id,
            plans=choices,
            chosen_plan=plan if plan and views.offered(choices, plan) else sub.plan_id,
            quantity=shown_quantity,
        )

    async def cancel_page(
        session: AsyncSession, ctx: Ctx, subscription_id: str, error: str | None = None, status: int = 200
    ) -> Response[str]:
        sub = await views.owned_subscription(session, ctx.found, subscription_id)
        if sub is None or ctx.found.restricted:
            return not_found(ctx)
        path = f"/portal/subscriptions/{sub.id}/cancel"
        if ctx.settings.cancel_mode == "disabled" or sub.status in states.ENDED or sub.cancel_at_period_end:
            frame = ctx.frame("overview", path)
            body = _message(frame, "cancel_title", "cancel_not_allowed", 409, back_url="/portal/")
            if sub.cancel_at_period_end:
                return Redirect("/portal/", status_code=303)
            return body
        plan = priced_plan(await get_plan(session, sub.merchant_id, sub.plan_id), sub.price_overrides)
        note = "cancel_now_credit" if ctx.settings.cancel_now_prorate else "cancel_now_no_credit"
        return _page(
            "cancel.html",
            ctx.frame("overview", path, error=error),
            status,
            subscription=sub.id,
            plan=plan.name,
            period_end=ctx.words.day(sub.current_period_end),
            allow_now=ctx.settings.cancel_mode == "at_period_end_or_now",
            now_note=text(note, ctx.locale),
            reasons=views.cancellation_reasons(ctx.locale),
        )

    # The GET pages: a live login, or the "session ended" page.
    async def show(
        request: AnyRequest, build: Callable[[AsyncSession, Ctx], Awaitable[Response[str]]]
    ) -> Response[str]:
        async with services.sessions() as session:
            ctx = await load(session, request)
            if ctx is None:
                return signed_out(request)
            return await build(session, ctx)

    PageBuilder = Callable[[AsyncSession, Ctx, str | None, str | None], Awaitable[Response[str]]]

    async def show_page(
        request: AnyRequest,
        page: PageBuilder,
        notice: str | None,
        ref: str | None,
        *,
        whole_portal: bool = True,
    ) -> Response[str]:
        """A page with the words of the last form's notice; `whole_portal` pages are not for a hosted
        invoice's session."""

        async def build(session: AsyncSession, ctx: Ctx) -> Response[str]:
            if whole_portal and ctx.found.restricted:
                return not_found(ctx)
            shown, error = await notices(session, ctx, notice, ref)
            return await page(session, ctx, shown, error)

        return await show(request, build)

    def refuse_with(page: Callable[..., Awaitable[Response[str]]]) -> Refusal:
        """A form's refusal shown on `page`, with the refusal's words and status."""

        async def refused(session: AsyncSession, ctx: Ctx, refusal: actions.PortalRefusal) -> Response[str]:
            return await page(session, ctx, error=refusal.words(ctx.locale), status=refusal.status)

        return refused

    @get("/", include_in_schema=False, security=[])
    async def overview(request: AnyRequest, notice: Notice = None, ref: Ref = None) -> Response[str]:
        # A hosted invoice's session is sent on to its invoice by the overview itself.
        return await show_page(request, overview_page, notice, ref, whole_portal=False)

    @get("/payment_methods", include_in_schema=False, security=[])
    async def payment_methods(request: AnyRequest, notice: Notice = None, ref: Ref = None) -> Response[str]:
        return await show_page(request, methods_page, notice, ref)

    @get("/invoices", include_in_schema=False, security=[])
    async def invoices(request: AnyRequest, notice: Notice = None, ref: Ref = None) -> Response[str]:
        return await show_page(request, invoices_page, notice, ref)

    @get("/invoices/{invoice_id:str}/pay", include_in_schema=False, security=[])
    async def pay(
        request: AnyRequest, invoice_id: InvoiceId, notice: Notice = None, ref: Ref = None
    ) -> Response[str]:
        async def page(
            session: AsyncSession, ctx: Ctx, shown: str | None, error: str | None
        ) -> Response[str]:
            return await pay_page(session, ctx, invoice_id, shown, error)

        return await show_page(request, page, notice, ref, whole_portal=False)

    @get("/billing", include_in_schema=False, security=[])
    async def billing(request: AnyRequest, notice: Notice = None) -> Response[str]:
        return await show_page(request, billing_page, notice, None)

    @get("/subscriptions/{subscription_id:str}/change", include_in_schema=False, security=[])
    async def change(
        request: AnyRequest,
        subscription_id: SubscriptionId,
        plan: PlanParam = None,
        quantity: QuantityParam = None,
    ) -> Response[str]:
        async def build(session: AsyncSession, ctx: Ctx) -> Response[str]:
            return await change_page(session, ctx, subscription_id, plan=plan, quantity=quantity)

        return await show(request, build)

    @get("/subscriptions/{subscription_id:str}/cancel", include_in_schema=False, security=[])
    async def cancel(request: AnyRequest, subscription_id: SubscriptionId) -> Response[str]:
        async def build(session: AsyncSession, ctx: Ctx) -> Response[str]:
            return await cancel_page(session, ctx, subscription_id)

        return await show(request, build)

    async def preview_response(
        request: AnyRequest,
        subscription_id: str,
        plan: str | None,
        quantity: str | None,
        warning: str | None = None,
    ) -> Response[str]:
        """The proration preview: the change made and rolled back in a session of its own (see
        billing.subscriptions.preview), after the page's facts were read in another."""
        async with services.sessions() as session:
            ctx = await load(session, request)
            if ctx is None:
                return signed_out(request)
            try:
                amount = actions.parse_quantity(quantity)
                params = await actions.checked_change(
                    session, ctx.found, ctx.settings, subscription_id, str(plan or ""), amount, ctx.words
                )
            except actions.NotTheirs:
                return not_found(ctx)
            except actions.PortalRefusal as refusal:
                return await change_page(
                    session,
                    ctx,
                    subscription_id,
                    plan=plan,
                    quantity=quantity,
                    error=refusal.words(ctx.locale),
                    status=refusal.status,
                )
            sub = await views.owned_subscription(session, ctx.found, subscription_id)
            assert sub is not None
            old_plan = priced_plan(await get_plan(session, sub.merchant_id, sub.plan_id), sub.price_overrides)
            new_plan = await get_plan(session, sub.merchant_id, str(params.plan))
            facts = {
                "old": text("plan_times", ctx.locale, plan=old_plan.name, quantity=sub.quantity),
                "new": text("plan_times", ctx.locale, plan=new_plan.name, quantity=amount),
                "new_price": ctx.words.price(new_plan, amount),
                "old_name": old_plan.name,
                "new_name": new_plan.name,
            }
        failed = False
        async with services.sessions() as session:
            try:
                preview = await preview_change(
                    session, ctx.found.customer.merchant_id, subscription_id, params
                )
            except BillingError:
                failed = True
            await session.rollback()
        if failed:

            async def refused(session: AsyncSession, ctx: Ctx) -> Response[str]:
                message = text("change_not_allowed", ctx.locale)
                return await change_page(
                    session, ctx, subscription_id, plan=plan, quantity=quantity, error=message, status=409
                )

            return await show(request, refused)
        words, loc = ctx.words, ctx.locale
        rows = []
        for line in preview.lines:
            if line.type == "proration":
                key = "credit_line" if line.amount < 0 else "charge_line"
                label = text(key, loc, plan=facts["old_name"] if line.amount < 0 else facts["new_name"])
            elif line.type == "subscription":
                label = text("first_period_line", loc, plan=facts["new_name"])
            else:
                label = line.description
            period = words.period(line.start, line.end) if line.start and line.end else None
            rows.append((label, period, words.money(line.amount, preview.currency)))
        explanations = []
        if preview.in_trial:
            explanations.append(text("explain_trial", loc))
        elif preview.new_cycle:
            explanations.append(text("explain_new_cycle", loc))
        if preview.invoiced_now and preview.due_today > 0:
            key = (
                "explain_charge_today"
                if preview.collection_method == "charge_automatically"
                else "explain_invoice_today"
            )
            explanations.append(text(key, loc, amount=words.money(preview.due_today, preview.currency)))
        elif not preview.in_trial:
            if (
                ctx.settings.proration_behavior == "create_prorations"
                and preview.lines
                and not preview.invoiced_now
            ):
                explanations.append(text("explain_create_prorations", loc))
            elif ctx.settings.proration_behavior == "none" and not preview.new_cycle:
                explanations.append(text("explain_no_proration", loc))
        if preview.invoiced_now and preview.balance_after < 0:
            explanations.append(text("explain_credit_kept", loc))
        next_invoice = None
        if preview.next_invoice_at is not None and preview.next_invoice_amount is not None:
            next_invoice = (
                text("next_invoice_on", loc, date=words.day(preview.next_invoice_at)),
                words.money(preview.next_invoice_amount, preview.currency),
            )
        frame = ctx.frame(
            "overview",
            f"/portal/subscriptions/{subscription_id}/change",
            warnings=(warning,) if warning else (),
        )
        return _page(
            "preview.html",
            frame,
            subscription=subscription_id,
            plan=params.plan,
            quantity=amount,
            old=facts["old"],
            new=facts["new"],
            new_price=facts["new_price"],
            rows=rows,
            due_today=words.money(preview.due_today, preview.currency),
            next_invoice=next_invoice,
            explanations=explanations,
            expected=preview.due_today,
        )

    @get("/subscriptions/{subscription_id:str}/change/preview", include_in_schema=False, security=[])
    async def change_preview(
        request: AnyRequest,
        subscription_id: SubscriptionId,
        plan: PlanParam = None,
        quantity: QuantityParam = None,
    ) -> Response[str]:
        return await preview_response(request, subscription_id, plan, quantity)

    # --- forms --------------------------------------------------------------------------------------------------

    async def submit(
        request: AnyRequest,
        action: str,
        run: Callable[[AsyncSession, Ctx, Any], Awaitable[Done]],
        on_refusal: Refusal,
        *,
        card_attempt: Callable[[Any], bool] | None = None,
    ) -> Response[Any]:
        """A form's post: a live login, its CSRF token, the form's first post (else the first one's outcome),
        the card attempt limit when a card number is sent; then `run` in one transaction, what it leaves for
        after the commit, and the redirect."""
        form = await request.form()
        form_key = str(form.get("form_key") or "")
        refusal: actions.PortalRefusal | None = None
        async with transaction(services.sessions) as session:
            ctx = await load(session, request)
            if ctx is None:
                return signed_out(request)
            if not service.csrf_matches(ctx.found, form.get("csrf")) or not 16 <= len(form_key) <= 64:
                return _message(
                    ctx.frame("", "/portal/"),
                    "form_expired",
                    "form_expired_body",
                    403,
                    back_url=None if ctx.found.restricted else "/portal/",
                    back_key="nav_overview",
                )
            if card_attempt is not None and card_attempt(form):
                # Counted in a transaction of its own: a card that is then refused still counts.
                retry_at = await guard.take_card_attempt(session, ctx.found.link.id, utc_now())
                if retry_at is not None:
                    moment = ctx.words.moment(_clock_time(ctx, retry_at))
                    refusal = actions.PortalRefusal("too_many_cards", 429, time=moment)
        if refusal is None:
            earlier: str | None = None
            done: Done | None = None
            login_id = ""
            try:
                async with transaction(services.sessions) as session:
                    ctx = await load(session, request)
                    if ctx is None:
                        return signed_out(request)
                    now = ctx.found.clock.now()
                    login_id = ctx.found.login.id
                    earlier = await guard.claim_form(session, login_id, form_key, action, now)
                    if earlier is None:
                        done = await run(session, ctx, form)
                        if done.after is None:
                            await guard.record_outcome(session, ctx.found.login.id, form_key, done.location)
            except actions.NotTheirs:
                async with services.sessions() as session:
                    ctx = await load(session, request)
                    return not_found(ctx) if ctx is not None else signed_out(request)
            except actions.PortalRefusal as refused:
                refusal = refused
        if refusal is not None and refusal.kept:
            async with transaction(services.sessions) as session:
                for write in refusal.kept:
                    await write(session)
        if refusal is not None:
            async with services.sessions() as session:
                ctx = await load(session, request)
                if ctx is None:
                    return signed_out(request)
                return await on_refusal(session, ctx, refusal)
        if done is None:
            # The same form posted again (a double click, a reload): the first post's outcome, once it has one.
            outcome = earlier or await guard.wait_for_outcome(services.sessions, login_id, form_key)
            return Redirect(outcome or _with_notice("/portal/", "in_progress"), status_code=303)
        location = done.location
        if done.after is not None:
            location = await done.after() or location
            async with transaction(services.sessions) as session:
                await guard.record_outcome(session, login_id, form_key, location)
        return Redirect(location, status_code=303)

    def _clock_time(ctx: Ctx, real: datetime) -> datetime:
        """A real-time instant shown in the customer's clock (the rate limit counts real time)."""
        return ctx.found.clock.now() + (real - utc_now())

    @post(
        "/subscriptions/{subscription_id:str}/change", include_in_schema=False, security=[], status_code=303
    )
    async def change_post(request: AnyRequest, subscription_id: SubscriptionId) -> Response[Any]:
        async def run(session: AsyncSession, ctx: Ctx, form: Any) -> Done:
            quantity = actions.parse_quantity(form.get("quantity"))
            params = await actions.checked_change(
                session,
                ctx.found,
                ctx.settings,
                subscription_id,
                str(form.get("plan") or ""),
                quantity,
                ctx.words,
            )
            invoice_id = await actions.change_plan(session, ctx.found, subscription_id, params)
            expected = str(form.get("expected") or "")
            due = 0
            if invoice_id is not None:
                invoice = await views.owned_invoice(session, ctx.found, invoice_id)
                due = invoice.amount_due if invoice is not None else 0
            if expected != str(due):
                # The figures moved since the preview (time passed, the balance changed): show them again.
                raise actions.PortalRefusal("amounts_changed", 409)
            location = _with_notice("/portal/", "changed", invoice_id)
            if invoice_id is None:
                return Done(location)

            async def charge() -> str | None:
                await actions.collect_now(services, invoice_id)
                return None

            return Done(location, charge)

        async def refused(session: AsyncSession, ctx: Ctx, refusal: actions.PortalRefusal) -> Response[str]:
            form = await request.form()
            if refusal.key == "amounts_changed":
                return await preview_response(
                    request,
                    subscription_id,
                    str(form.get("plan") or ""),
                    str(form.get("quantity") or ""),
                    refusal.words(ctx.locale),
                )
            return await change_page(
                session,
                ctx,
                subscription_id,
                plan=str(form.get("plan") or ""),
                quantity=str(form.get("quantity") or ""),
                error=refusal.words(ctx.locale),
                status=refusal.status,
            )

        return await submit(request, "change", run, refused)

    @post(
        "/subscriptions/{subscription_id:str}/cancel", include_in_schema=False, security=[], status_code=303
    )
    async def cancel_post(request: AnyRequest, subscription_id: SubscriptionId) -> Response[Any]:
        async def run(session: AsyncSession, ctx: Ctx, form: Any) -> Done:
            params = actions.cancel_params(
                ctx.settings, str(form.get("when") or ""), form.get("reason"), form.get("comment")
            )
            await actions.cancel(session, ctx.found, ctx.settings, subscription_id, params)
            if params.at_period_end:
                return Done(_with_notice("/portal/", "cancel_scheduled", subscription_id))
            return Done(_with_notice("/portal/", "cancelled_now"))

        async def refused(session: AsyncSession, ctx: Ctx, refusal: actions.PortalRefusal) -> Response[str]:
            return await cancel_page(session, ctx, subscription_id, refusal.words(ctx.locale), refusal.status)

        return await submit(request, "cancel", run, refused)

    @post("/subscriptions/{subscription_id:str}/renew", include_in_schema=False, security=[], status_code=303)
    async def renew_post(request: AnyRequest, subscription_id: SubscriptionId) -> Response[Any]:
        async def run(session: AsyncSession, ctx: Ctx, form: Any) -> Done:
            await actions.renew(session, ctx.found, subscription_id)
            return Done(_with_notice("/portal/", "renewed"))

        return await submit(request, "renew", run, refuse_with(overview_page))

    def hold_cvc(entered: EnteredCard) -> Callable[[], Awaitable[None]]:
        async def hold() -> None:
            if entered.cvc is not None:
                # As the API does: the CVC is held sealed for the first authorization only, after the commit.
                await services.cvc.hold(entered.entry, entered.cvc)

        return hold

    async def retry_after_new_method(ctx: Ctx, first: str) -> str:
        """A new payment method retries, at once, the invoices dunning was waiting on (the services scheduled
        those charges in the same transaction): run them now, and say what happened to the first."""
        async with services.sessions() as session:
            customer_invoices = await list_invoices(
                session,
                ctx.found.customer.merchant_id,
                PageRequest(views.PAGE),
                filters=InvoiceFilters(customer=ctx.found.customer.id, status="open"),
            )
            waiting = [
                invoice.id
                for invoice in customer_invoices.rows
                if await collection.pending_collection(session, invoice.id) is not None
            ]
        for invoice_id in waiting:
            await actions.collect_now(services, invoice_id)
        return _with_notice("/portal/payment_methods", first, waiting[0] if waiting else None)

    @post("/payment_methods", include_in_schema=False, security=[], status_code=303)
    async def add_card(request: AnyRequest) -> Response[Any]:
        async def run(session: AsyncSession, ctx: Ctx, form: Any) -> Done:
            if ctx.found.restricted:
                raise actions.NotTheirs
            card = actions.card_input(form)
            _, entered = await actions.add_card(session, ctx.found, card, services.vault, make_default=True)
            hold = hold_cvc(entered)

            async def after() -> str | None:
                await hold()
                return await retry_after_new_method(ctx, "card_added")

            return Done(_with_notice("/portal/payment_methods", "card_added"), after)

        async def refused(session: AsyncSession, ctx: Ctx, refusal: actions.PortalRefusal) -> Response[str]:
            return await methods_page(session, ctx, error=refusal.words(ctx.locale), status=refusal.status)

        return await submit(
            request, "add_card", run, refused, card_attempt=lambda form: bool(form.get("number"))
        )

    @post("/payment_methods/agreements/{kind:str}", include_in_schema=False, security=[], status_code=303)
    async def add_agreement(
        request: AnyRequest, kind: Annotated[str, PathParameter(max_length=20)]
    ) -> Response[Any]:
        async def run(session: AsyncSession, ctx: Ctx, form: Any) -> Done:
            if ctx.found.restricted:
                raise actions.NotTheirs
            await actions.add_agreement(session, ctx.found, kind, services.gateways)
            return Done(_with_notice("/portal/payment_methods", "agreement_started"))

        return await submit(request, "add_agreement", run, refuse_with(methods_page))

    @post("/payment_methods/{method_id:str}/default", include_in_schema=False, security=[], status_code=303)
    async def make_default(request: AnyRequest, method_id: MethodId) -> Response[Any]:
        async def run(session: AsyncSession, ctx: Ctx, form: Any) -> Done:
            if ctx.found.restricted:
                raise actions.NotTheirs
            await actions.make_default(session, ctx.found, method_id)

            async def after() -> str | None:
                return await retry_after_new_method(ctx, "defaulted")

            return Done(_with_notice("/portal/payment_methods", "defaulted"), after)

        return await submit(request, "make_default", run, refuse_with(methods_page))

    @post("/payment_methods/{method_id:str}/remove", include_in_schema=False, security=[], status_code=303)
    async def remove(request: AnyRequest, method_id: MethodId) -> Response[Any]:
        async def run(session: AsyncSession, ctx: Ctx, form: Any) -> Done:
            if ctx.found.restricted:
                raise actions.NotTheirs
            pays = await views.pays_subscription(session, ctx.found)
            entry_id = await actions.remove(
                session, ctx.found, method_id, pays_subscription=pays, gateways=services.gateways
            )
            if entry_id is None:
                return Done(_with_notice("/portal/payment_methods", "removed"))
            destroyed = entry_id

            async def discard() -> str | None:
                await services.cvc.discard(destroyed)
                return None

            return Done(_with_notice("/portal/payment_methods", "removed"), discard)

        return await submit(request, "remove_method", run, refuse_with(methods_page))

    @post("/invoices/{invoice_id:str}/pay", include_in_schema=False, security=[], status_code=303)
    async def pay_post(request: AnyRequest, invoice_id: InvoiceId) -> Response[Any]:
        async def run(session: AsyncSession, ctx: Ctx, form: Any) -> Done:
            invoice = await views.owned_invoice(session, ctx.found, invoice_id)
            if invoice is None:
                raise actions.NotTheirs
            page = f"/portal/invoices/{invoice.id}/pay"
            if not views.payable(invoice):
                return Done(page)
            chosen = str(form.get("payment_method") or "")
            hold: Callable[[], Awaitable[None]] | None = None
            if chosen == "new" or ctx.found.restricted:
                card = actions.card_input(form)
                save = form.get("save_default") == "1" and not ctx.found.restricted
                pm, entered = await actions.add_card(
                    session, ctx.found, card, services.vault, make_default=save
                )
                hold = hold_cvc(entered)
            else:
                owned = await views.owned_payment_method(session, ctx.found, chosen) if chosen else None
                if owned is None:
                    if chosen:
                        raise actions.NotTheirs
                    raise actions.PortalRefusal("choose_method")
                pm = owned
            await actions.start_payment(session, ctx.found, invoice, pm.id)
            target = invoice.id

            async def charge() -> str | None:
                if hold is not None:
                    await hold()
                collected = await actions.collect_now(services, target)
                if collected.invoice.status == "paid" and not ctx.found.restricted:
                    return _with_notice("/portal/invoices", "paid", target)
                return _with_notice(page, "paid", target)

            return Done(_with_notice(page, "paid", target), charge)

        async def refused(session: AsyncSession, ctx: Ctx, refusal: actions.PortalRefusal) -> Response[str]:
            return await pay_page(
                session, ctx, invoice_id, error=refusal.words(ctx.locale), status=refusal.status
            )

        def sends_card(form: Any) -> bool:
            return bool(form.get("number")) and (form.get("payment_method") in (None, "", "new"))

        return await submit(request, "pay", run, refused, card_attempt=sends_card)

    @post("/billing", include_in_schema=False, security=[], status_code=303)
    async def billing_post(request: AnyRequest) -> Response[Any]:
        async def run(session: AsyncSession, ctx: Ctx, form: Any) -> Done:
            if ctx.found.restricted:
                raise actions.NotTheirs
            await actions.save_billing_details(session, ctx.found, form)
            return Done(_with_notice("/portal/billing", "saved"))

        return await submit(request, "billing", run, refuse_with(billing_page))

    @post("/billing/tax_ids/{index:int}/remove", include_in_schema=False, security=[], status_code=303)
    async def remove_tax_id(
        request: AnyRequest, index: Annotated[int, PathParameter(ge=0, le=10)]
    ) -> Response[Any]:
        async def run(session: AsyncSession, ctx: Ctx, form: Any) -> Done:
            if ctx.found.restricted:
                raise actions.NotTheirs
            await actions.remove_tax_id(session, ctx.found, index)
            return Done(_with_notice("/portal/billing", "tax_id_removed"))

        return await submit(request, "remove_tax_id", run, refuse_with(billing_page))

    @post("/locale", include_in_schema=False, security=[], status_code=303)
    async def switch_locale(request: AnyRequest) -> Response[Any]:
        form = await request.form()
        async with services.sessions() as session, session.begin():
            ctx = await load(session, request)
            if ctx is None:
                return signed_out(request)
            if (
                not service.csrf_matches(ctx.found, form.get("csrf"))
                or normalize_locale(str(form.get("locale") or "")) is None
            ):
                return Redirect(_local_path(form.get("next")), status_code=303)
            await service.choose_locale(session, ctx.found, str(form.get("locale")))
        return Redirect(_local_path(form.get("next")), status_code=303)

    @post("/logout", include_in_schema=False, security=[], status_code=200)
    async def logout(request: AnyRequest) -> Response[Any]:
        form = await request.form()
        async with services.sessions() as session, session.begin():
            ctx = await load(session, request)
            if ctx is None:
                return signed_out(request)
            if not service.csrf_matches(ctx.found, form.get("csrf")):
                return Redirect("/portal/", status_code=303)
            await service.end_login(session, ctx.found)
        frame = replace(ctx.frame("", "/portal/"), csrf=None, navigation=False, session_until=None)
        response = _message(
            frame,
            "signed_out_title",
            "signed_out_body",
            200,
            back_url=ctx.found.link.return_url,
            back_key="return_to",
        )
        response.cookies.append(_login_cookie(None, secure=secure_cookie, max_age=0))
        return response

    # --- entering: a link, or a hosted invoice's pay button ---------------------------------------------------

    @get("/s/{token:str}", include_in_schema=False, security=[])
    async def open_link(request: AnyRequest, token: Token) -> Response[Any]:
        async with services.sessions() as session, session.begin():
            opened = await service.open_link(session, token, request.cookies.get(service.COOKIE))
            brand = None
            if isinstance(opened, service.LinkRefused) and opened.reason != "invalid":
                parsed = tokens.parse(token)
                link = await session.get(PortalSession, parsed.session_id) if parsed else None
                if link is not None:
                    brand = merchant_branding(await get_settings(session, link.merchant_id))
        if isinstance(opened, service.LinkRefused):
            frame = _anonymous_frame(request, opened.locale, brand)
            status = 404 if opened.reason == "invalid" else 410
            back_key = "return_to" if brand is not None else "back"
            return _message(
                frame,
                f"link_{opened.reason}_title",
                f"link_{opened.reason}_body",
                status,
                back_url=opened.return_url,
                back_key=back_key,
            )
        response: Response[Any] = Redirect(
            opened.landing,
            status_code=303,
            headers={"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"},
        )
        if opened.secret is not None:
            response.cookies.append(
                _login_cookie(
                    opened.secret, secure=secure_cookie, max_age=int(service.LOGIN_LIFETIME.total_seconds())
                )
            )
        return response

    @get("/pay/{hosted_token:str}", include_in_schema=False, security=[])
    async def pay_hosted(
        request: AnyRequest,
        hosted_token: Annotated[str, PathParameter(max_length=64)],
        locale: LocaleParam = None,
    ) -> Response[Any]:
        """The hosted invoice page's pay button: a session that may pay this invoice only, opened at once."""
        async with services.sessions() as session, session.begin():
            invoice = await find_invoice_by_token(session, hosted_token)
            if invoice is None:
                frame = _anonymous_frame(request, locale)
                return _message(frame, "link_invalid_title", "link_invalid_body", 404)
            if not views.payable(invoice):
                return Redirect(f"/i/{quote(hosted_token)}", status_code=303)
            customer = await get_customer(session, invoice.merchant_id, invoice.customer_id)
            clock = await clock_for(session, invoice.merchant_id, customer.test_clock_id)
            opened = await open_portal_session(
                session,
                customer,
                clock,
                origin="hosted_invoice",
                lifetime=INVOICE_SESSION_LIFETIME,
                flow="invoice_pay",
                flow_target=invoice.id,
                locale=normalize_locale(locale),
                single_use=True,
                scope="invoice",
            )
            started = await service.open_link(session, opened.token, None)
        assert isinstance(started, service.LoginStarted) and started.secret is not None
        response: Response[Any] = Redirect(
            started.landing,
            status_code=303,
            headers={"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"},
        )
        response.cookies.append(
            _login_cookie(
                started.secret, secure=secure_cookie, max_age=int(service.LOGIN_LIFETIME.total_seconds())
            )
        )
        return response

    @get("/logo", include_in_schema=False, security=[])
    async def logo(request: AnyRequest) -> Response[Any]:
        """The merchant's logo, served from here so the pages load nothing from other hosts."""
        async with services.sessions() as session:
            ctx = await load(session, request)
        found = await load_logo(ctx.brand.logo_url) if ctx is not None else None
        if found is None:
            return Response(b"", status_code=404, headers={"Cache-Control": "no-store"})
        return Response(
            found.content,
            media_type=found.media_type,
            headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    @get("/static/portal.css", include_in_schema=False, security=[])
    async def css() -> Response[bytes]:
        return Response(
            stylesheet(),
            media_type="text/css; charset=utf-8",
            headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    return Router(
        path="/portal",
        route_handlers=[
            overview,
            payment_methods,
            invoices,
            pay,
            billing,
            change,
            cancel,
            change_preview,
            change_post,
            cancel_post,
            renew_post,
            add_card,
            add_agreement,
            make_default,
            remove,
            pay_post,
            billing_post,
            remove_tax_id,
            switch_locale,
            logout,
            open_link,
            pay_hosted,
            logo,
            css,
        ],
    )
