from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from billing.api.schemas import ListResponse
from billing.customers.schemas import Metadata

# The test_clocks table's check constraint on status.
TestClockStatus = Literal["ready", "advancing", "internal_failure"]


class TestClock(msgspec.Struct, kw_only=True):
    """A test clock: customers attached to it live in its frozen time, which you advance to simulate renewals."""

    __test__ = False

    id: str
    object: Literal["test_clock"] = "test_clock"
    created_at: datetime
    name: str | None
    frozen_time: datetime
    status: TestClockStatus
    target_time: datetime | None
    failure_message: str | None
    metadata: dict[str, str]


class TestClockList(ListResponse[TestClock]):
    __test__ = False


class TestClockCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A new test clock, frozen at the given time."""

    __test__ = False

    frozen_time: datetime
    name: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)


class TestClockAdvance(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The time to move the clock to (only forward)."""

    __test__ = False

    frozen_time: datetime
