"""What `billing users ...` and `billing keys ...` do: the console's use cases run from the command line, each in
one transaction with its audit entry (actor: the command line)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import SYSTEM_CLOCK
from billing.config import ConfigError, Settings
from billing.console import key_actions, users
from billing.console.audit import CLI_ACTOR, Actor, record_audit
from billing.db.engine import make_engine, make_sessionmaker, transaction
from billing.merchants import keys

T = TypeVar("T")
CLI = Actor(label=CLI_ACTOR)


async def _in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    if not settings.database_url:
        raise ConfigError("DATABASE_URL is not set: point it at PostgreSQL, or run `billing up`.")
    engine = make_engine(settings.database_url, null_pool=True)
    try:
        async with transaction(make_sessionmaker(engine)) as session:
            return await work(session)
    finally:
        await engine.dispose()


def _user_view(user: Any) -> dict[str, Any]:
    return {"id": user.id, "email": user.email, "role": user.role, "merchant": user.merchant_id}


def _audited_user(
    session: AsyncSession, user: Any, password: str, action: str, now: datetime, detail: str | None = None
) -> dict[str, str]:
    """Audit a user's creation or reset; the command's output (the password appears only there)."""
    record_audit(
        session,
        merchant_id=user.merchant_id,
        actor=CLI,
        action=action,
        object_type="console_user",
        object_id=user.id,
        after=_user_view(user),
        now=now,
        detail=detail,
    )
    return {"id": user.id, "email": user.email, "role": user.role, "password": password}


async def create_user(settings: Settings, merchant_id: str, email: str, role: str) -> dict[str, str]:
    async def work(session: AsyncSession) -> dict[str, str]:
        now = SYSTEM_CLOCK.now()
        user, password = await users.create_user(session, merchant_id, email, role, now)
        return _audited_user(session, user, password, "user.created", now)

    return await _in_transaction(settings, work)


async def reset_password(settings: Settings, email: str, merchant_id: str | None) -> dict[str, str]:
    async def work(session: AsyncSession) -> dict[str, str]:
        now = SYSTEM_CLOCK.now()
        user, password = await users.reset_password(session, email, now, merchant_id=merchant_id)
        detail = "password reset; the account's sessions were ended and its lock lifted"
        return _audited_user(session, user, password, "user.password_reset", now, detail)

    return await _in_transaction(settings, work)


async def list_keys(settings: Settings, merchant_id: str) -> list[dict[str, object]]:
    async def work(session: AsyncSession) -> list[dict[str, object]]:
        return [key.as_dict() for key in await keys.list_keys(session, merchant_id, SYSTEM_CLOCK.now())]

    return await _in_transaction(settings, work)


async def create_key(settings: Settings, merchant_id: str, kind: str) -> dict[str, object]:
    async def work(session: AsyncSession) -> dict[str, object]:
        issued = await key_actions.create_key(session, merchant_id, kind, CLI, SYSTEM_CLOCK.now())
        return {**issued.key.as_dict(), "key": issued.secret}

    return await _in_transaction(settings, work)


async def roll_key(
    settings: Settings, merchant_id: str, key_id: str, grace_hours: int | None
) -> dict[str, object]:
    grace: timedelta = keys.roll_grace(grace_hours)

    async def work(session: AsyncSession) -> dict[str, object]:
        old, issued = await key_actions.roll_key(session, merchant_id, key_id, grace, CLI, SYSTEM_CLOCK.now())
        return {**issued.key.as_dict(), "key": issued.secret, "old_key": old.as_dict()}

    return await _in_transaction(settings, work)


async def revoke_key(settings: Settings, merchant_id: str, key_id: str) -> dict[str, object]:
    async def work(session: AsyncSession) -> dict[str, object]:
        after = await key_actions.revoke_key(session, merchant_id, key_id, CLI, SYSTEM_CLOCK.now())
        return after.as_dict()

    return await _in_transaction(settings, work)
