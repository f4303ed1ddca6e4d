"""The clock port: every piece of domain code asks a Clock for "now", never `datetime.now()`.

Objects that belong to a test-clock customer live in that clock's frozen time (SPEC §4 test_clocks); everything
else lives in real time. Keeping both behind one tiny interface is what lets a test clock drive exactly the code
path that real time drives.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    @property
    def test_clock_id(self) -> str | None: ...

    def now(self) -> datetime: ...


@dataclass(frozen=True)
class SystemClock:
    """Real time, UTC."""

    test_clock_id: None = None

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True)
class FrozenClock:
    """The time of a test clock (or any fixed instant): `now()` never moves by itself."""

    instant: datetime
    test_clock_id: str | None = None

    def __post_init__(self) -> None:
        if self.instant.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime")

    def now(self) -> datetime:
        return self.instant.astimezone(UTC)


SYSTEM_CLOCK = SystemClock()


def utc_now() -> datetime:
    """Real UTC time, for infrastructure only (leases, expiry of idempotency keys), never for billing facts."""
    return datetime.now(UTC)
