"""The daily card-expiry scan: warn customers whose card pays a live subscription and expires within 30 days.

Why one scan per merchant and clock, not a task per customer or per card: a daily scan is one indexed query
over the cards that expire in the next month or two, whatever the number of customers, and it reads the
cards as they are that day (a card replaced or re-dated since needs no cancelled task). It runs in the clock
of the customers it looks at: one chain in real time per merchant, one per test clock, so a test clock's
advance runs its days' scans in order like any other task. The chain is started by the first subscription in
that clock (`ensure_card_expiry_scan`, called by `create_subscription`) and ends by itself when no subscription
there is live any more; the next subscription starts it again.

A card is valid through the last day of its expiry month, so it "expires" at the first instant of the next
month (UTC). The notice goes once the remaining time is at most `NOTICE_WINDOW` (30 days): about the first of
the expiry month. `dedupe_key` = card + expiry month: never twice for one card and month, however many scans,
workers or subscriptions see it; a card given a new expiry date is watched again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, exists, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.customers.models import Customer
from billing.notifications.emails import queue_card_expiring_email
from billing.payment_methods.models import PaymentMethod
from billing.scheduler.models import ScheduledTask
from billing.scheduler.registry import TaskContext
from billing.scheduler.runner import schedule_task
from billing.subscriptions.hooks import SubscriptionCreated
from billing.subscriptions.models import Subscription

SCAN = "notifications.card_expiry_scan"
NOTICE_WINDOW = timedelta(days=30)
# Subscriptions whose renewals will charge a card: they are the reason to warn about it.
_CHARGING = ("trialing", "active", "past_due")
# Subscriptions that keep the daily scan going (a paused one may resume and charge again).
_LIVE = ("trialing", "active", "past_due", "unpaid", "paused")


def card_expires_at(exp_year: int, exp_month: int) -> datetime:
    """The first instant the card is no longer valid: the start of the month after its expiry month (UTC)."""
    return datetime(exp_year + exp_month // 12, exp_month % 12 + 1, 1, tzinfo=UTC)


def expiring_months(now: datetime) -> list[tuple[int, int]]:
    """(year, month) of the cards that expire within NOTICE_WINDOW of `now` and have not expired yet."""
    months = []
    year, month = now.year, now.month
    for _ in range(3):
        expiry = card_expires_at(year, month)
        if now < expiry <= now + NOTICE_WINDOW:
            months.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _scan_key(merchant_id: str, clock: Clock, day: datetime) -> str:
    return f"card_expiry_scan:{merchant_id}:{clock.test_clock_id or 'real'}:{day.date().isoformat()}"


def _next_midnight(now: datetime) -> datetime:
    day = now.astimezone(UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _in_clock(clock: Clock) -> ColumnElement[bool]:
    return (
        Customer.test_clock_id.is_(None)
        if clock.test_clock_id is None
        else Customer.test_clock_id == clock.test_clock_id
    )


async def ensure_card_expiry_scan(session: AsyncSession, merchant_id: str, clock: Clock) -> None:
    """Start the daily scan of this merchant's cards in `clock` unless it is already going: the next one at
    midnight UTC (idempotent by day). Not one at once: a scan is a daily job, and a task due right away would sit
    in every real-time tick's way for nothing (the card of a new subscription is read at the coming midnight)."""
    scheduled = await session.scalar(
        select(
            exists().where(
                ScheduledTask.kind == SCAN,
                ScheduledTask.merchant_id == merchant_id,
                ScheduledTask.status == "pending",
                ScheduledTask.test_clock_id.is_(None)
                if clock.test_clock_id is None
                else ScheduledTask.test_clock_id == clock.test_clock_id,
            )
        )
    )
    if scheduled:
        return
    due = _next_midnight(clock.now())
    await schedule_task(
        session,
        merchant_id=merchant_id,
        kind=SCAN,
        due_at=due,
        clock=clock,
        dedupe_key=_scan_key(merchant_id, clock, due),
    )


async def queue_card_expiry_notices(session: AsyncSession, merchant_id: str, clock: Clock) -> int:
    """Queue the card-expiring email for every card that pays a charging subscription of this merchant in
    `clock` and expires within NOTICE_WINDOW; returns how many were queued (repeats are skipped)."""
    months = expiring_months(clock.now())
    if not months:
        return 0
    paying_card = func.coalesce(Subscription.default_payment_method, Customer.default_payment_method)
    rows = (
        await session.execute(
            select(Customer, PaymentMethod)
            .join(Subscription, Subscription.customer_id == Customer.id)
            .join(PaymentMethod, PaymentMethod.id == paying_card)
            .where(
                Subscription.merchant_id == merchant_id,
                Subscription.status.in_(_CHARGING),
                Customer.deleted_at.is_(None),
                _in_clock(clock),
                PaymentMethod.detached_at.is_(None),
                PaymentMethod.customer_id == Customer.id,
                tuple_(PaymentMethod.card_exp_year, PaymentMethod.card_exp_month).in_(months),
            )
            .order_by(PaymentMethod.seq)
        )
    ).all()
    queued = 0
    seen: set[str] = set()
    for customer, pm in rows:
        if pm.id in seen:
            continue
        seen.add(pm.id)
        if await queue_card_expiring_email(session, customer, pm, clock) is not None:
            queued += 1
    return queued


async def _has_live_subscriptions(session: AsyncSession, merchant_id: str, clock: Clock) -> bool:
    return bool(
        await session.scalar(
            select(
                exists()
                .where(
                    Subscription.merchant_id == merchant_id,
                    Subscription.status.in_(_LIVE),
                    Subscription.customer_id == Customer.id,
                    _in_clock(clock),
                )
                .correlate_except(Subscription, Customer)
            )
        )
    )


async def card_expiry_scan_task(ctx: TaskContext) -> None:
    merchant_id = ctx.task.merchant_id
    await queue_card_expiry_notices(ctx.session, merchant_id, ctx.clock)
    if await _has_live_subscriptions(ctx.session, merchant_id, ctx.clock):
        following = _next_midnight(ctx.clock.now())
        await schedule_task(
            ctx.session,
            merchant_id=merchant_id,
            kind=SCAN,
            due_at=following,
            clock=ctx.clock,
            dedupe_key=_scan_key(merchant_id, ctx.clock, following),
        )


async def on_subscription_created(event: SubscriptionCreated) -> None:
    """Hook `subscription_created`: the merchant's daily card-expiry scan runs from now on."""
    await ensure_card_expiry_scan(event.session, event.merchant_id, event.clock)
