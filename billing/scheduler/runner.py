"""Running due tasks exactly once.

A task is claimed with `FOR UPDATE SKIP LOCKED` and its handler runs in the same transaction that marks it done,
so any number of workers can run the tick at once: each task runs in exactly one of them, and a crash rolls back
both the work and the claim, leaving the task due for the next tick. A handler that raises is rolled back to a
savepoint and the task is retried later with backoff; after MAX_ATTEMPTS it is marked failed.

Test-clock tasks run in the clock's time: all those due up to its target when it advances (`advance_test_clock`),
and, on every tick, those of a ready clock already due at its frozen time (as real-time work due now runs at
once). Either way a clock's tasks run one at a time under its row lock, in due order, and a failure stops the
clock (`internal_failure`) rather than skip or reorder its work.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import SYSTEM_CLOCK, Clock, FrozenClock, utc_now
from billing.db.engine import transaction
from billing.ids import new_id
from billing.scheduler.models import ScheduledTask
from billing.scheduler.registry import TASKS, BatchContext, TaskContext, TaskRegistry, TaskStep
from billing.services import Services
from billing.test_clocks.models import TestClock
from billing.test_clocks.service import render_test_clock
from webhooks.outbox import record_event

log = logging.getLogger("billing.scheduler")

MAX_ATTEMPTS = 8
# The most tasks of one kind claimed together for a batch handler (one transaction, one set of statements).
BATCH_SIZE = 500


def retry_delay(attempts: int) -> timedelta:
    """Backoff for a failed task: 10 s, 20 s, 40 s ... capped at one hour."""
    return timedelta(seconds=min(3600, 10 * 2 ** max(0, attempts - 1)))


async def schedule_task(
    session: AsyncSession,
    *,
    merchant_id: str,
    kind: str,
    due_at: datetime,
    clock: Clock,
    payload: dict[str, Any] | None = None,
    dedupe_key: str | None = None,
) -> str | None:
    """Add a task in the caller's transaction; with a dedupe_key already used, do nothing and return None."""
    task_id = new_id("task")
    stmt = insert(ScheduledTask).values(
        id=task_id,
        merchant_id=merchant_id,
        test_clock_id=clock.test_clock_id,
        kind=kind,
        due_at=due_at,
        payload=payload or {},
        dedupe_key=dedupe_key,
        status="pending",
        attempts=0,
        created_at=clock.now(),
    )
    if dedupe_key is not None:
        stmt = stmt.on_conflict_do_nothing(index_elements=["dedupe_key"])
    inserted = await session.scalar(stmt.returning(ScheduledTask.id))
    return inserted


@dataclass(frozen=True)
class NewTask:
    """A task to schedule with `schedule_tasks`, as `schedule_task` takes it."""

    merchant_id: str
    kind: str
    due_at: datetime
    payload: dict[str, Any] = field(default_factory=dict)
    dedupe_key: str | None = None


async def schedule_tasks(session: AsyncSession, tasks: list[NewTask], clock: Clock) -> None:
    """Add many tasks in the caller's transaction with one statement; a dedupe_key already used is skipped."""
    if not tasks:
        return
    rows = [
        {
            "id": new_id("task"),
            "merchant_id": task.merchant_id,
            "test_clock_id": clock.test_clock_id,
            "kind": task.kind,
            "due_at": task.due_at,
            "payload": task.payload,
            "dedupe_key": task.dedupe_key,
            "status": "pending",
            "attempts": 0,
            "created_at": clock.now(),
        }
        for task in tasks
    ]
    await session.execute(
        insert(ScheduledTask).values(rows).on_conflict_do_nothing(index_elements=["dedupe_key"])
    )


async def _execute(
    session: AsyncSession,
    task: ScheduledTask,
    clock: Clock,
    registry: TaskRegistry,
    services: Services,
    step: TaskStep | None = None,
) -> bool:
    """Run one claimed task inside the caller's transaction; True when it succeeded. With `step`, run that instead
    of the registered handler; a step that returns False leaves the task pending (see run_task_step)."""
    savepoint = await session.begin_nested()
    context = TaskContext(session=session, task=task, clock=clock, services=services)
    try:
        if step is None:
            await registry.handler(task.kind)(context)
            finished = True
        else:
            finished = await step(context)
        await savepoint.commit()
    except Exception as exc:
        await savepoint.rollback()
        task.attempts += 1
        task.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        if task.attempts >= MAX_ATTEMPTS or isinstance(exc, LookupError):
            task.status = "failed"
        else:
            task.available_at = utc_now() + retry_delay(task.attempts)
        log.exception("task %s (%s) failed, attempt %d", task.id, task.kind, task.attempts)
        return False
    if not finished:
        return True
    _done(task)
    return True


def _done(task: ScheduledTask) -> None:
    task.status = "done"
    task.completed_at = utc_now()
    task.attempts += 1


