"""Every table, imported in one place so the metadata (and Alembic) sees the whole schema."""

from billing.api.idempotency import IdempotencyRecord
from billing.customers.models import Customer
from billing.db.base import Base
from billing.invoices.models import CustomerBalanceTransaction, Invoice, InvoiceLine, InvoiceNumberSequence
from billing.merchants.models import ApiKey, Merchant
from billing.scheduler.models import ScheduledTask
from billing.test_clocks.models import TestClock
from webhooks.models import Event

__all__ = [
    "CustomerBalanceTransaction",
    "Invoice",
    "InvoiceLine",
    "InvoiceNumberSequence",
    "ApiKey",
    "Base",
    "Customer",
    "Event",
    "IdempotencyRecord",
    "Merchant",
    "ScheduledTask",
    "TestClock",
]
