"""Creating merchants with their keys, and resolving a presented key to its merchant."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import utc_now
from billing.errors import AuthenticationFailed
from billing.ids import new_id, random_token
from billing.merchants.models import ApiKey, Merchant

SECRET_PREFIX = "sk_"  # noqa: S105 - a prefix, not a secret
PUBLISHABLE_PREFIX = "pk_"
_KEY_RANDOM_LENGTH = 43  # base62: about 256 bits


@dataclass(frozen=True)
class NewMerchant:
    id: str
    name: str
    secret_key: str
    publishable_key: str


@dataclass(frozen=True)
class Principal:
    merchant_id: str
    key_kind: str  # "secret" | "publishable"


async def merchant_name(session: AsyncSession, merchant_id: str) -> str:
    """The merchant's name as customers see it (emails, the portal): settings.branding.display_name, else the
    merchant's name."""
    row = (
        await session.execute(select(Merchant.name, Merchant.settings).where(Merchant.id == merchant_id))
    ).first()
    if row is None:
        return ""
    display = ((row.settings or {}).get("branding") or {}).get("display_name")
    return str(display or row.name or "")


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def _redact(raw_key: str) -> str:
    return raw_key[:3] + "..." + raw_key[-4:]


def issue_key(merchant_id: str, kind: str) -> tuple[ApiKey, str]:
    """A new key row of `kind` (not yet added to a session) and the raw key, which exists only here."""
    prefix = SECRET_PREFIX if kind == "secret" else PUBLISHABLE_PREFIX
    raw = prefix + random_token(_KEY_RANDOM_LENGTH)
    return ApiKey(
        id=new_id("key"), merchant_id=merchant_id, kind=kind, key_hash=hash_key(raw), redacted=_redact(raw)
    ), raw


async def create_merchant(
    session: AsyncSession, name: str, *, settings: dict[str, Any] | None = None
) -> NewMerchant:
    """A merchant with one secret and one publishable key; the raw keys exist only in the returned value."""
    name = name.strip()
    if not name or len(name) > 200:
        raise ValueError("a merchant name must be 1 to 200 characters")
    merchant = Merchant(id=new_id("mer"), name=name, settings=settings or {})
    session.add(merchant)
    await session.flush()
    secret, secret_raw = issue_key(merchant.id, "secret")
    publishable, publishable_raw = issue_key(merchant.id, "publishable")
    session.add_all([secret, publishable])
    await session.flush()
    return NewMerchant(
        id=merchant.id, name=merchant.name, secret_key=secret_raw, publishable_key=publishable_raw
    )


async def authenticate(session: AsyncSession, raw_key: str) -> Principal:
    """The merchant a presented API key belongs to, or AuthenticationFailed saying what is wrong."""
    if not raw_key.startswith((SECRET_PREFIX, PUBLISHABLE_PREFIX)):
        raise AuthenticationFailed(
            "Invalid API key: keys start with sk_ (secret, for your server) or pk_ (publishable, for card forms). "
            "Send it as 'Authorization: Bearer sk_...'."
        )
    digest = hash_key(raw_key)
    row = (
        await session.execute(
            select(ApiKey.merchant_id, ApiKey.kind, ApiKey.key_hash).where(
                ApiKey.key_hash == digest,
                ApiKey.revoked_at.is_(None),
                # A rolled key works until the end of its grace period (billing.merchants.keys).
                or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > utc_now()),
            )
        )
    ).first()
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        raise AuthenticationFailed(
            f"Invalid API key provided: {_redact(raw_key)}. Check that you copied the whole key, that it was not "
            "revoked or expired after a roll, and that you talk to the right engine."
        )
    return Principal(merchant_id=row.merchant_id, key_kind=row.kind)
