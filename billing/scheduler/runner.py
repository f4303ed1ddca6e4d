"""Running due tasks exactly once.

A task is claimed with `FOR UPDATE SKIP LOCKED` and its handler runs in the same transaction that marks it done,
so any number of workers can run the tick at once: each task runs in exactly one of them, and a crash rolls back
both the work and the claim, leaving the task due for the next tick. A handler that raises is rolled back to a
savepoint and the task is retried later with backoff; after MAX_ATTEMPTS it is marked failed.

Test-clock tasks run in the clock's time, driven by billing/test_clocks/advance.py with `execute_set`; the runner
reads a test clock's time through its registry's `test_clock_time` port (installed by billing/wiring.py), and
imports no feature.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import SYSTEM_CLOCK, Clock, FrozenClock, utc_now
from billing.db.engine import transaction
from billing.ids import new_id
from billing.scheduler.models import ScheduledTask
from billing.scheduler.registry import TASKS, BatchContext, TaskContext, TaskPayload, TaskRegistry, TaskStep
from billing.services import Services

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
    payload: TaskPayload | dict[str, Any] | None = None,
    dedupe_key: str | None = None,
) -> str | None:
    """Add a task in the caller's transaction; with a dedupe_key already used, do nothing and return None. The
    payload is the kind's typed payload (billing/tasks.py), or a mapping that must convert to it."""
    task_id = new_id("task")
    stmt = insert(ScheduledTask).values(
        id=task_id,
        merchant_id=merchant_id,
        test_clock_id=clock.test_clock_id,
        kind=kind,
        due_at=due_at,
        payload=TASKS.payload(kind, payload),
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
    payload: TaskPayload | dict[str, Any] = field(default_factory=dict)
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
            "payload": TASKS.payload(task.kind, task.payload),
            "dedupe_key": task.dedupe_key,
            "status": "pending",
            "attempts": 0,
            "created_at": clock.now(),
        }
        for task in tasks
    ]
    # Parameters beside the statement (an executemany), not a VALUES list compiled with every row's parameters.
    await session.execute(insert(ScheduledTask).on_conflict_do_nothing(index_elements=["dedupe_key"]), rows)


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


async def execute_set(
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


async def run_due_real_time_tasks(
    services: Services, *, limit: int = 100, registry: TaskRegistry = TASKS
) -> int:
    """Run up to `limit` real-time tasks that are due by the wall clock, each claim in its own transaction (with
    the due tasks of its kind its batch handler can take); returns how many ran. Test-clock tasks run in their
    clock's time (billing/test_clocks/advance.py)."""
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
            await execute_set(session, tasks, SYSTEM_CLOCK, registry, services)
            ran += len(tasks)
    return ran


async def run_task_now(services: Services, task_id: str, *, registry: TaskRegistry = TASKS) -> bool:
    """Run one task at once, whatever its due time, exactly as a worker would; False if it was already run.

    If a worker holds the task, this waits for it (a blocking row lock, not SKIP LOCKED) and then finds it done."""
    async with transaction(services.sessions) as session:
        claimed = await _claim(session, task_id, registry)
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


async def _claim(
    session: AsyncSession, task_id: str, registry: TaskRegistry = TASKS
) -> tuple[ScheduledTask, Clock] | None:
    """Lock the pending task `task_id` and the clock it runs in (a test clock's current time), or None."""
    task = await session.scalar(select(ScheduledTask).where(ScheduledTask.id == task_id).with_for_update())
    if task is None or task.status != "pending":
        return None
    clock: Clock = SYSTEM_CLOCK
    if task.test_clock_id is not None:
        frozen = await registry.test_clock_time(session, task.test_clock_id)
        clock = FrozenClock(frozen or task.due_at, task.test_clock_id)
    return task, clock
