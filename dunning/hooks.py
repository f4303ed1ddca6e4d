"""The hook point dunning fires (billing/hooks.py): the customer is to be told of a failed charge (with the next
attempt, or that it was the last). Notifications queue the email by listening, subscribed in billing/wiring.py;
dunning sends no email."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.hooks import Hook
from billing.invoices.models import Invoice


@dataclass(frozen=True)
class FailureToTell:
    session: AsyncSession
    invoice: Invoice
    clock: Clock
    decline_class: str
    next_attempt: datetime | None
    final: bool


payment_failure_to_tell: Hook[FailureToTell] = Hook("payment_failure_to_tell")
