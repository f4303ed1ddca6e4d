"""API key management: list, create, roll and revoke a merchant's secret and publishable keys.

A roll issues a new key of the same kind at once and lets the old one keep working for a grace period (24 hours
unless told otherwise, at most 30 days), so the new key can be deployed before the old one stops; a revoke stops
a key at once. Raw keys exist only in the value a create or roll returns: only their SHA-256 is stored.
Each use case runs in the caller's transaction; whoever calls it (console, command line) records the audit entry
in that same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.errors import Conflict, InvalidRequest, not_found
from billing.ids import is_valid_id
from billing.merchants.models import ApiKey, Merchant
from billing.merchants.service import issue_key

KINDS = ("secret", "publishable")
DEFAULT_ROLL_GRACE = timedelta(hours=24)
MAX_ROLL_GRACE = timedelta(days=30)


@dataclass(frozen=True)
class KeyView:
    """A key as people see it: never the key itself, only its first and last characters."""

    id: str
    kind: str
    redacted: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    rolled_from: str | None
    status: str  # active, expiring (rolled: works until expires_at), expired, revoked

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "kind": self.kind,
            "redacted": self.redacted,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "rolled_from": self.rolled_from,
            "status": self.status,
        }


@dataclass(frozen=True)
class IssuedKey:
    """A new key: `secret` is the raw key, shown this once."""

    key: KeyView
    secret: str


def key_status(key: ApiKey, now: datetime) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None:
        return "expiring" if key.expires_at > now else "expired"
    return "active"


def view_key(key: ApiKey, now: datetime) -> KeyView:
    return KeyView(
        id=key.id,
        kind=key.kind,
        redacted=key.redacted,
        created_at=key.created_at,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
        rolled_from=key.rolled_from,
        status=key_status(key, now),
    )


async def _merchant_exists(session: AsyncSession, merchant_id: str) -> None:
    if await session.scalar(select(Merchant.id).where(Merchant.id == merchant_id)) is None:
        raise not_found("merchant", merchant_id, param="merchant")


async def list_keys(session: AsyncSession, merchant_id: str, now: datetime) -> list[KeyView]:
    """Every key of the merchant, newest first, revoked and expired ones included (they explain the history)."""
    await _merchant_exists(session, merchant_id)
    rows = await session.scalars(
        select(ApiKey).where(ApiKey.merchant_id == merchant_id).order_by(ApiKey.created_at.desc(), ApiKey.id)
    )
    return [view_key(row, now) for row in rows]


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidRequest(f"kind must be secret or publishable, not {kind!r}.", param="kind")
    return kind


async def create_key(session: AsyncSession, merchant_id: str, kind: str, now: datetime) -> IssuedKey:
    """A new key of `kind` beside the existing ones."""
    await _merchant_exists(session, merchant_id)
    row, raw = issue_key(merchant_id, _check_kind(kind))
    row.created_at = now
    session.add(row)
    await session.flush()
    return IssuedKey(key=view_key(row, now), secret=raw)


async def get_key(
    session: AsyncSession, merchant_id: str, key_id: str, *, for_update: bool = False
) -> ApiKey:
    if not is_valid_id(key_id, "key"):
        raise InvalidRequest(f"{key_id[:60]!r} is not a key id (key_...).", param="key")
    stmt = select(ApiKey).where(ApiKey.id == key_id, ApiKey.merchant_id == merchant_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = await session.scalar(stmt)
    if row is None:
        raise not_found("API key", key_id, param="key")
    return row


def _check_usable(key: ApiKey, now: datetime, action: str) -> None:
    status = key_status(key, now)
    if status != "active":
        raise Conflict(
            f"Key {key.id} is {status}: only an active key can be {action}. "
            + (
                "Revoke it to stop it before its expiry."
                if status == "expiring"
                else "Create a new key instead."
            ),
            code="api_key_not_active",
            param="key",
        )


def roll_grace(hours: int | None) -> timedelta:
    """The grace period of a roll from a number of hours (None: the default, 24 hours)."""
    if hours is None:
        return DEFAULT_ROLL_GRACE
    grace = timedelta(hours=hours)
    if hours < 0 or grace > MAX_ROLL_GRACE:
        raise InvalidRequest(
            f"The grace period is a whole number of hours from 0 (the old key stops at once) to "
            f"{int(MAX_ROLL_GRACE.total_seconds() // 3600)}; got {hours}.",
            param="expires_in_hours",
        )
    return grace


async def roll_key(
    session: AsyncSession,
    merchant_id: str,
    key_id: str,
    now: datetime,
    *,
    grace: timedelta = DEFAULT_ROLL_GRACE,
) -> tuple[KeyView, IssuedKey]:
    """Replace an active key: a new key of the same kind works at once, the old one until now + grace.
    Returns (the old key as it is now, the new key)."""
    old = await get_key(session, merchant_id, key_id, for_update=True)
    _check_usable(old, now, "rolled")
    old.expires_at = now + grace
    row, raw = issue_key(merchant_id, old.kind)
    row.created_at = now
    row.rolled_from = old.id
    session.add(row)
    await session.flush()
    return view_key(old, now), IssuedKey(key=view_key(row, now), secret=raw)


async def revoke_key(
    session: AsyncSession, merchant_id: str, key_id: str, now: datetime
) -> tuple[KeyView, KeyView]:
    """Stop a key at once (an active key, or a rolled one still in its grace period). Returns (before, after).
    The merchant's last working secret key cannot be revoked: it would lock the merchant out of the API."""
    key = await get_key(session, merchant_id, key_id, for_update=True)
    before = view_key(key, now)
    if before.status in ("revoked", "expired"):
        raise Conflict(f"Key {key.id} is already {before.status}.", code="api_key_not_active", param="key")
    if key.kind == "secret":
        others = await session.scalars(
            select(ApiKey)
            .where(
                ApiKey.merchant_id == merchant_id,
                ApiKey.kind == "secret",
                ApiKey.id != key.id,
                ApiKey.revoked_at.is_(None),
            )
            .with_for_update()
        )
        if not any(key_status(other, now) in ("active", "expiring") for other in others):
            raise Conflict(
                f"Key {key.id} is the merchant's last working secret key. Create or roll a key first, then revoke "
                "this one.",
                code="last_secret_key",
                param="key",
            )
    key.revoked_at = now
    await session.flush()
    return before, view_key(key, now)
