"""Portal session use cases: open a session for a customer (over the API, or for an email link) and find the
session behind a portal URL. No Litestar here.

The URL's token is the only credential (whoever holds the link manages that customer's cards), so it is 40 base62
characters from `secrets` (about 238 bits, as the hosted invoice link), and only its SHA-256 is stored: a copy of
the database does not open anyone's portal. A session expires in the customer's clock time: an hour for one made
over the API (the app redirects the customer at once), seven days for one an email links to (people read email
later).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.customers.models import Customer
from billing.customers.schemas import CustomerUpdate
from billing.customers.service import get_customer, update_customer
from billing.errors import BillingError, InvalidRequest
from billing.ids import new_id, random_token
from billing.invoices.hosted import public_base_url
from billing.merchants.service import hash_key
from billing.payment_methods.models import PaymentMethod
from billing.payment_methods.schemas import CardInput, PaymentMethodCreate
from billing.payment_methods.service import EnteredCard, create_payment_method
from billing.portal import schemas
from billing.portal.models import PortalSession
from billing.test_clocks.service import clock_for
from billing.vault.service import Vault

TOKEN_LENGTH = 40
_TOKEN_SHAPE = re.compile(rf"[0-9A-Za-z]{{{TOKEN_LENGTH}}}")
API_SESSION_LIFETIME = timedelta(hours=1)
EMAIL_SESSION_LIFETIME = timedelta(days=7)


@dataclass(frozen=True)
class OpenedSession:
    """A new session and its token: the token exists only here, in the URL handed to the customer."""

    row: PortalSession
    token: str

    @property
    def url(self) -> str:
        return portal_url(self.token)


@dataclass(frozen=True)
class FoundSession:
    row: PortalSession
    customer: Customer
    clock: Clock


def portal_url(token: str) -> str:
    """The payment-method page of the portal for a session token."""
    return f"{public_base_url()}/portal/{token}/payment_methods"


def render_portal_session(opened: OpenedSession) -> schemas.PortalSession:
    row = opened.row
    return schemas.PortalSession(
        id=row.id,
        created_at=row.created_at,
        customer=row.customer_id,
        return_url=row.return_url,
        url=opened.url,
        expires_at=row.expires_at,
    )


async def open_portal_session(
    session: AsyncSession,
    customer: Customer,
    clock: Clock,
    *,
    origin: str,
    lifetime: timedelta,
    return_url: str | None = None,
) -> OpenedSession:
    """A new session on the payment-method page for `customer`, in the caller's transaction."""
    token = random_token(TOKEN_LENGTH)
    now = clock.now()
    row = PortalSession(
        id=new_id("ps"),
        merchant_id=customer.merchant_id,
        customer_id=customer.id,
        token_hash=hash_key(token),
        form_nonce=secrets.token_urlsafe(24),
        flow="payment_method_update",
        return_url=return_url,
        origin=origin,
        created_at=now,
        expires_at=now + lifetime,
    )
    session.add(row)
    await session.flush()
    return OpenedSession(row=row, token=token)


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


async def create_portal_session(
    session: AsyncSession, merchant_id: str, params: schemas.PortalSessionCreate
) -> OpenedSession:
    """`POST /v1/portal_sessions`: a one-hour link to the customer's payment-method page."""
    return_url = _check_return_url(params.return_url) if params.return_url is not None else None
    customer = await get_customer(session, merchant_id, params.customer, param="customer")
    clock = await clock_for(session, merchant_id, customer.test_clock_id)
    return await open_portal_session(
        session, customer, clock, origin="api", lifetime=API_SESSION_LIFETIME, return_url=return_url
    )


async def find_portal_session(session: AsyncSession, token: str) -> FoundSession | None:
    """The live session behind a portal URL, or None (malformed, unknown, expired, or its customer deleted:
    every wrong link gets the same answer)."""
    if not _TOKEN_SHAPE.fullmatch(token):
        return None
    row = await session.scalar(select(PortalSession).where(PortalSession.token_hash == hash_key(token)))
    if row is None:
        return None
    customer = await session.get(Customer, row.customer_id)
    if customer is None or customer.deleted_at is not None:
        return None
    try:
        clock = await clock_for(session, row.merchant_id, customer.test_clock_id)
    except BillingError:  # the customer's test clock is gone: so is everything that lived in it
        return None
    if clock.now() >= row.expires_at:
        return None
    return FoundSession(row=row, customer=customer, clock=clock)


def nonce_matches(found: FoundSession, nonce: str | None) -> bool:
    return nonce is not None and secrets.compare_digest(found.row.form_nonce.encode(), nonce.encode())


async def customer_cards(session: AsyncSession, customer: Customer) -> list[PaymentMethod]:
    """The customer's attached cards, newest first, as the payment-method page lists them (debit agreements are
    not shown there yet: the portal's channel page is a later issue)."""
    return list(
        (
            await session.scalars(
                select(PaymentMethod)
                .where(
                    PaymentMethod.merchant_id == customer.merchant_id,
                    PaymentMethod.customer_id == customer.id,
                    PaymentMethod.type == "card",
                    PaymentMethod.detached_at.is_(None),
                )
                .order_by(PaymentMethod.seq.desc())
            )
        ).all()
    )


async def add_default_card(
    session: AsyncSession, found: FoundSession, card: CardInput, vault: Vault
) -> EnteredCard:
    """Attach `card` to the session's customer and make it the default, with the API's own use cases (so
    webhooks and dunning see it as they see the API's), or change nothing: a BillingError leaves the
    transaction as it was (a savepoint), for the page to show the error."""
    customer = found.customer
    savepoint = await session.begin_nested()
    try:
        pm, entered = await create_payment_method(
            session, customer.merchant_id, PaymentMethodCreate(customer=customer.id, card=card), vault
        )
        await update_customer(
            session, customer.merchant_id, customer.id, CustomerUpdate(default_payment_method=pm.id)
        )
    except BillingError:
        await savepoint.rollback()
        await session.refresh(customer)
        raise
    await savepoint.commit()
    return entered


async def choose_default_card(session: AsyncSession, found: FoundSession, payment_method_id: str) -> bool:
    """Make one of the customer's cards the default; False (nothing changed) when it is not theirs."""
    savepoint = await session.begin_nested()
    try:
        await update_customer(
            session,
            found.customer.merchant_id,
            found.customer.id,
            CustomerUpdate(default_payment_method=payment_method_id),
        )
    except BillingError:
        await savepoint.rollback()
        return False
    await savepoint.commit()
    return True
