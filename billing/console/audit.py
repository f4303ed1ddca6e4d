"""The console's audit log: one entry per action (who, what, when, the object before and after), written by
the caller in the transaction of the action itself."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.console.models import AuditEntry
from billing.ids import new_id

CLI_ACTOR = "command line"


@dataclass(frozen=True)
class Actor:
    """Who acts: a console user (id and email), or the command line (no user)."""

    label: str
    user_id: str | None = None
    ip: str | None = None


def as_builtins(value: Any) -> dict[str, Any] | None:
    """A msgspec Struct, a dataclass view or a dict as JSON-ready builtins (datetimes as RFC 3339)."""
    if value is None:
        return None
    if hasattr(value, "as_dict"):
        value = value.as_dict()
    built = msgspec.to_builtins(value)
    return built if isinstance(built, dict) else {"value": built}


def record_audit(
    session: AsyncSession,
    *,
    merchant_id: str,
    actor: Actor,
    action: str,
    object_type: str,
    object_id: str | None,
    now: datetime,
    before: Any = None,
    after: Any = None,
    detail: str | None = None,
) -> AuditEntry:
    """Stage one audit entry in the caller's transaction: it commits with the action or not at all."""
    entry = AuditEntry(
        id=new_id("aud"),
        merchant_id=merchant_id,
        user_id=actor.user_id,
        actor=actor.label,
        action=action,
        object_type=object_type,
        object_id=object_id,
        before=as_builtins(before),
        after=as_builtins(after),
        ip=actor.ip,
        detail=detail,
        created_at=now,
    )
    session.add(entry)
    return entry


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    total: int


async def list_audit(
    session: AsyncSession,
    merchant_id: str,
    *,
    limit: int,
    offset: int = 0,
    object_id: str | None = None,
) -> AuditPage:
    """The merchant's audit entries, newest first (optionally about one object)."""
    where = [AuditEntry.merchant_id == merchant_id]
    if object_id:
        where.append(AuditEntry.object_id == object_id)
    total = await session.scalar(select(func.count()).select_from(AuditEntry).where(*where))
    rows = await session.scalars(
        select(AuditEntry).where(*where).order_by(AuditEntry.seq.desc()).limit(limit).offset(offset)
    )
    return AuditPage(entries=list(rows.all()), total=int(total or 0))
