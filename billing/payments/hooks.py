"""The hook points payments fire (billing/hooks.py): a payment held for review (SPEC §9) was settled by its
review; a pending payment was settled by the janitor. Invoice collection records the outcome by listening
(subscribed in billing/wiring.py); payments import none of the listeners."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.hooks import Hook
from billing.payments.models import Payment


@dataclass(frozen=True)
class PaymentSettled:
    session: AsyncSession
    payment: Payment
    clock: Clock


# Fired in the transaction that records the reviewed payment's outcome (succeeded, failed, or pending while its
# gateway confirms the charge).
payment_reviewed: Hook[PaymentSettled] = Hook("payment_reviewed")
# Fired in the janitor's transaction that settles a payment whose outcome was unknown (succeeded or failed).
payment_settled: Hook[PaymentSettled] = Hook("payment_settled")
