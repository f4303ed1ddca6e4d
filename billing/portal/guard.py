"""What keeps a portal form from doing harm twice: each form posts once (its key, claimed under a unique key in
the transaction of what it does), and card numbers are tried a bounded number of times per link.

Double submits: every form the portal renders carries a random `form_key`. The action claims (login, key) with
an INSERT … ON CONFLICT DO NOTHING in its own transaction: a second post of the same form waits on the unique
index until the first commits, then finds the claim and is sent where the first was (its recorded outcome). If
the first failed and rolled back, the claim went with it and the form may be posted again.

Card attempts: at most `CARD_ATTEMPTS_PER_HOUR` card numbers per link within any hour of real time, counted
when submitted (accepted or not) in a transaction of their own, so a rejected card still counts. The link's row
is locked while counting, so parallel posts cannot all slip under the limit.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.portal.models import PortalCardAttempt, PortalFormSubmission, PortalSession

CARD_ATTEMPTS_PER_HOUR = 5
CARD_WINDOW = timedelta(hours=1)
# How long a second post of a form waits for the first one's outcome (a charge in flight) before answering.
OUTCOME_WAIT = timedelta(seconds=20)
IN_PROGRESS = ""


async def claim_form(
    session: AsyncSession, login_id: str, form_key: str, action: str, now: datetime
) -> str | None:
    """None: this post is the form's first, go ahead (the claim commits or rolls back with the action).
    Otherwise the first post's outcome: where it redirected, or IN_PROGRESS while it has none yet."""
    inserted = await session.scalar(
        insert(PortalFormSubmission)
        .values(login_id=login_id, form_key=form_key, action=action, created_at=now)
        .on_conflict_do_nothing(index_elements=["login_id", "form_key"])
        .returning(PortalFormSubmission.form_key)
    )
    if inserted is not None:
        return None
    outcome = await session.scalar(
        select(PortalFormSubmission.outcome).where(
            PortalFormSubmission.login_id == login_id, PortalFormSubmission.form_key == form_key
        )
    )
    return outcome or IN_PROGRESS


async def record_outcome(session: AsyncSession, login_id: str, form_key: str, outcome: str) -> None:
    await session.execute(
        update(PortalFormSubmission)
        .where(PortalFormSubmission.login_id == login_id, PortalFormSubmission.form_key == form_key)
        .values(outcome=outcome)
    )


async def wait_for_outcome(
    sessions: async_sessionmaker[AsyncSession],
    login_id: str,
    form_key: str,
    *,
    wait: timedelta = OUTCOME_WAIT,
) -> str | None:
    """The outcome of a form whose first post is still at work (a charge), polled without holding a connection
    in between; None if it has none within `wait`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait.total_seconds()
    while True:
        async with sessions() as session:
            outcome = await session.scalar(
                select(PortalFormSubmission.outcome).where(
                    PortalFormSubmission.login_id == login_id, PortalFormSubmission.form_key == form_key
                )
            )
        if outcome or loop.time() >= deadline:
            return outcome or None
        await asyncio.sleep(0.2)


async def take_card_attempt(session: AsyncSession, portal_session_id: str, now: datetime) -> datetime | None:
    """Count one card attempt for the link, or refuse it: None when it is allowed (and counted), else the
    instant from which the next attempt will be."""
    await session.scalar(
        select(PortalSession.id).where(PortalSession.id == portal_session_id).with_for_update()
    )
    since = now - CARD_WINDOW
    recent = await session.execute(
        select(func.count(), func.min(PortalCardAttempt.created_at)).where(
            PortalCardAttempt.portal_session_id == portal_session_id, PortalCardAttempt.created_at > since
        )
    )
    count, oldest = recent.one()
    if count >= CARD_ATTEMPTS_PER_HOUR:
        return (oldest or now) + CARD_WINDOW
    session.add(PortalCardAttempt(portal_session_id=portal_session_id, created_at=now))
    await session.flush()
    return None


async def card_attempts_left(session: AsyncSession, portal_session_id: str, now: datetime) -> int:
    count = await session.scalar(
        select(func.count()).where(
            PortalCardAttempt.portal_session_id == portal_session_id,
            PortalCardAttempt.created_at > now - CARD_WINDOW,
        )
    )
    return max(0, CARD_ATTEMPTS_PER_HOUR - int(count or 0))
