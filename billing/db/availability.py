"""Whether an exception means "PostgreSQL cannot be reached right now" (a restart, a failover, a network cut), as
opposed to a fault of the request or of our code: the first is answered 503 with Retry-After (retry, with the same
Idempotency-Key), the second 500."""

from __future__ import annotations

import asyncpg
from sqlalchemy.exc import DBAPIError

# What asyncpg raises when the server goes away under a connection or refuses new ones: 08xxx connection
# exceptions, 57P01-57P03 (admin shutdown, crash shutdown, "the database system is starting up"; not 57014, a
# cancelled statement), and its own "connection is closed" for a connection the server dropped.
_ASYNCPG_OUTAGE = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
)


def _raised_by_asyncpg(error: BaseException) -> bool:
    """An OSError (refused, reset, no socket file, timed out) is an outage when asyncpg met it connecting or
    talking to the server, not when a handler failed to read a file."""
    tb = error.__traceback__
    while tb is not None:
        if "/asyncpg/" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


def is_database_unavailable(error: BaseException) -> bool:
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, _ASYNCPG_OUTAGE):
            return True
        if isinstance(current, asyncpg.exceptions.InterfaceError) and "connection is closed" in str(current):
            return True
        if isinstance(current, OSError) and _raised_by_asyncpg(current):
            return True
        orig = getattr(current, "orig", None)
        pending += [current.__cause__, current.__context__, orig if isinstance(orig, BaseException) else None]
    return False
