"""What other features do when a customer is deleted (subscriptions end, invoices stop being collected).
Registered at import by those features; customers import none of them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.customers.models import Customer

CustomerHook = Callable[[AsyncSession, Customer, Clock], Awaitable[None]]

# Run in the deleting transaction, before the customer is marked deleted (so the customer can still be read).
ON_DELETED: list[CustomerHook] = []


async def customer_deleted(session: AsyncSession, customer: Customer, clock: Clock) -> None:
    for hook in ON_DELETED:
        await hook(session, customer, clock)
