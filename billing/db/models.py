"""Every table, imported in one place so the metadata (and Alembic) sees the whole schema."""

from billing.api.idempotency import IdempotencyRecord
from billing.catalog.models import Coupon, Meter, Plan, TaxRate
from billing.credit_notes.models import CreditNote, CreditNoteLine
from billing.customers.models import Customer
from billing.db.base import Base
from billing.gateways.models import GatewayAttempt, GatewayHealth
from billing.invoices.models import CustomerBalanceTransaction, Invoice, InvoiceLine, InvoiceNumberSequence
from billing.merchants.models import ApiKey, Merchant
from billing.payment_methods.models import CardToken, PaymentMethod
from billing.payments.models import Payment, Refund
from billing.scheduler.models import ScheduledTask
from billing.subscriptions.models import PendingInvoiceItem, Subscription
from billing.test_clocks.models import TestClock
from billing.vault.models import VaultEntry, VaultSecret
from webhooks.delivery_models import WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint
from webhooks.models import Event

__all__ = [
    "ApiKey",
    "Base",
    "CardToken",
    "Coupon",
    "CreditNote",
    "CreditNoteLine",
    "Customer",
    "CustomerBalanceTransaction",
    "Event",
    "GatewayAttempt",
    "GatewayHealth",
    "IdempotencyRecord",
    "Invoice",
    "InvoiceLine",
    "InvoiceNumberSequence",
    "Merchant",
    "Meter",
    "Payment",
    "PaymentMethod",
    "PendingInvoiceItem",
    "Plan",
    "Refund",
    "ScheduledTask",
    "Subscription",
    "TaxRate",
    "TestClock",
    "VaultEntry",
    "VaultSecret",
    "WebhookDelivery",
    "WebhookDeliveryAttempt",
    "WebhookEndpoint",
]
