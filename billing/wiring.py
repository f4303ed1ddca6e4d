"""The one place where contexts are wired together (docs/architecture.md): which listener hears which hook
point, in which order. Imported by every composition root (the API app, the worker, the benches), before any
work runs; it also installs the task table (billing/tasks.py). A context fires its hook points (declared in its own `hooks.py`, see billing/hooks.py) and imports none
of its listeners; reading this file tells who reacts to what."""

from __future__ import annotations

from billing.customers import hooks as customers
from billing.invoice_items import service as invoice_items
from billing.invoices import collection
from billing.invoices import hooks as invoices
from billing.notifications import card_expiry, emails
from billing.payment_methods import hooks as payment_methods
from billing.payments import hooks as payments
from billing.scheduler.registry import TASKS
from billing.subscriptions import hooks as subscriptions
from billing.subscriptions import service as subscription_service
from billing.tasks import TASK_TABLE
from billing.test_clocks import advance
from billing.wallets import hooks as wallets
from dunning import cases, schedule
from dunning import hooks as dunning


def wire() -> None:
    """Subscribe every listener (idempotent: a listener subscribed twice runs once)."""
    # Invoices: a charge failed. Dunning decides first (the event `invoice.payment_failed` carries its next
    # attempt); after the event, the subscription goes past_due, then dunning schedules the retry or the final
    # action.
    invoices.payment_failing.subscribe(cases.on_payment_failing)
    invoices.invoice_payment_failed.subscribe(subscription_service.on_payment_failed)
    invoices.invoice_payment_failed.subscribe(schedule.on_payment_failed)
    # Invoices: a collection is about to charge (a stale dunning retry is skipped).
    invoices.collection_starting.subscribe(schedule.on_collection_starting)
    # Invoices: paid (the dunning case is recovered, the subscription active) or closed unpaid.
    invoices.invoice_paid.subscribe(schedule.on_invoice_paid)
    invoices.invoice_paid.subscribe(subscription_service.on_invoice_paid)
    invoices.invoice_closed_unpaid.subscribe(schedule.on_invoice_closed_unpaid)
    # Invoices and wallets: prepaid credits are burned at finalization before any card is charged; bought credits
    # are granted when their invoice is paid; a voided invoice gives back what it burned.
    invoices.invoice_finalizing.subscribe(wallets.burn_for_invoice)
    invoices.invoice_estimating.subscribe(wallets.estimate_burn)
    invoices.invoice_paid.subscribe(wallets.grant_purchased_credits)
    invoices.invoice_closed_unpaid.subscribe(wallets.undo_for_voided_invoice)
    # Invoices and invoice items: a renewal draft takes the customer's pending items; its preview shows them.
    invoices.renewal_draft.subscribe(invoice_items.invoice_pending_items)
    invoices.renewal_preview.subscribe(invoice_items.preview_pending_items)
    # The renewal batch leaves to the single renewal the customers these listeners must see one by one.
    invoices.renewals_invoiced_alone.subscribe(wallets.customers_with_wallets)
    invoices.renewals_invoiced_alone.subscribe(invoice_items.customers_with_pending_items)
    # Payments: a held payment was reviewed; collection records its outcome.
    payments.payment_reviewed.subscribe(collection.on_payment_reviewed)
    # Payments: the janitor settled a pending payment; collection records the invoice's outcome at once.
    payments.payment_settled.subscribe(collection.on_payment_settled)
    # Payment methods: one was added or chosen; dunning retries at once what it is recovering.
    payment_methods.payment_method_added.subscribe(schedule.on_payment_method_added)
    # Customers: one is being deleted; its invoices stop being collected, then its subscriptions end.
    customers.customer_deleted.subscribe(collection.on_customer_deleted)
    customers.customer_deleted.subscribe(subscription_service.on_customer_deleted)
    customers.customer_deleted.subscribe(wallets.end_wallets_of_deleted_customer)
    customers.customer_deleted.subscribe(invoice_items.delete_items_of_deleted_customer)
    # Subscriptions and dunning tell the customer by email (notifications listen).
    subscriptions.subscription_created.subscribe(card_expiry.on_subscription_created)
    subscriptions.trial_will_end.subscribe(emails.on_trial_will_end)
    dunning.payment_failure_to_tell.subscribe(emails.on_payment_failure_to_tell)
    # The scheduler runs the task table's handlers, and reads a test clock's time through this port (it imports
    # no feature).
    TASKS.install(TASK_TABLE)
    TASKS.use_test_clock_time(advance.frozen_time)


wire()
