"""Dunning cases and recovery metrics as the API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from billing.api.schemas import ListResponse
from dunning.recovery import FinalAction


class LastDecline(msgspec.Struct, kw_only=True):
    """The latest decline of the payment the dunning case tries to recover: its class and the gateway's code."""

    decline_class: Literal["hard", "expired", "soft", "technical"]
    code: str


class DunningCase(msgspec.Struct, kw_only=True):
    """The recovery of one invoice whose automatic charge failed (docs/dunning.md)."""

    id: str
    object: Literal["dunning_case"] = "dunning_case"
    created_at: datetime
    invoice: str
    customer: str
    subscription: str | None
    currency: str
    state: Literal["retrying", "awaiting_payment_method", "recovered", "exhausted", "voided"]
    attempts: int
    retry_schedule_days: list[int]
    first_failure_at: datetime
    last_attempt_at: datetime
    last_decline: LastDecline
    next_attempt_at: datetime | None
    final_action: FinalAction | None
    recovered_amount: int | None
    closed_at: datetime | None
    test_clock: str | None


class DunningCaseList(ListResponse[DunningCase]):
    pass


class RecoveredRevenue(msgspec.Struct, kw_only=True):
    """Revenue recovered by dunning in one currency, and from how many cases."""

    currency: str
    amount: int
    cases: int


class FinalActionsTaken(msgspec.Struct, kw_only=True):
    """How many exhausted dunning cases ended with each final action."""

    cancel: int = 0
    unpaid: int = 0
    past_due: int = 0


class DunningMetrics(msgspec.Struct, kw_only=True):
    """Recovery figures over the cases opened since `since` (all cases when absent)."""

    object: Literal["dunning_metrics"] = "dunning_metrics"
    since: datetime | None
    cases_opened: int
    open_cases: int
    closed_cases: int
    recovered_cases: int
    exhausted_cases: int
    voided_cases: int
    recovery_rate: str | None = msgspec.field(name="recovery_rate")
    attempts_per_recovery: str | None
    recovered_revenue: list[RecoveredRevenue]
    final_actions: FinalActionsTaken
