"""Test clocks: create, advance, delete, and the clock that objects of a test-clock customer live in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import SYSTEM_CLOCK, Clock, FrozenClock, utc_now
from billing.customers.models import Customer
from billing.db.lookup import get_owned, list_owned
from billing.db.pagination import Page, PageRequest
from billing.errors import Conflict, InvalidRequest, PermissionDenied
from billing.ids import new_id
from billing.test_clocks import schemas
from billing.test_clocks.models import TestClock
from billing.test_clocks.schemas import TestClockCreate
from webhooks.outbox import record_event

# Stripe's limit, kept for the same reason: a single advance should stay a bounded amount of work.
MAX_ADVANCE = timedelta(days=2 * 366)


def refuse_in_production(is_production: bool) -> None:
    if is_production:
        raise PermissionDenied(
            "Test clocks are not available when BILLING_ENV=production.", code="test_clocks_disabled"
        )


def render_test_clock(clock: TestClock) -> schemas.TestClock:
    return schemas.TestClock(
        id=clock.id,
        created_at=clock.created_at,
        name=clock.name,
        frozen_time=clock.frozen_time,
        status=cast(schemas.TestClockStatus, clock.status),
        target_time=clock.target_time,
        failure_message=clock.failure_message,
        metadata=clock.metadata_,
    )


def as_clock(clock: TestClock) -> FrozenClock:
    return FrozenClock(clock.frozen_time, test_clock_id=clock.id)


async def clock_for(session: AsyncSession, merchant_id: str, test_clock_id: str | None) -> Clock:
    """The clock an object lives in: its test clock's frozen time, or real time."""
    if test_clock_id is None:
        return SYSTEM_CLOCK
    clock = await get_test_clock(session, merchant_id, test_clock_id, param="test_clock")
    return as_clock(clock)


async def customer_clock(session: AsyncSession, merchant_id: str, customer_id: str) -> Clock:
    """The clock a customer (and everything of theirs: invoices, subscriptions) lives in."""
    test_clock_id = await session.scalar(select(Customer.test_clock_id).where(Customer.id == customer_id))
    return await clock_for(session, merchant_id, test_clock_id)


async def get_test_clock(
    session: AsyncSession,
    merchant_id: str,
    test_clock_id: str,
    *,
    param: str | None = None,
    for_update: bool = False,
) -> TestClock:
    return await get_owned(
        session,
        TestClock,
        test_clock_id,
        merchant_id=merchant_id,
        prefix="clk",
        kind="test clock",
        param=param,
        for_update=for_update,
        where=(TestClock.deleted_at.is_(None),),
    )


def _aware(value: datetime, param: str) -> datetime:
    if value.tzinfo is None:
        raise InvalidRequest(
            f"{param} must carry a time zone offset, e.g. 2027-01-31T00:00:00Z.", param=param
        )
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise InvalidRequest(
            f"{param} is out of range: use a date between the years 1 and 9999.", param=param
        ) from None


async def create_test_clock(session: AsyncSession, merchant_id: str, params: TestClockCreate) -> TestClock:
    frozen = _aware(params.frozen_time, "frozen_time")
    clock = TestClock(
        id=new_id("clk"),
        merchant_id=merchant_id,
        name=params.name,
        frozen_time=frozen,
        status="ready",
        metadata_=params.metadata,
        created_at=utc_now(),
    )
    session.add(clock)
    await session.flush()
    record_event(
        session,
        merchant_id=merchant_id,
        event_type="test_clock.created",
        obj=render_test_clock(clock),
        clock=as_clock(clock),
    )
    return clock


async def request_advance(
    session: AsyncSession, merchant_id: str, test_clock_id: str, frozen_time: datetime
) -> TestClock:
    """Mark the clock `advancing` toward `frozen_time`; the worker job then runs the due work (run_advance)."""
    clock = await get_test_clock(session, merchant_id, test_clock_id, for_update=True)
    target = _aware(frozen_time, "frozen_time")
    if clock.status == "advancing":
        raise Conflict(
            f"Test clock {clock.id} is already advancing to {clock.target_time:%Y-%m-%dT%H:%M:%SZ}. "
            "Wait until its status is ready, then advance again.",
            code="test_clock_advancing",
        )
    if target <= clock.frozen_time:
        raise InvalidRequest(
            f"frozen_time must be later than the clock's current time {clock.frozen_time:%Y-%m-%dT%H:%M:%SZ}: "
            "test clocks only move forward.",
            param="frozen_time",
        )
    if target - clock.frozen_time > MAX_ADVANCE:
        raise InvalidRequest(
            "A test clock can advance at most two years at a time; advance in several steps.",
            param="frozen_time",
        )
    clock.status = "advancing"
    clock.target_time = target
    clock.failure_message = None
    clock.advance_requested_at = utc_now()
    await session.flush()
    record_event(
        session,
        merchant_id=merchant_id,
        event_type="test_clock.advancing",
        obj=render_test_clock(clock),
        clock=as_clock(clock),
    )
    return clock


async def list_test_clocks(session: AsyncSession, merchant_id: str, page: PageRequest) -> Page[TestClock]:
    return await list_owned(
        session, TestClock, merchant_id, (TestClock.deleted_at.is_(None),), page, prefix="clk"
    )
