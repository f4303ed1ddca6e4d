"""What each kind of scheduled task does. Features register a handler for their kinds (renewals, usage close,
payment retries, dunning steps); the runner knows nothing about them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.scheduler.models import ScheduledTask

if TYPE_CHECKING:
    from billing.services import Services


@dataclass(frozen=True)
class TaskContext:
    session: AsyncSession
    task: ScheduledTask
    # Real time, or the test clock's time set to the task's due instant.
    clock: Clock
    # The process's services, for handlers that reach beyond the database (gateways, the vault, Redis).
    services: Services


@dataclass(frozen=True)
class BatchContext:
    """Due tasks of one kind claimed together (locked, pending), to run as one set in one transaction."""

    session: AsyncSession
    tasks: list[ScheduledTask]
    clock: Clock
    services: Services


TaskHandler = Callable[[TaskContext], Awaitable[None]]
# Runs a set of tasks of one kind; returns the ids of those it finished. The runner runs every other task of the
# set alone with the kind's handler (and all of them alone when the batch raises).
BatchHandler = Callable[[BatchContext], Awaitable[set[str]]]
# Part of a task's work, run by `runner.run_task_step`: True when the task is finished, False to leave it pending.
TaskStep = Callable[[TaskContext], Awaitable[bool]]


class TaskRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, TaskHandler] = {}
        self._batch_handlers: dict[str, BatchHandler] = {}

    def register(self, kind: str) -> Callable[[TaskHandler], TaskHandler]:
        """Decorator: `@TASKS.register("subscription.renew")`. A handler must be idempotent and do all its
        writes through `ctx.session`, whose transaction also marks the task done."""

        def decorate(handler: TaskHandler) -> TaskHandler:
            if kind in self._handlers and self._handlers[kind] is not handler:
                raise ValueError(f"a handler for task kind {kind!r} is already registered")
            self._handlers[kind] = handler
            return handler

        return decorate

    def register_batch(self, kind: str) -> Callable[[BatchHandler], BatchHandler]:
        """Decorator: a set-based handler for `kind`, beside its single-task handler (which stays the reference
        and takes whatever the batch leaves). The batch must write what the single handler writes."""

        def decorate(handler: BatchHandler) -> BatchHandler:
            if kind in self._batch_handlers and self._batch_handlers[kind] is not handler:
                raise ValueError(f"a batch handler for task kind {kind!r} is already registered")
            self._batch_handlers[kind] = handler
            return handler

        return decorate

    def unregister(self, kind: str) -> None:
        self._handlers.pop(kind, None)
        self._batch_handlers.pop(kind, None)

    def batch_handler(self, kind: str) -> BatchHandler | None:
        return self._batch_handlers.get(kind)

    def singles_only(self) -> TaskRegistry:
        """The same kinds without their batch handlers: every task runs alone (the reference the batch
        handlers are tested against)."""
        singles = TaskRegistry()
        singles._handlers = dict(self._handlers)
        return singles

    def handler(self, kind: str) -> TaskHandler:
        try:
            return self._handlers[kind]
        except KeyError:
            raise LookupError(f"no handler registered for task kind {kind!r}") from None

    def kinds(self) -> frozenset[str]:
        return frozenset(self._handlers)


TASKS = TaskRegistry()
