"""The Idempotency-Key store (SPEC §3), in PostgreSQL.

A request with a key inserts its row inside the request's own transaction, so the row, the state change and the
stored response commit together or not at all. A concurrent duplicate's INSERT waits on the first one's
uncommitted row (PostgreSQL blocks on the unique index), then sees the finished row: it waits and replays rather
than racing. Only responses below 500 are stored, so a request that failed on our side can be retried.

A 202 is stored but is not final: it says the outcome was not known yet (a charge whose gateway did not answer).
A retry with the key and the same body runs the request again, told what it answered before
(`Claimed.earlier_pending`), so it can answer with the outcome as it is now instead of acting a second time.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import CheckConstraint, ForeignKey, Integer, LargeBinary, String, delete, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base
from billing.errors import IdempotencyError, InvalidRequest

RETENTION = timedelta(hours=24)
MAX_KEY_LENGTH = 255
# How long a duplicate waits for the first request with its key before giving up with a 409.
WAIT_FOR_FIRST_REQUEST_SECONDS = 20
WAIT_FOR_FIRST_REQUEST = f"{WAIT_FOR_FIRST_REQUEST_SECONDS}s"


class KeyInProgress(IdempotencyError):
    """The first request with this key committed a checkpoint and has not finished (it is calling a gateway, or
    it was interrupted). Its row is not locked meanwhile, so a duplicate polls for it instead of waiting on a
    lock (ApiMiddleware), without holding a connection between looks."""


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (CheckConstraint("status IN ('in_progress', 'completed')", name="status"),)

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(2000))
    status: Mapped[str] = mapped_column(String(16))
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_content_type: Mapped[str | None] = mapped_column(String(200))
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


@dataclass(frozen=True)
class StoredResponse:
    status: int
    content_type: str
    body: bytes


# A stored answer with this status is not final (see the module docstring).
PENDING_STATUS = 202


@dataclass(frozen=True)
class Claimed:
    """This request owns the key. `earlier_pending`: the 202 it answered before under this key, if any."""

    earlier_pending: StoredResponse | None = None


def validate_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters; a UUID v4 is a good choice.",
            code="idempotency_key_invalid",
            param="Idempotency-Key",
        )
    return key


def request_fingerprint(method: str, path: str, query: bytes, body: bytes, key: bytes | None = None) -> str:
    """A digest of the request, to tell a replay from a different request under the same key. Keyed (HMAC) by
    the API: bodies can hold card numbers and CVCs, and a plain hash of a card number is brute-forced in hours
    (PCI DSS 3.5.1.1 requires keyed hashes)."""
    digest = hmac.new(key, digestmod=hashlib.sha256) if key is not None else hashlib.sha256()
    for part in (method.encode(), path.encode(), query, body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


async def claim(
    session: AsyncSession,
    *,
    merchant_id: str,
    key: str,
    method: str,
    path: str,
    fingerprint: str,
    now: datetime,
) -> StoredResponse | Claimed:
    """Own `key` for this transaction (Claimed), or the stored response to replay.

    Raises IdempotencyError when the key was used for a different request, or when the first request with it is
    still running after the wait."""
    # The wait is a lock_timeout on these two statements only; a timeout aborts the transaction, so nothing may
    # run in it afterwards (the middleware rolls it back and answers the 409).
    await session.execute(text(f"SET LOCAL lock_timeout = '{WAIT_FOR_FIRST_REQUEST}'"))
    try:
        inserted = await session.scalar(
            insert(IdempotencyRecord)
            .values(
                merchant_id=merchant_id,
                key=key,
                fingerprint=fingerprint,
                method=method,
                path=path,
                status="in_progress",
                created_at=now,
                expires_at=now + RETENTION,
            )
            .on_conflict_do_nothing(index_elements=["merchant_id", "key"])
            .returning(IdempotencyRecord.key)
        )
        record = None
        if inserted is None:
            record = await session.scalar(
                select(IdempotencyRecord)
                .where(IdempotencyRecord.merchant_id == merchant_id, IdempotencyRecord.key == key)
                .with_for_update()
            )
    except DBAPIError as exc:
        if "lock timeout" in str(exc.orig).lower() or "LockNotAvailable" in type(exc.orig).__name__:
            raise IdempotencyError(
                "A request with this Idempotency-Key is still being processed. Retry in a few seconds to get its "
                "result.",
                code="idempotency_key_in_use",
                param="Idempotency-Key",
            ) from None
        raise
    await session.execute(text("SET LOCAL lock_timeout = 0"))
    if record is None:
        return Claimed()
    if record.expires_at <= now:
        # An expired key is new again: take it over for this request.
        await _take_over(
            session, merchant_id, key, fingerprint=fingerprint, method=method, path=path, now=now
        )
        return Claimed()
    if record.fingerprint != fingerprint:
        raise IdempotencyError(
            f"Keys for idempotent requests can only be used with the same parameters they were first used with "
            f"(first used for {record.method} {record.path}). Use a new Idempotency-Key for a different request.",
            param="Idempotency-Key",
        )
    if record.status != "completed" or record.response_status is None:
        # Committed while in progress (a request that checkpointed, then was interrupted or is between steps).
        raise KeyInProgress(
            "A request with this Idempotency-Key is still being processed, or was interrupted after it charged "
            "or recorded something. Retrieve the objects it created (e.g. list the customer's subscriptions "
            "or payments) before retrying with a new key.",
            code="idempotency_key_in_use",
            param="Idempotency-Key",
        )
    stored = StoredResponse(
        status=record.response_status,
        content_type=record.response_content_type or "",
        body=record.response_body or b"",
    )
    if stored.status == PENDING_STATUS:
        # Not final: run again, keeping the expiry of the first request (24 h from when the key was first used).
        await session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.merchant_id == merchant_id, IdempotencyRecord.key == key)
            .values(status="in_progress")
        )
        return Claimed(earlier_pending=stored)
    return stored


async def _take_over(
    session: AsyncSession,
    merchant_id: str,
    key: str,
    *,
    fingerprint: str,
    method: str,
    path: str,
    now: datetime,
) -> None:
    await session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.merchant_id == merchant_id, IdempotencyRecord.key == key)
        .values(
            fingerprint=fingerprint,
            method=method,
            path=path,
            status="in_progress",
            response_status=None,
            response_content_type=None,
            response_body=None,
            created_at=now,
            expires_at=now + RETENTION,
        )
    )


async def relock(session: AsyncSession, *, merchant_id: str, key: str) -> None:
    """Take the key row's lock again in a new transaction of the same request (after a checkpoint)."""
    await session.execute(
        select(IdempotencyRecord.key)
        .where(IdempotencyRecord.merchant_id == merchant_id, IdempotencyRecord.key == key)
        .with_for_update()
    )


async def complete(session: AsyncSession, *, merchant_id: str, key: str, response: StoredResponse) -> None:
    await session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.merchant_id == merchant_id, IdempotencyRecord.key == key)
        .values(
            status="completed",
            response_status=response.status,
            response_content_type=response.content_type,
            response_body=response.body,
        )
    )


async def purge_expired(session: AsyncSession, now: datetime) -> int:
    result = await session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= now))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
