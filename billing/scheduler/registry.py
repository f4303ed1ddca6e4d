"""What each kind of scheduled task does. Features register a handler for their kinds (renewals, usage close,
payment retries, dunning steps); the runner knows nothing about them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.scheduler.models import ScheduledTask

if TYPE_CHECKING:
    from billing.services import Services


P = TypeVar("P", bound=msgspec.Struct)


class TaskPayload(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Base of every task kind's payload: stored as a JSON object in `scheduled_tasks.payload`. Unknown keys of a
    stored row are ignored when it is read (rows written by an older version keep working)."""


class NoPayload(TaskPayload):
    """The payload of a kind that needs none."""


@dataclass(frozen=True)
class TaskContext:
    session: AsyncSession
    task: ScheduledTask
    # Real time, or the test clock's time set to the task's due instant.
    clock: Clock
    # The process's services, for handlers that reach beyond the database (gateways, the vault, Redis).
    services: Services

    def payload_as(self, payload_type: type[P]) -> P:
        """The task's stored payload as its kind's typed payload (see TaskKind)."""
        return msgspec.convert(self.task.payload, payload_type)


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
# The current time of a test clock (None when it does not exist), for tasks that run in a test clock's time.
TestClockTime = Callable[[AsyncSession, str], Awaitable[datetime | None]]


@dataclass(frozen=True)
class TaskKind:
    """One row of the task table (billing/tasks.py): a kind's name, its payload type, its handler, its batch
    handler (optional), and the names it was stored under before (a stored row of an old name still runs)."""

    name: str
    payload: type[TaskPayload]
    handler: TaskHandler
    batch: BatchHandler | None = None
    old_names: tuple[str, ...] = ()


class TaskRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, TaskHandler] = {}
        self._batch_handlers: dict[str, BatchHandler] = {}
        self._payloads: dict[str, type[TaskPayload]] = {}
        self._aliases: dict[str, str] = {}

    def install(self, table: Iterable[TaskKind]) -> None:
        """Register every kind of the task table (idempotent)."""
        for kind in table:
            self.register(kind.name)(kind.handler)
            if kind.batch is not None:
                self.register_batch(kind.name)(kind.batch)
            self._payloads[kind.name] = kind.payload
            for old in kind.old_names:
                self._aliases[old] = kind.name

    def payload(self, kind: str, payload: TaskPayload | Mapping[str, Any] | None) -> dict[str, Any]:
        """The JSON object stored for a task of `kind`: a typed payload encoded, or a mapping checked against the
        kind's payload type (a key of the wrong type, or a missing one, raises msgspec.ValidationError)."""
        if isinstance(payload, TaskPayload):
            expected = self._payloads.get(kind)
            if expected is not None and not isinstance(payload, expected):
                raise TypeError(
                    f"task kind {kind!r} takes a {expected.__name__}, not a {type(payload).__name__}"
                )
            encoded: dict[str, Any] = msgspec.to_builtins(payload)
            return encoded
        raw = dict(payload or {})
        expected = self._payloads.get(kind)
        if expected is not None:
            msgspec.convert(raw, expected)
        return raw
        self._test_clock_time: TestClockTime | None = None

    def use_test_clock_time(self, reader: TestClockTime) -> None:
        """Install how a test clock's time is read (billing/wiring.py installs the test clocks' own)."""
        self._test_clock_time = reader

    async def test_clock_time(self, session: AsyncSession, test_clock_id: str) -> datetime | None:
        if self._test_clock_time is None:
            raise LookupError("no test clock time reader is installed (billing/wiring.py installs it)")
        return await self._test_clock_time(session, test_clock_id)

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
        return self._batch_handlers.get(self._aliases.get(kind, kind))

    def singles_only(self) -> TaskRegistry:
        """The same kinds without their batch handlers: every task runs alone (the reference the batch
        handlers are tested against)."""
        singles = TaskRegistry()
        singles._handlers = dict(self._handlers)
        singles._payloads = dict(self._payloads)
        singles._aliases = dict(self._aliases)
        singles._test_clock_time = self._test_clock_time
        return singles

    def handler(self, kind: str) -> TaskHandler:
        try:
            return self._handlers[self._aliases.get(kind, kind)]
        except KeyError:
            raise LookupError(f"no handler registered for task kind {kind!r}") from None

    def kinds(self) -> frozenset[str]:
        return frozenset(self._handlers)


TASKS = TaskRegistry()
