"""API key management as the console and the command line both do it: the use case of `billing.merchants.keys`
and its audit entry, in the caller's transaction."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from billing.console.audit import Actor, record_audit
from billing.merchants import keys


async def create_key(
    session: AsyncSession, merchant_id: str, kind: str, actor: Actor, now: datetime
) -> keys.IssuedKey:
    issued = await keys.create_key(session, merchant_id, kind, now)
    record_audit(
        session,
        merchant_id=merchant_id,
        actor=actor,
        action="api_key.created",
        object_type="api_key",
        object_id=issued.key.id,
        after=issued.key,
        now=now,
    )
    return issued


async def roll_key(
    session: AsyncSession, merchant_id: str, key_id: str, grace: timedelta, actor: Actor, now: datetime
) -> tuple[keys.KeyView, keys.IssuedKey]:
    old, issued = await keys.roll_key(session, merchant_id, key_id, now, grace=grace)
    record_audit(
        session,
        merchant_id=merchant_id,
        actor=actor,
        action="api_key.rolled",
        object_type="api_key",
        object_id=old.id,
        before={**old.as_dict(), "status": "active", "expires_at": None},
        after={"old": old.as_dict(), "new": issued.key.as_dict()},
        now=now,
    )
    return old, issued


async def revoke_key(
    session: AsyncSession, merchant_id: str, key_id: str, actor: Actor, now: datetime
) -> keys.KeyView:
    before, after = await keys.revoke_key(session, merchant_id, key_id, now)
    record_audit(
        session,
        merchant_id=merchant_id,
        actor=actor,
        action="api_key.revoked",
        object_type="api_key",
        object_id=key_id,
        before=before,
        after=after,
        now=now,
    )
    return after
