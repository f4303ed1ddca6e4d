"""What other features do when a payment held for review (SPEC §9) is settled by its review: invoice collection
records the outcome. Registered at import by those features; payments import none of them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.payments.models import Payment

PaymentHook = Callable[[AsyncSession, Payment, Clock], Awaitable[None]]

# Run in the transaction that records the reviewed payment's outcome (succeeded, failed, or pending while its
# gateway confirms the charge).
ON_REVIEWED: list[PaymentHook] = []


async def payment_reviewed(session: AsyncSession, payment: Payment, clock: Clock) -> None:
    for hook in ON_REVIEWED:
        await hook(session, payment, clock)
