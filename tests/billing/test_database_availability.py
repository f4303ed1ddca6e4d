"""Which failures are a PostgreSQL outage (answered 503, retry) and which are not (a 500, a bug): the classifier of
billing/db/availability.py, on the exceptions asyncpg and SQLAlchemy really raise."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError

from billing.db.availability import is_database_unavailable


def _wrapped(error: Exception) -> DBAPIError:
    """As SQLAlchemy hands it to us: its DBAPIError, the driver's error as `orig` and as the cause."""
    wrapper = DBAPIError("SELECT 1", {}, error)
    wrapper.__cause__ = error
    return wrapper


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.InterfaceError(
            "cannot call Transaction.rollback(): the underlying connection is closed"
        ),
    ],
    ids=["connection lost", "admin shutdown", "starting up", "connection closed"],
)
def test_the_server_going_away_is_an_outage_bare_or_wrapped(error: Exception) -> None:
    assert is_database_unavailable(error)
    assert is_database_unavailable(_wrapped(error))


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout"),
        asyncpg.exceptions.UniqueViolationError("duplicate key value violates unique constraint"),
        asyncpg.exceptions.InterfaceError("cannot perform operation: another operation is in progress"),
        IntegrityError("INSERT", {}, Exception("duplicate")),
        ValueError("a bug"),
    ],
    ids=["statement timeout", "unique violation", "misuse of a connection", "integrity", "bug"],
)
def test_other_database_errors_and_bugs_are_not(error: Exception) -> None:
    assert not is_database_unavailable(error)
    assert not is_database_unavailable(_wrapped(error))


def test_a_file_that_cannot_be_read_is_not_an_outage(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as raised:
        (tmp_path / "missing.pdf").read_bytes()
    assert not is_database_unavailable(raised.value)


async def test_a_refused_connection_is_an_outage(tmp_path: Path) -> None:
    """No server at the socket: asyncpg's own OSError, raised inside asyncpg."""
    with pytest.raises((FileNotFoundError, ConnectionRefusedError)) as raised:
        await asyncpg.connect(f"postgresql://postgres@/postgres?host={tmp_path}", timeout=5)
    assert is_database_unavailable(raised.value)