async def _execute_set(
    session: AsyncSession,
    tasks: list[ScheduledTask],
    clock: Clock,
    registry: TaskRegistry,
    services: Services,
) -> bool:
    """Run claimed tasks of one kind with its batch handler in a savepoint, then alone (`_execute`) those the
    batch left; when the batch raises, it is rolled back and every task runs alone, so one bad task fails only
    itself. True when every task succeeded."""
    batch = registry.batch_handler(tasks[0].kind)
    finished: set[str] = set()
    if batch is not None and len(tasks) > 1:
        savepoint = await session.begin_nested()
        try:
            finished = await batch(BatchContext(session=session, tasks=tasks, clock=clock, services=services))
            await savepoint.commit()
        except Exception:
            await savepoint.rollback()
            log.exception("batch of %d %s tasks failed; running each alone", len(tasks), tasks[0].kind)
            finished = set()
            for task in tasks:
                await session.refresh(task)
    succeeded = True
    for task in tasks:
        if task.id in finished:
            _done(task)
        elif not await _execute(session, task, clock, registry, services):
            succeeded = False
    return succeeded


async def run_due_tasks(services: Services, *, limit: int = 100, registry: TaskRegistry = TASKS) -> int:
    """Run up to `limit` tasks that are due now, each in its own transaction; returns how many ran. Due now:
    real-time tasks due by the wall clock, and the tasks of every ready test clock due by its frozen time (as
    they would run in real time, without waiting for the next advance)."""
    ran = await _run_due_real_time_tasks(services, limit=limit, registry=registry)
    return ran + await _run_due_test_clock_tasks(services, limit=limit - ran, registry=registry)


async def _run_due_real_time_tasks(services: Services, *, limit: int, registry: TaskRegistry) -> int:
    ran = 0
    while ran < limit:
        async with transaction(services.sessions) as session:
            now = utc_now()
            task = await session.scalar(
                select(ScheduledTask)
                .where(
                    ScheduledTask.status == "pending",
                    ScheduledTask.test_clock_id.is_(None),
                    ScheduledTask.due_at <= now,
                    or_(ScheduledTask.available_at.is_(None), ScheduledTask.available_at <= now),
                )
                .order_by(ScheduledTask.due_at, ScheduledTask.seq)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if task is None:
                break
            tasks = [task]
            if registry.batch_handler(task.kind) is not None and limit - ran > 1:
                tasks += (
                    await session.scalars(
                        select(ScheduledTask)
                        .where(
                            ScheduledTask.kind == task.kind,
                            ScheduledTask.status == "pending",
                            ScheduledTask.test_clock_id.is_(None),
                            ScheduledTask.due_at <= now,
                            or_(ScheduledTask.available_at.is_(None), ScheduledTask.available_at <= now),
                            ScheduledTask.id != task.id,
                        )
                        .order_by(ScheduledTask.due_at, ScheduledTask.seq)
                        .limit(min(BATCH_SIZE, limit - ran) - 1)
                        .with_for_update(skip_locked=True)
                    )
                ).all()
            await _execute_set(session, tasks, SYSTEM_CLOCK, registry, services)
            ran += len(tasks)
    return ran


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


async def run_task_now(services: Services, task_id: str, *, registry: TaskRegistry = TASKS) -> bool:
    """Run one task at once, whatever its due time, exactly as a worker would; False if it was already run.

    If a worker holds the task, this waits for it (a blocking row lock, not SKIP LOCKED) and then finds it done."""
    async with transaction(services.sessions) as session:
        claimed = await _claim(session, task_id)
        if claimed is None:
            return False
        await _execute(session, claimed[0], claimed[1], registry, services)
        return True


async def run_task_step(
    session: AsyncSession, services: Services, task_id: str, step: TaskStep
) -> bool | None:
    """Run `step` on the pending task `task_id` in the caller's transaction, as a worker runs a task's handler:
    its row locked (waiting for a worker that holds it), the clock set, the step in a savepoint, a failure
    counted and retried later like a handler's. A step returns True when it finished the task (marked done), False
    when it stopped half-way on purpose (the task stays pending; the caller commits what the step did and runs a
    step again later, or leaves it to the workers). Returns whether the task is finished (False also when the
    step raised: the task stays pending, retried later), None if it was not pending.

    For requests that must answer with a task's outcome and call the outside world on the way (charging an
    invoice): they commit between steps instead of holding the task's transaction open across the call."""
    claimed = await _claim(session, task_id)
    if claimed is None:
        return None
    finished: bool | None = None

    async def tracked(context: TaskContext) -> bool:
        nonlocal finished
        finished = await step(context)
        return finished

    await _execute(session, claimed[0], claimed[1], TASKS, services, tracked)
    return bool(finished)


async def _claim(session: AsyncSession, task_id: str) -> tuple[ScheduledTask, Clock] | None:
    """Lock the pending task `task_id` and the clock it runs in (a test clock's current time), or None."""
    task = await session.scalar(select(ScheduledTask).where(ScheduledTask.id == task_id).with_for_update())
    if task is None or task.status != "pending":
        return None
    clock: Clock = SYSTEM_CLOCK
    if task.test_clock_id is not None:
        frozen = await session.scalar(select(TestClock.frozen_time).where(TestClock.id == task.test_clock_id))
        clock = FrozenClock(frozen or task.due_at, task.test_clock_id)
    return task, clock


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
    succeeded = await _execute_set(
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
