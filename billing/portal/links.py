"""Links into the hosted portal: make one for a customer, in the caller's transaction. No Litestar here.

A link carries a token signed for one customer (billing.portal.tokens); only its SHA-256 is stored, so a copy of
the database opens no one's portal. Emails link here (billing.notifications), the API makes links
(billing.portal.service), and a hosted invoice page sends its payer here (billing.portal.routes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.customers.models import Customer
from billing.ids import new_id
from billing.invoices.hosted import public_base_url
from billing.portal import tokens
from billing.portal.models import PortalSession

API_SESSION_LIFETIME = timedelta(hours=1)
EMAIL_SESSION_LIFETIME = timedelta(days=7)
INVOICE_SESSION_LIFETIME = timedelta(hours=1)

# The key that signs links comes from the vault; the process wires its source once (billing.services).
_link_keys: list[Callable[[], Awaitable[bytes]]] = []


def install_link_key(source: Callable[[], Awaitable[bytes]]) -> None:
    """Say where the link-signing key comes from (the process's vault)."""
    _link_keys[:] = [source]


async def link_key() -> bytes:
    if not _link_keys:
        raise RuntimeError("no portal link key installed: open the services first (billing.services)")
    return await _link_keys[0]()


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class OpenedSession:
    """A new session and its token: the token exists only here, in the URL handed to the customer."""

    row: PortalSession
    token: str

    @property
    def url(self) -> str:
        return portal_url(self.token)


def portal_url(token: str) -> str:
    """The link that opens a portal session."""
    return f"{public_base_url()}/portal/s/{quote(token)}"


async def open_portal_session(
    session: AsyncSession,
    customer: Customer,
    clock: Clock,
    *,
    origin: str,
    lifetime: timedelta,
    return_url: str | None = None,
    flow: str | None = "payment_method_update",
    flow_target: str | None = None,
    locale: str | None = None,
    single_use: bool = False,
    scope: str = "customer",
) -> OpenedSession:
    """A new link for `customer`, in the caller's transaction (by default to the payment-method page, as the
    emails that ask for a new card want it)."""
    now = clock.now()
    row = PortalSession(
        id=new_id("ps"),
        merchant_id=customer.merchant_id,
        customer_id=customer.id,
        token_hash="",
        flow=flow,
        flow_target=flow_target,
        locale=locale,
        return_url=return_url,
        origin=origin,
        scope=scope,
        single_use=single_use,
        created_at=now,
        # Whole seconds: the token signs the expiry in seconds.
        expires_at=(now + lifetime).replace(microsecond=0),
    )
    token = tokens.sign(await link_key(), row.id, customer.id, row.expires_at)
    row.token_hash = digest(token)
    session.add(row)
    await session.flush()
    return OpenedSession(row=row, token=token)
