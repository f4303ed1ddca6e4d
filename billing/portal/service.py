"""Portal sessions and logins: make a link for a customer (over the API, for an email, from a hosted invoice),
open it in a browser (a login with a cookie), find the login behind a request, end it. No Litestar here.

* A link carries a token signed for one customer (billing.portal.tokens); only its SHA-256 is stored. Links made
  over the API open once and expire after an hour; email links may be opened again for seven days (people read
  email later and click twice, and mail scanners fetch links before people do); a hosted invoice's pay link
  makes a one-hour session that may only pay that invoice.
* Opening a link starts a login: a random cookie secret (only its SHA-256 is stored) valid for an hour, and a
  CSRF token that every form of the login carries. The browser is then sent to a URL without the token.
* All times are the customer's clock (a test clock's customer sees links and logins expire as it advances).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from urllib.parse import quote, urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.customers.models import Customer
from billing.customers.service import get_customer
from billing.db.lookup import get_owned
from billing.errors import BillingError, InvalidRequest
from billing.ids import new_id
from billing.invoices.labels import Locale, normalize_locale
from billing.invoices.models import Invoice
from billing.portal import schemas, tokens
from billing.portal.links import API_SESSION_LIFETIME, OpenedSession, digest, link_key, open_portal_session
from billing.portal.models import PortalLogin, PortalSession
from billing.settings.service import get_settings, portal_settings
from billing.subscriptions import states as subscription_states
from billing.subscriptions.models import Subscription
from billing.test_clocks.service import clock_for

LOGIN_LIFETIME = timedelta(hours=1)
COOKIE = "billing_portal"
COOKIE_PATH = "/portal"


def render_portal_session(opened: OpenedSession) -> schemas.PortalSession:
    row = opened.row
    flow = None
    if row.flow is not None:
        target = row.flow_target
        flow = schemas.PortalFlow(
            type=row.flow,  # type: ignore[arg-type]
            subscription=target if row.flow.startswith("subscription_") else None,
            invoice=target if row.flow == "invoice_pay" else None,
        )
    return schemas.PortalSession(
        id=row.id,
        created_at=row.created_at,
        customer=row.customer_id,
        flow=flow,
        locale=row.locale,
        return_url=row.return_url,
        url=opened.url,
        expires_at=row.expires_at,
    )


def _check_return_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.username
        valid = valid and not parts.password and not any(c.isspace() or ord(c) < 32 for c in url)
    except ValueError:  # e.g. an unbalanced "[" in the host
        valid = False
    if not valid:
        raise InvalidRequest(
            "return_url must be an http:// or https:// URL with a host and no credentials, e.g. "
            "https://app.example.com/account.",
            param="return_url",
        )
    return url


async def _flow_target(
    session: AsyncSession, customer: Customer, flow: schemas.PortalFlow
) -> tuple[str, str | None]:
    """The flow's type and the id it is about, checked: this customer's, in a state the task can be done in."""
    merchant_id = customer.merchant_id
    settings = portal_settings((await get_settings(session, merchant_id)).settings or {})
    if flow.type in ("payment_method_update", "invoice_pay") and flow.subscription is not None:
        raise InvalidRequest(f"flow.subscription does not apply to {flow.type}.", param="flow.subscription")
    if flow.type != "invoice_pay" and flow.invoice is not None:
        raise InvalidRequest(
            f"flow.invoice applies to invoice_pay only, not {flow.type}.", param="flow.invoice"
        )
    if flow.type == "payment_method_update":
        return flow.type, None
    if flow.type == "invoice_pay":
        if flow.invoice is None:
            raise InvalidRequest(
                "flow.invoice is required for invoice_pay: name the invoice (in_...).", param="flow.invoice"
            )
        invoice = await get_owned(
            session,
            Invoice,
            flow.invoice,
            merchant_id=merchant_id,
            prefix="in",
            kind="invoice",
            param="flow.invoice",
        )
        if invoice.customer_id != customer.id:
            raise InvalidRequest(
                f"Invoice {invoice.id} belongs to another customer; a portal session shows one customer's.",
                param="flow.invoice",
            )
        if invoice.status not in ("open", "uncollectible") or invoice.amount_remaining <= 0:
            raise InvalidRequest(
                f"Invoice {invoice.id} is {invoice.status} with nothing left to pay, so it cannot be paid.",
                code="invoice_not_payable",
                param="flow.invoice",
            )
        return flow.type, invoice.id
    if flow.subscription is None:
        raise InvalidRequest(
            f"flow.subscription is required for {flow.type}: name the subscription (sub_...).",
            param="flow.subscription",
        )
    sub = await get_owned(
        session,
        Subscription,
        flow.subscription,
        merchant_id=merchant_id,
        prefix="sub",
        kind="subscription",
        param="flow.subscription",
    )
    if sub.customer_id != customer.id:
        raise InvalidRequest(
            f"Subscription {sub.id} belongs to another customer; a portal session shows one customer's.",
            param="flow.subscription",
        )
    if flow.type == "subscription_cancel":
        if settings.cancel_mode == "disabled":
            raise InvalidRequest(
                "Cancelling in the portal is turned off (settings.portal.cancel_mode is disabled).",
                code="portal_feature_disabled",
                param="flow.type",
            )
        if sub.status in subscription_states.ENDED:
            raise InvalidRequest(f"Subscription {sub.id} has already ended.", param="flow.subscription")
    else:
        if not settings.plan_changes:
            raise InvalidRequest(
                "Plan changes in the portal are turned off (settings.portal.plan_changes is false).",
                code="portal_feature_disabled",
                param="flow.type",
            )
        if sub.status not in (subscription_states.ACTIVE, subscription_states.TRIALING):
            raise InvalidRequest(
                f"Subscription {sub.id} is {sub.status}; only active and trialing subscriptions change plan.",
                param="flow.subscription",
            )
    return flow.type, sub.id


async def create_portal_session(
    session: AsyncSession, merchant_id: str, params: schemas.PortalSessionCreate
) -> OpenedSession:
    """`POST /v1/portal_sessions`: a one-hour, single-use link into the customer's portal (or one task)."""
    return_url = _check_return_url(params.return_url) if params.return_url is not None else None
    customer = await get_customer(session, merchant_id, params.customer, param="customer")
    flow, target = (None, None) if params.flow is None else await _flow_target(session, customer, params.flow)
    clock = await clock_for(session, merchant_id, customer.test_clock_id)
    return await open_portal_session(
        session,
        customer,
        clock,
        origin="api",
        lifetime=API_SESSION_LIFETIME,
        return_url=return_url,
        flow=flow,
        flow_target=target,
        locale=params.locale,
        single_use=True,
    )


