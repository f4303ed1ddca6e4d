"""HTTP of the portal: `POST /v1/portal_sessions` (API), and the hosted page a session opens,
`GET /portal/{token}/payment_methods` with its two forms (add a card; make a card the default).

The page is outside /v1 and has no API key: the token in the URL is the capability, checked on every request.
Its forms also carry the session's nonce, so a form can only be posted from a page this session rendered. They
call the same use cases as the API (`create_payment_method`, then `update_customer` for the default), in one
transaction with their events, so whatever listens to those changes (webhooks, dunning) sees the portal's
changes exactly as it sees the API's. After a successful POST the browser is redirected (303) to the page, so
a reload does not add the card twice. Every wrong link gets the same 404 page as the hosted invoice's.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from litestar import Controller, Request, Response, Router, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.response import Redirect
from sqlalchemy.ext.asyncio import AsyncSession

from billing.api.context import RequestContext
from billing.api.openapi import ERROR_RESPONSES
from billing.db.engine import transaction
from billing.errors import BillingError
from billing.invoices.documents import customer_zone, format_local_date, render_not_found_html
from billing.invoices.labels import LOCALES, normalize_locale
from billing.merchants.service import merchant_name
from billing.notifications.emails import brand_label_or_title
from billing.notifications.texts import text
from billing.payment_methods.schemas import CardInput
from billing.portal import schemas, service
from billing.portal.pages import CardRow, PaymentMethodsPage, render_payment_methods
from billing.services import Services


class PortalSessionsController(Controller):
    path = "/portal_sessions"
    tags = ["portal_sessions"]  # noqa: RUF012

    @post(
        "/",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Create a portal session: a one-hour link to the customer's payment-method page",
        description="Redirect the customer to `url` at once: it is a bearer secret, shown only in this "
        "response, valid for one hour (in the customer's clock). The page lists the customer's cards, adds a "
        "card and makes a card the default, in English or Simplified Chinese (the customer's locale).",
    )
    async def create(
        self, ctx: NamedDependency[RequestContext], data: JSONBody[schemas.PortalSessionCreate]
    ) -> schemas.PortalSession:
        opened = await service.create_portal_session(ctx.session, ctx.merchant_id, data)
        return service.render_portal_session(opened)


# The URL is a bearer secret: keep it out of Referer headers, caches and search engines; forms post to us only.
_PAGE_HEADERS = {
    "Cache-Control": "private, no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
}
_NOTICES = {"added": "portal_added", "defaulted": "portal_defaulted"}

Token = Annotated[str, PathParameter(description="The secret of the portal session's link.")]
PageLocale = Annotated[str | None, QueryParameter(description="en or zh-CN; otherwise the customer's.")]
Notice = Annotated[str | None, QueryParameter(description="What the last form did: added or defaulted.")]


def _html(body: str, status: int = 200) -> Response[str]:
    return Response(body, status_code=status, media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)


def _not_found() -> Response[str]:
    return _html(render_not_found_html(), 404)


def _base(token: str) -> str:
    return f"/portal/{quote(token)}/payment_methods"


async def _page(
    session: AsyncSession,
    found: service.FoundSession,
    token: str,
    locale: str | None,
    *,
    notice: str | None = None,
    error: str | None = None,
) -> str:
    customer = found.customer
    shown = normalize_locale(locale) or normalize_locale(customer.locale) or "en"
    cards = await service.customer_cards(session, customer)
    merchant = await merchant_name(session, customer.merchant_id)
    base = _base(token)
    suffix = f"?locale={quote(shown)}"
    return render_payment_methods(
        PaymentMethodsPage(
            locale=shown,
            merchant=merchant,
            cards=[
                CardRow(
                    id=pm.id,
                    brand=brand_label_or_title(pm.card_brand or ""),
                    last4=pm.card_last4,
                    exp_month=pm.card_exp_month,
                    exp_year=pm.card_exp_year,
                    default=pm.id == customer.default_payment_method,
                )
                for pm in cards
                if pm.card_last4 is not None
                and pm.card_exp_month is not None
                and pm.card_exp_year is not None
            ],
            form_action=base + suffix,
            default_action={pm.id: f"{base}/{quote(pm.id)}/default{suffix}" for pm in cards},
            nonce=found.row.form_nonce,
            expires=format_local_date(found.row.expires_at, customer_zone(customer.timezone), shown),
            return_url=found.row.return_url,
            locale_hrefs={code: f"{base}?locale={quote(code)}" for code in LOCALES},
            notice=text(_NOTICES[notice], shown) if notice in _NOTICES else None,
            error=error,
        )
    )


def _card_input(form: Any, locale: str) -> CardInput | str:
    """The card typed into the form, or the message to show when a field is missing or not a number."""
    number = str(form.get("number") or "").strip()
    month = str(form.get("exp_month") or "").strip()
    year = str(form.get("exp_year") or "").strip()
    cvc = str(form.get("cvc") or "").strip()
    if not number or not month.isdigit() or not year.isdigit() or len(number) > 40 or len(cvc) > 8:
        return text("portal_card_fields", locale)
    return CardInput(number=number, exp_month=int(month), exp_year=int(year), cvc=cvc or None)


def make_portal_router(services: Services) -> Router:
    def locale_of(found: service.FoundSession, requested: str | None) -> str:
        return normalize_locale(requested) or normalize_locale(found.customer.locale) or "en"

    @get("/{token:str}/payment_methods", include_in_schema=False, security=[])
    async def payment_methods_page(
        token: Token, locale: PageLocale = None, notice: Notice = None
    ) -> Response[str]:
        async with services.sessions() as session:
            found = await service.find_portal_session(session, token)
            if found is None:
                return _not_found()
            return _html(await _page(session, found, token, locale, notice=notice))

    @post("/{token:str}/payment_methods", include_in_schema=False, security=[], status_code=303)
    async def add_card(
        request: Request[Any, Any, Any], token: Token, locale: PageLocale = None
    ) -> Response[Any]:
        form = await request.form()
        async with services.sessions() as session, session.begin():
            found = await service.find_portal_session(session, token)
            if found is None:
                return _not_found()
            shown = locale_of(found, locale)
            if not service.nonce_matches(found, form.get("nonce")):
                error = text("portal_form_expired", shown)
                return _html(await _page(session, found, token, shown, error=error), 403)
            card = _card_input(form, shown)
            if isinstance(card, str):
                return _html(await _page(session, found, token, shown, error=card), 400)
            try:
                entered = await service.add_default_card(session, found, card, services.vault)
            except BillingError as exc:
                # Our card errors name the field and the rule, never the number.
                failure = text("portal_card_invalid", shown, reason=exc.message)
                return _html(await _page(session, found, token, shown, error=failure), 400)
        if entered.cvc is not None:
            # As the API does: the CVC is held sealed for the first authorization only, after the commit.
            await services.cvc.hold(entered.entry, entered.cvc)
        return Redirect(f"{_base(token)}?locale={quote(shown)}&notice=added", status_code=303)

    @post(
        "/{token:str}/payment_methods/{payment_method_id:str}/default",
        include_in_schema=False,
        security=[],
        status_code=303,
    )
    async def make_default(
        request: Request[Any, Any, Any],
        token: Token,
        payment_method_id: Annotated[str, PathParameter(max_length=64)],
        locale: PageLocale = None,
    ) -> Response[Any]:
        form = await request.form()
        async with transaction(services.sessions) as session:
            found = await service.find_portal_session(session, token)
            if found is None:
                return _not_found()
            shown = locale_of(found, locale)
            if not service.nonce_matches(found, form.get("nonce")):
                error = text("portal_form_expired", shown)
                return _html(await _page(session, found, token, shown, error=error), 403)
            if not await service.choose_default_card(session, found, payment_method_id):
                # Not this customer's card (or detached): the same answer as any wrong link.
                return _not_found()
        return Redirect(f"{_base(token)}?locale={quote(shown)}&notice=defaulted", status_code=303)

    return Router(path="/portal", route_handlers=[payment_methods_page, add_card, make_default])
