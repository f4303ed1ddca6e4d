"""The hosted invoice link: an unguessable token per finalized invoice, the public URLs built from it, and the
lookup by token. No Litestar here; the public routes are in `billing.invoices.public_routes`.

The token is the only secret guarding the page (whoever holds the link sees the invoice, as with Stripe's hosted
invoice page), so it is 40 base62 characters from `secrets` (about 238 bits), found by an exact lookup on a
unique index. Drafts have none: a draft is not a document to send to anyone.
"""

from __future__ import annotations

import os
import re

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.config import DEFAULT_PUBLIC_URL
from billing.ids import random_token
from billing.invoices.models import Invoice

TOKEN_LENGTH = 40
_TOKEN_SHAPE = re.compile(rf"[0-9A-Za-z]{{{TOKEN_LENGTH}}}")


def new_hosted_token() -> str:
    return random_token(TOKEN_LENGTH)


def public_base_url() -> str:
    """Where people reach this deployment: `BILLING_PUBLIC_URL` (read when a link is made, like every other
    process setting it comes from the environment; `billing serve` and `billing up` set it to the address they
    listen on when it is unset), else the development server's default address."""
    return (os.environ.get("BILLING_PUBLIC_URL") or DEFAULT_PUBLIC_URL).rstrip("/")


def hosted_invoice_url(token: str | None) -> str | None:
    return f"{public_base_url()}/i/{token}" if token else None


def hosted_invoice_pdf_url(token: str | None) -> str | None:
    return f"{public_base_url()}/i/{token}/pdf" if token else None


async def find_invoice_by_token(session: AsyncSession, token: str) -> Invoice | None:
    """The finalized invoice behind a hosted link, or None (malformed and unknown tokens alike)."""
    if not _TOKEN_SHAPE.fullmatch(token):
        return None
    return await session.scalar(
        select(Invoice).where(Invoice.hosted_token == token, Invoice.status != "draft")
    )