# --- opening a link, and the logins it starts ----------------------------------------------------------------


def landing_path(row: PortalSession) -> str:
    """Where a link leads once opened: its flow's page, or the overview."""
    target = quote(row.flow_target or "")
    return {
        "payment_method_update": "/portal/payment_methods",
        "subscription_cancel": f"/portal/subscriptions/{target}/cancel",
        "subscription_update": f"/portal/subscriptions/{target}/change",
        "invoice_pay": f"/portal/invoices/{target}/pay",
    }.get(row.flow or "", "/portal/")


@dataclass(frozen=True)
class LinkRefused:
    """Why a link opens nothing (`invalid`: malformed, forged or unknown; `expired`; `used`), with what the
    page can still offer: the way back to the app, in the link's language."""

    reason: Literal["invalid", "expired", "used"]
    return_url: str | None = None
    locale: Locale | None = None


@dataclass(frozen=True)
class LoginStarted:
    """A link opened: the cookie secret to set (None: this browser is already logged in through this link)
    and where to send the browser."""

    secret: str | None
    landing: str
    expires_at: datetime


@dataclass(frozen=True)
class FoundLogin:
    login: PortalLogin
    link: PortalSession
    customer: Customer
    clock: Clock

    @property
    def restricted(self) -> bool:
        """A hosted invoice's session: it may pay that one invoice and see nothing else."""
        return self.link.scope == "invoice"


