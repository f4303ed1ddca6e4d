"""Sending the email outbox: claim due messages, send them with no transaction open, record the outcome.

- **Claim** (one short transaction): `SELECT … FOR UPDATE SKIP LOCKED` the earliest due pending messages, count
  the attempt and push `next_attempt_at` out by a lease, commit. Two workers never take one message; a worker
  that dies after claiming leaves the lease to lapse and the message is taken again.
- **Send** outside any transaction (SMTP can take seconds; a pooled connection is not held meanwhile).
- **Record** (a new transaction), only if the row is still as we claimed it (same attempt count): `sent`; or
  due again after a backoff (1 min, 5 min, 30 min, 2 h, 6 h, 12 h, 24 h); or `failed` after `MAX_ATTEMPTS`
  attempts, or at once when the server refused it for good (5xx), with `last_error`.

Delivery is at least once: a worker that dies between the server's acceptance and the record sends the message
again after the lease. Every copy has the same Message-ID, which lets mail systems drop the duplicate.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.clock import utc_now
from billing.db.engine import transaction
from billing.merchants.models import Merchant
from billing.notifications.models import EmailMessage
from billing.notifications.transport import Outgoing, PermanentFailure, Transport

log = logging.getLogger("billing.notifications")

MAX_ATTEMPTS = 8
LEASE = timedelta(minutes=5)
BATCH = 20
CONCURRENCY = 4
_BACKOFF = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=6),
    timedelta(hours=12),
    timedelta(hours=24),
)


def retry_delay(attempts: int) -> timedelta:
    """How long after failed attempt number `attempts` (1-based) the message is tried again."""
    return _BACKOFF[min(max(attempts, 1), len(_BACKOFF)) - 1]


@dataclass
class SendReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0


@dataclass(frozen=True)
class _Claimed:
    mail: Outgoing
    attempts: int


async def _claim(session: AsyncSession, now: datetime, sender: str, limit: int) -> list[_Claimed]:
    rows = (
        await session.scalars(
            select(EmailMessage)
            .where(EmailMessage.status == "pending", EmailMessage.next_attempt_at <= now)
            .order_by(EmailMessage.next_attempt_at, EmailMessage.seq)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not rows:
        return []
    merchants = select(Merchant.id, Merchant.name).where(Merchant.id.in_({row.merchant_id for row in rows}))
    names = {merchant_id: name for merchant_id, name in (await session.execute(merchants)).all()}
    claimed = []
    for row in rows:
        row.attempts += 1
        row.next_attempt_at = now + LEASE
        claimed.append(
            _Claimed(
                mail=Outgoing(
                    id=row.id,
                    to=row.to,
                    sender=sender,
                    sender_name=names.get(row.merchant_id) or None,
                    locale=row.locale,
                    subject=row.subject,
                    text=row.text_body,
                    html=row.html_body,
                    kind=row.kind,
                ),
                attempts=row.attempts,
            )
        )
    return claimed


async def _record(
    sessions: async_sessionmaker[AsyncSession], claimed: _Claimed, error: BaseException | None, now: datetime
) -> str:
    if error is None:
        values: dict[str, object] = {"status": "sent", "sent_at": now, "last_error": None}
        outcome = "sent"
    else:
        message = f"{type(error).__name__}: {error}"[:2000]
        if isinstance(error, PermanentFailure) or claimed.attempts >= MAX_ATTEMPTS:
            values = {"status": "failed", "last_error": message}
            outcome = "failed"
        else:
            values = {"next_attempt_at": now + retry_delay(claimed.attempts), "last_error": message}
            outcome = "retried"
    async with transaction(sessions) as session:
        # Only our claim may record: a later claim (after our lease lapsed) has a higher attempt count.
        await session.execute(
            update(EmailMessage)
            .where(
                EmailMessage.id == claimed.mail.id,
                EmailMessage.status == "pending",
                EmailMessage.attempts == claimed.attempts,
            )
            .values(**values)
        )
    return outcome


async def send_due_emails(
    sessions: async_sessionmaker[AsyncSession],
    transport: Transport,
    *,
    sender: str,
    now: datetime | None = None,
    limit: int = BATCH,
) -> SendReport:
    """Send the pending emails that are due (at most `limit`); `now` is real time unless a test moves it."""
    moment = now or utc_now()
    async with transaction(sessions) as session:
        claimed = await _claim(session, moment, sender, limit)
    report = SendReport()
    slots = asyncio.Semaphore(CONCURRENCY)

    async def one(item: _Claimed) -> None:
        async with slots:
            error: BaseException | None = None
            try:
                await transport.send(item.mail, utc_now())
            except Exception as exc:
                error = exc
                log.warning(
                    "email %s (%s) not sent by %s, attempt %d: %s",
                    item.mail.id,
                    item.mail.kind,
                    transport.description,
                    item.attempts,
                    exc,
                )
            outcome = await _record(sessions, item, error, now or utc_now())
            setattr(report, outcome, getattr(report, outcome) + 1)

    await asyncio.gather(*(one(item) for item in claimed))
    return report
