"""Deleting a test clock, with every customer living in its time (Stripe's rule)."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import utc_now
from billing.customers.models import Customer
from billing.customers.service import delete_customer_row
from billing.scheduler.models import ScheduledTask
from billing.test_clocks.models import TestClock
from billing.test_clocks.service import as_clock, get_test_clock, render_test_clock
from webhooks.outbox import record_event


async def delete_test_clock(session: AsyncSession, merchant_id: str, test_clock_id: str) -> TestClock:
    """Delete the clock with every customer living in its time, and cancel its pending work (Stripe's rule)."""
    clock = await get_test_clock(session, merchant_id, test_clock_id, for_update=True)
    customers = (
        await session.scalars(
            select(Customer)
            .where(
                Customer.merchant_id == merchant_id,
                Customer.test_clock_id == clock.id,
                Customer.deleted_at.is_(None),
            )
            .with_for_update()
        )
    ).all()
    for customer in customers:
        await delete_customer_row(session, customer, as_clock(clock))
    await session.execute(
        update(ScheduledTask)
        .where(ScheduledTask.test_clock_id == clock.id, ScheduledTask.status == "pending")
        .values(status="canceled")
    )
    clock.deleted_at = utc_now()
    await session.flush()
    record_event(
        session,
        merchant_id=merchant_id,
        event_type="test_clock.deleted",
        obj=render_test_clock(clock),
        clock=as_clock(clock),
    )
    return clock
