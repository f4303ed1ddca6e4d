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


TaskHandler = Callable[[TaskContext], Awaitable[None]]
# Part of a task's work, run by `runner.run_task_step`: True when the task is finished, False to leave it pending.
TaskStep = Callable[[TaskContext], Awaitable[bool]]


class TaskRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, TaskHandler] = {}

    def register(self, kind: str) -> Callable[[TaskHandler], TaskHandler]:
        """Decorator: `@TASKS.register("subscription.renew")`. A handler must be idempotent and do all its
        writes through `ctx.session`, whose transaction also marks the task done."""

        def decorate(handler: TaskHandler) -> TaskHandler:
            if kind in self._handlers and self._handlers[kind] is not handler:
                raise ValueError(f"a handler for task kind {kind!r} is already registered")
            self._handlers[kind] = handler
            return handler

        return decorate

    def unregister(self, kind: str) -> None:
        self._handlers.pop(kind, None)

    def handler(self, kind: str) -> TaskHandler:
        try:
            return self._handlers[kind]
        except KeyError:
            raise LookupError(f"no handler registered for task kind {kind!r}") from None

    def kinds(self) -> frozenset[str]:
        return frozenset(self._handlers)


TASKS = TaskRegistry()
