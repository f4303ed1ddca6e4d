"""Test-clock time: advancing a clock (every task due up to its target, in due order, the clock's time moved to
each task's due instant before it runs), and, on every tick, the tasks of a ready clock already due at its frozen
time (as real-time work due now runs at once). Either way a clock's tasks run one at a time under its row lock,
in due order, through the scheduler's `execute_set`, and a failure stops the clock (`internal_failure`) rather
than skip or reorder its work. The scheduler imports none of this: it reads a clock's time through the port
`frozen_time` fills (billing/wiring.py)."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import FrozenClock, utc_now
from billing.db.engine import transaction
from billing.scheduler.models import ScheduledTask
from billing.scheduler.registry import TASKS, TaskRegistry
from billing.scheduler.runner import BATCH_SIZE, execute_set, run_due_real_time_tasks
from billing.services import Services
from billing.test_clocks.models import TestClock
from billing.test_clocks.service import render_test_clock
from webhooks.outbox import record_event


async def frozen_time(session: AsyncSession, test_clock_id: str) -> datetime | None:
    """The current time of a test clock (the scheduler's `test_clock_time` port)."""
    return await session.scalar(select(TestClock.frozen_time).where(TestClock.id == test_clock_id))


async def run_due_tasks(services: Services, *, limit: int = 100, registry: TaskRegistry = TASKS) -> int:
    """Run up to `limit` tasks that are due now, each in its own transaction; returns how many ran. Due now:
    real-time tasks due by the wall clock, and the tasks of every ready test clock due by its frozen time (as
    they would run in real time, without waiting for the next advance)."""
    ran = await run_due_real_time_tasks(services, limit=limit, registry=registry)
    return ran + await _run_due_test_clock_tasks(services, limit=limit - ran, registry=registry)


async def _run_due_test_clock_tasks(services: Services, *, limit: int, registry: TaskRegistry) -> int:
    """The work of ready test clocks that is due at or before their frozen time. Each step locks the clock row
    (an advance, or another worker, waits or skips it) and runs the clock's earliest due task, so a clock's work
    still runs in due order and exactly once; a failure stops the clock as it would stop an advance."""
    ran = 0
    busy: list[str] = []
    while ran < limit:
        async with transaction(services.sessions) as session:
            due = (
                select(ScheduledTask.id)
                .where(
                    ScheduledTask.test_clock_id == TestClock.id,
                    ScheduledTask.status == "pending",
                    ScheduledTask.due_at <= TestClock.frozen_time,
                )
                .exists()
            )
            clock = await session.scalar(
                select(TestClock)
                .where(
                    TestClock.status == "ready",
                    TestClock.deleted_at.is_(None),
                    TestClock.id.not_in(busy),
                    due,
                )
                .order_by(TestClock.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if clock is None:
                break
            earliest = await session.scalar(
                _first_due(clock.id, clock.frozen_time).with_only_columns(ScheduledTask.id)
            )
            task = await session.scalar(
                select(ScheduledTask).where(ScheduledTask.id == earliest).with_for_update(skip_locked=True)
            )
            if task is None:
                # A request is running this very task (run_task_now): the clock's later work waits for it.
                busy.append(clock.id)
                continue
            ran += await _run_clock_tasks(session, clock, task, services, registry)
    return ran


async def advance_test_clock(
    services: Services, test_clock_id: str, *, registry: TaskRegistry = TASKS
) -> str:
    """Run every task of an advancing test clock due up to its target, in due order, moving the clock's time to
    each task's due instant before running it; then set the clock ready at its target. Returns the final status.

    Only one worker advances a clock at a time (a session advisory lock); the others return at once. The lock
    lives as long as the advancing worker's connection: a worker killed mid-advance releases it with its
    connection, which is how the sweeper tells a dead advance from a long one (`advance_in_progress`)."""
    async with services.sessions() as lock_session:
        locked = await lock_session.scalar(
            select(func.pg_try_advisory_lock(_advance_lock_key(test_clock_id)))
        )
        if not locked:
            return "busy"
        try:
            while True:
                outcome = await _advance_one_step(services, test_clock_id, registry)
                if outcome != "stepped":
                    return outcome
        finally:
            await lock_session.execute(select(func.pg_advisory_unlock(_advance_lock_key(test_clock_id))))
            await lock_session.commit()


def _advance_lock_key(test_clock_id: str) -> Any:
    return func.hashtext(test_clock_id)


async def advance_in_progress(session: AsyncSession, test_clock_id: str) -> bool:
    """Whether a live worker is advancing the clock now (it holds the clock's advisory lock). Takes the lock for
    the caller's transaction when it is free, so an advance that starts meanwhile waits for the caller's commit."""
    free = await session.scalar(select(func.pg_try_advisory_xact_lock(_advance_lock_key(test_clock_id))))
    return not free


async def _advance_one_step(services: Services, test_clock_id: str, registry: TaskRegistry) -> str:
    async with transaction(services.sessions) as session:
        clock = await session.scalar(select(TestClock).where(TestClock.id == test_clock_id).with_for_update())
        if (
            clock is None
            or clock.deleted_at is not None
            or clock.status != "advancing"
            or clock.target_time is None
        ):
            return clock.status if clock is not None else "missing"
        task = await session.scalar(_first_due(clock.id, clock.target_time).with_for_update(skip_locked=True))
        if task is None:
            clock.frozen_time = clock.target_time
            clock.target_time = None
            clock.status = "ready"
            await session.flush()
            record_event(
                session,
                merchant_id=clock.merchant_id,
                event_type="test_clock.ready",
                obj=render_test_clock(clock),
                clock=FrozenClock(clock.frozen_time, clock.id),
            )
            return "ready"
        clock.frozen_time = max(clock.frozen_time, task.due_at)
        await session.flush()
        if not await _run_clock_tasks(session, clock, task, services, registry):
            return "internal_failure"
        return "stepped"


def _first_due(test_clock_id: str, until: datetime) -> Select[ScheduledTask]:
    """The earliest pending task of a test clock due by `until` (clock time), in the order work must run."""
    return (
        select(ScheduledTask)
        .where(
            ScheduledTask.test_clock_id == test_clock_id,
            ScheduledTask.status == "pending",
            ScheduledTask.due_at <= until,
        )
        .order_by(ScheduledTask.due_at, ScheduledTask.seq)
        .limit(1)
    )


async def _same_instant_run(
    session: AsyncSession, clock: TestClock, first: ScheduledTask
) -> list[ScheduledTask]:
    """`first` and the tasks right after it in the clock's order that share its kind and due instant: running
    them as one set keeps the clock's order (nothing else is due between them)."""
    following = (
        await session.execute(
            select(ScheduledTask.id, ScheduledTask.kind)
            .where(
                ScheduledTask.test_clock_id == clock.id,
                ScheduledTask.status == "pending",
                ScheduledTask.due_at == first.due_at,
                ScheduledTask.seq > first.seq,
            )
            .order_by(ScheduledTask.seq)
            .limit(BATCH_SIZE - 1)
        )
    ).all()
    run = list(itertools.takewhile(lambda row: row.kind == first.kind, following))
    if not run:
        return [first]
    locked = (
        await session.scalars(
            select(ScheduledTask)
            .where(ScheduledTask.id.in_([row.id for row in run]), ScheduledTask.status == "pending")
            .order_by(ScheduledTask.seq)
            .with_for_update(skip_locked=True)
        )
    ).all()
    return [first, *locked]


async def _run_clock_tasks(
    session: AsyncSession, clock: TestClock, first: ScheduledTask, services: Services, registry: TaskRegistry
) -> int:
    """Run the next task of a locked test clock at the clock's time, with the tasks due at the same instant
    that its kind's batch handler can take; returns how many ran, 0 when one failed, which stops the clock."""
    tasks = [first]
    if registry.batch_handler(first.kind) is not None:
        tasks = await _same_instant_run(session, clock, first)
    succeeded = await execute_set(
        session, tasks, FrozenClock(clock.frozen_time, clock.id), registry, services
    )
    if succeeded:
        return len(tasks)
    # A test clock must not skip or reorder work: stop, and say which task failed.
    task = next(task for task in tasks if task.status != "done")
    task.status = "failed"
    clock.status = "internal_failure"
    clock.failure_message = (
        f"Task {task.id} ({task.kind}) due {task.due_at:%Y-%m-%dT%H:%M:%SZ} failed: {task.last_error}"[:2000]
    )
    await session.flush()
    record_event(
        session,
        merchant_id=clock.merchant_id,
        event_type="test_clock.internal_failure",
        obj=render_test_clock(clock),
        clock=FrozenClock(clock.frozen_time, clock.id),
    )
    return 0


async def stale_advancing_clocks(session: AsyncSession, older_than: timedelta) -> list[tuple[str, datetime]]:
    """Clocks marked advancing for a while: their job may have been lost with Redis (the sweeper re-enqueues)."""
    rows = await session.execute(
        select(TestClock.id, TestClock.advance_requested_at).where(
            TestClock.status == "advancing",
            TestClock.deleted_at.is_(None),
            TestClock.advance_requested_at <= utc_now() - older_than,
        )
    )
    return [(row.id, row.advance_requested_at) for row in rows]
