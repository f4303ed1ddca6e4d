"""One engine and pool per process (STACK-NOTES), and the transaction helper every use case runs in."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool


def asyncpg_url(url: str) -> str:
    """Accept `postgresql://` (SPEC §2) and `postgresql+asyncpg://`; SQLAlchemy needs the latter."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError(f"DATABASE_URL must start with postgresql://, not {url.split(':', 1)[0]}://")


def make_engine(
    url: str, *, pool_size: int = 10, max_overflow: int = 10, null_pool: bool = False
) -> AsyncEngine:
    kwargs: dict[str, Any] = {"pool_pre_ping": False}
    if null_pool:
        kwargs["poolclass"] = NullPool
    else:
        kwargs.update(pool_size=pool_size, max_overflow=max_overflow, pool_recycle=1800)
    engine = create_async_engine(asyncpg_url(url), **kwargs)
    event.listen(engine.sync_engine, "do_connect", _connection_settings)
    event.listen(engine.sync_engine, "checkout", _refuse_closed_connection)
    return engine


def _refuse_closed_connection(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """A pooled connection the server has closed (a restart or failover of PostgreSQL, `pg_terminate_backend`,
    an idle timeout) is replaced at checkout, before any statement of the request ran on it, so the request goes
    on with a new connection instead of failing with a 503.

    asyncpg reads every open socket in the event loop, so a connection whose server went away is marked closed
    as soon as the loop sees the end of its stream: the check costs no round trip (pool_pre_ping would cost one
    `SELECT` per checkout). It cannot see a connection cut without a word (a network partition with no reset);
    a request on such a connection fails on its first statement, answers 503, and SQLAlchemy then recycles the
    rest of the pool."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def _connection_settings(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
    # Each connection names the process that opened it, when it opens ("billing pid 4242": an API process or
    # worker started by a supervisor has its own), so pg_stat_activity tells an operator which process holds a
    # lock or waits for one, over TCP and Unix sockets alike.
    cparams["server_settings"] = {"timezone": "UTC", "application_name": f"billing pid {os.getpid()}"}


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=True)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit when the block ends normally, roll back on any exception."""
    async with sessions() as session, session.begin():
        yield session


# A write that must outlive the rollback of the work that staged it: the record of a refusal (a risk decision
# that blocked a new card is also an attempt the velocity rules count). Whoever rolls that work back runs it
# afterwards, in the transaction it goes on with or in a new one, never on a second connection meanwhile.
KeptWrite = Callable[[AsyncSession], Awaitable[None]]
_KEPT = "billing.kept_after_rollback"


def keep_after_rollback(session: AsyncSession, write: KeptWrite) -> None:
    session.info.setdefault(_KEPT, []).append(write)


def take_kept_writes(session: AsyncSession) -> list[KeptWrite]:
    """The writes staged with keep_after_rollback, removed from the session (call it after the rollback)."""
    kept: list[KeptWrite] = session.info.pop(_KEPT, [])
    return kept
