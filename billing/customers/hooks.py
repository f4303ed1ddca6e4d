"""The hook points customers fire (billing/hooks.py): a customer is being deleted (subscriptions end, invoices
stop being collected). Subscribed in billing/wiring.py; customers import none of the listeners."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.customers.models import Customer
from billing.hooks import Hook


@dataclass(frozen=True)
class CustomerDeleted:
    session: AsyncSession
    customer: Customer
    clock: Clock


# Fired in the deleting transaction, before the customer is marked deleted (so the customer can still be read).
customer_deleted: Hook[CustomerDeleted] = Hook("customer_deleted")
