"""The task table (billing/tasks.py): every kind has a typed payload and a handler, registered in one place; a
payload that does not fit its kind is refused before it is stored; stored rows written before a field existed, or
with a key no longer read, still convert; an old kind name runs its new handler."""

from __future__ import annotations

import msgspec
import pytest

import billing.wiring  # noqa: F401  installs the table
from billing.invoices.collection import COLLECT, CollectPayload
from billing.scheduler.registry import TASKS, NoPayload, TaskContext, TaskKind, TaskRegistry
from billing.tasks import TASK_TABLE
from dunning.schedule import DEADLINE, DeadlinePayload


def test_every_kind_of_the_table_is_registered_once_with_its_payload_type() -> None:
    names = [kind.name for kind in TASK_TABLE]
    assert len(names) == len(set(names))
    assert set(names) <= TASKS.kinds()
    for kind in TASK_TABLE:
        assert TASKS.handler(kind.name) is kind.handler
        assert TASKS.batch_handler(kind.name) is kind.batch


def test_a_typed_payload_is_stored_as_its_json_object_without_defaults() -> None:
    stored = TASKS.payload(COLLECT, CollectPayload(invoice="in_1", attempt=2))
    assert stored == {"invoice": "in_1", "attempt": 2}
    assert TASKS.payload(DEADLINE, DeadlinePayload(invoice="in_2")) == {"invoice": "in_2"}


def test_a_payload_of_another_kind_or_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(TypeError, match="takes a CollectPayload"):
        TASKS.payload(COLLECT, DeadlinePayload(invoice="in_1"))
    with pytest.raises(msgspec.ValidationError, match="invoice"):
        TASKS.payload(COLLECT, {"attempt": 1})
    with pytest.raises(msgspec.ValidationError, match="attempt"):
        TASKS.payload(COLLECT, {"invoice": "in_1", "attempt": "first"})


def test_stored_rows_of_an_older_shape_still_convert() -> None:
    # A retry stored before `looks` existed, with `payment_method` null and a key nobody reads any more.
    row = {
        "invoice": "in_1",
        "source": "retry",
        "slot": 2,
        "technical_retries": 0,
        "payment_method": None,
        "x": 1,
    }
    assert TASKS.payload(COLLECT, row) == row
    typed = msgspec.convert(row, CollectPayload)
    assert (typed.source, typed.slot, typed.looks, typed.attempt) == ("retry", 2, 0, None)


def test_an_old_kind_name_runs_the_new_handler() -> None:
    async def handler(ctx: TaskContext) -> None:
        return None

    registry = TaskRegistry()
    registry.install([TaskKind("thing.new_name", NoPayload, handler, old_names=("thing.old_name",))])
    assert registry.handler("thing.old_name") is handler
    assert registry.handler("thing.new_name") is handler
