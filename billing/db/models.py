"""Every table, imported in one place so the metadata (and Alembic) sees the whole schema."""

from billing.api.idempotency import IdempotencyRecord
from billing.catalog.models import Coupon, Meter, Plan, TaxRate
from billing.channels.models import ChannelNotification
from billing.console.models import AuditEntry, ConsoleSession, ConsoleUser
from billing.credit_notes.models import CreditNote, CreditNoteLine
from billing.customers.models import Customer
from billing.db.base import Base
from billing.entitlements.models import Feature, PlanEntitlement
from billing.gateways.models import GatewayAttempt, GatewayHealth
from billing.invoice_items.models import InvoiceItem
from billing.invoices.models import CustomerBalanceTransaction, Invoice, InvoiceLine, InvoiceNumberSequence
from billing.merchants.models import ApiKey, Merchant
from billing.notifications.models import EmailMessage
from billing.payment_methods.models import CardToken, PaymentMethod
from billing.payments.models import Payment, Refund
from billing.portal.models import PortalSession
from billing.reconciliation.models import ReconciliationRun
from billing.risk.models import RiskDecision
from billing.scheduler.models import ScheduledTask
from billing.subscriptions.models import PendingInvoiceItem, Subscription
from billing.test_clocks.models import TestClock
from billing.usage.billed import UsageBilled
from billing.usage.models import usage_event_keys, usage_events
from billing.vault.models import VaultEntry, VaultSecret
from billing.wallets.models import Wallet, WalletTransaction
from dunning.models import DunningCase
from webhooks.delivery_models import WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint
from webhooks.models import Event

__all__ = [
    "ApiKey",
    "AuditEntry",
    "Base",
    "CardToken",
    "ChannelNotification",
    "ConsoleSession",
    "ConsoleUser",
    "Coupon",
    "CreditNote",
    "CreditNoteLine",
    "Customer",
    "CustomerBalanceTransaction",
    "DunningCase",
    "EmailMessage",
    "Event",
    "Feature",
    "GatewayAttempt",
    "GatewayHealth",
    "IdempotencyRecord",
    "Invoice",
    "InvoiceItem",
    "InvoiceLine",
    "InvoiceNumberSequence",
    "Merchant",
    "Meter",
    "Payment",
    "PaymentMethod",
    "PendingInvoiceItem",
    "Plan",
    "PlanEntitlement",
    "PortalSession",
    "ReconciliationRun",
    "Refund",
    "RiskDecision",
    "ScheduledTask",
    "Subscription",
    "TaxRate",
    "TestClock",
    "UsageBilled",
    "VaultEntry",
    "VaultSecret",
    "Wallet",
    "WalletTransaction",
    "WebhookDelivery",
    "WebhookDeliveryAttempt",
    "WebhookEndpoint",
    "usage_event_keys",
    "usage_events",
]
