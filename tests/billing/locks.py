"""Waiting for a PostgreSQL lock wait to begin, so a test acts while another transaction is certainly blocked
(instead of sleeping and hoping it is)."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from billing.services import Services

# Guards against a hang only; the wait normally ends within milliseconds.
LOCK_WAIT_DEADLINE_S = 120.0


async def backend_pid(session: AsyncSession) -> int:
    """The PostgreSQL backend of the session's connection (the session starts a transaction if it has none)."""
    return int(await session.scalar(text("SELECT pg_backend_pid()")) or 0)


async def wait_until_blocked_by(
    services: Services, holder_pid: int, waiting: asyncio.Future[object] | None = None
) -> int:
    """The pid of a backend waiting for a lock that backend `holder_pid` holds, once there is one; fails at once
    if `waiting` (the work expected to block) finishes instead."""
    deadline = time.monotonic() + LOCK_WAIT_DEADLINE_S
    query = text("SELECT pid FROM pg_stat_activity WHERE :holder = ANY(pg_blocking_pids(pid)) LIMIT 1")
    while True:
        async with services.sessions() as session:
            waiter = await session.scalar(query, {"holder": holder_pid})
        if waiter is not None:
            return int(waiter)
        assert waiting is None or not waiting.done(), "it finished without waiting for the lock"
        assert time.monotonic() < deadline, f"nothing waited for a lock of backend {holder_pid}"
        await asyncio.sleep(0.02)


async def wait_until_gone(services: Services, pid: int) -> None:
    """Once backend `pid` has ended (a killed client's backend ends when it next talks to the client)."""
    deadline = time.monotonic() + LOCK_WAIT_DEADLINE_S
    query = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
    while True:
        async with services.sessions() as session:
            if not await session.scalar(query, {"pid": pid}):
                return
        assert time.monotonic() < deadline, f"backend {pid} is still there"
        await asyncio.sleep(0.02)


async def process_waiting(services: Services, holder_pid: int, statement: str) -> int | None:
    """The operating-system pid of the process whose connection's statement starting with `statement` waits for
    a lock of backend `holder_pid` (read from the connection's application_name, "billing pid <n>", so over TCP
    and Unix sockets alike); None while there is none. For a test that must tell the request it holds from a
    worker waiting for the same lock."""
    async with services.sessions() as session:
        name = await session.scalar(
            text(
                "SELECT application_name FROM pg_stat_activity WHERE :holder = ANY(pg_blocking_pids(pid)) "
                "AND query ILIKE :statement LIMIT 1"
            ),
            {"holder": holder_pid, "statement": statement + "%"},
        )
    if name is None:
        return None
    assert name.startswith("billing pid "), name
    return int(name.removeprefix("billing pid "))