async def open_link(
    session: AsyncSession, token: str, current_secret: str | None
) -> LoginStarted | LinkRefused:
    """Open the link of `token` for a browser that holds `current_secret` (its cookie, if any)."""
    parsed = tokens.parse(token)
    if parsed is None:
        return LinkRefused("invalid")
    row = await session.scalar(
        select(PortalSession).where(PortalSession.id == parsed.session_id).with_for_update()
    )
    if row is None:
        return LinkRefused("invalid")
    if not tokens.verify(await link_key(), parsed, row.customer_id) or not secrets.compare_digest(
        digest(token), row.token_hash
    ):
        # A forged token naming a real session: the way back to the app reveals nothing worth hiding.
        return LinkRefused("invalid", row.return_url)
    locale = normalize_locale(row.locale)
    customer = await session.get(Customer, row.customer_id)
    if customer is None or customer.deleted_at is not None:
        return LinkRefused("invalid", row.return_url, locale)
    try:
        clock = await clock_for(session, row.merchant_id, customer.test_clock_id)
    except BillingError:  # the customer's test clock is gone: so is everything that lived in it
        return LinkRefused("invalid", row.return_url, locale)
    locale = locale or normalize_locale(customer.locale)
    now = clock.now()
    if now >= row.expires_at:
        return LinkRefused("expired", row.return_url, locale)
    if row.single_use and row.opened_at is not None:
        current = await find_login(session, current_secret) if current_secret else None
        if current is not None and current.link.id == row.id:
            # The same browser opening its link again (the back button): no new login, same place.
            return LoginStarted(None, landing_path(row), current.login.expires_at)
        return LinkRefused("used", row.return_url, locale)
    row.opened_at = row.opened_at or now
    secret = secrets.token_urlsafe(32)
    login = PortalLogin(
        id=new_id("psl"),
        portal_session_id=row.id,
        merchant_id=row.merchant_id,
        customer_id=row.customer_id,
        secret_hash=digest(secret),
        csrf_token=secrets.token_urlsafe(24),
        created_at=now,
        expires_at=now + LOGIN_LIFETIME,
    )
    session.add(login)
    await session.flush()
    return LoginStarted(secret, landing_path(row), login.expires_at)


async def find_login(session: AsyncSession, secret: str | None) -> FoundLogin | None:
    """The live login behind a cookie, or None (unknown, ended, expired, or its customer deleted)."""
    if not secret or len(secret) > 100:
        return None
    login = await session.scalar(select(PortalLogin).where(PortalLogin.secret_hash == digest(secret)))
    if login is None or login.ended_at is not None:
        return None
    link = await session.get(PortalSession, login.portal_session_id)
    customer = await session.get(Customer, login.customer_id)
    if link is None or customer is None or customer.deleted_at is not None:
        return None
    try:
        clock = await clock_for(session, login.merchant_id, customer.test_clock_id)
    except BillingError:
        return None
    if clock.now() >= login.expires_at:
        return None
    return FoundLogin(login=login, link=link, customer=customer, clock=clock)


async def end_login(session: AsyncSession, found: FoundLogin) -> None:
    """Sign out: the cookie opens nothing from now on."""
    login = await session.scalar(
        select(PortalLogin).where(PortalLogin.id == found.login.id).with_for_update()
    )
    if login is not None and login.ended_at is None:
        login.ended_at = found.clock.now()
        await session.flush()


async def choose_locale(session: AsyncSession, found: FoundLogin, locale: str) -> None:
    """The language switcher: this login's pages in `locale` from now on."""
    chosen = normalize_locale(locale)
    if chosen is None:
        raise InvalidRequest("locale must be en or zh-CN.", param="locale")
    login = await session.scalar(
        select(PortalLogin).where(PortalLogin.id == found.login.id).with_for_update()
    )
    if login is not None:
        login.locale = chosen
        await session.flush()


def csrf_matches(found: FoundLogin, value: object) -> bool:
    return isinstance(value, str) and secrets.compare_digest(found.login.csrf_token.encode(), value.encode())


def accepted_locale(header: str | None) -> Locale | None:
    """The first of our languages in an Accept-Language header, by preference (any Chinese reads zh-CN)."""
    if not header:
        return None
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, index, tag.strip().lower()))
    for negative_quality, _, tag in sorted(ranked):
        if negative_quality >= 0:
            continue
        if tag == "zh" or tag.startswith("zh-"):
            return "zh-CN"
        if tag == "en" or tag.startswith("en-"):
            return "en"
    return None


def page_locale(found: FoundLogin, accept_language: str | None) -> Locale:
    """The language of a page: the switcher's choice, then the link's locale (auto: the browser's), then the
    customer's, then the browser's, then English."""
    if chosen := normalize_locale(found.login.locale):
        return chosen
    if found.link.locale == "auto":
        browser = accepted_locale(accept_language)
        if browser:
            return browser
    elif linked := normalize_locale(found.link.locale):
        return linked
    return normalize_locale(found.customer.locale) or accepted_locale(accept_language) or "en"
