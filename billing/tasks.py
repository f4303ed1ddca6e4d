"""Every feature that registers scheduled-task handlers, imported in one place so that any process running
tasks (a worker, a test clock advance) knows every kind."""

import billing.dunning_cases.service  # dunning deadlines (retries are invoice.collect tasks)
import billing.invoice_items.service  # a renewal bills the customer's pending invoice items
import billing.invoices.collection
import billing.notifications.card_expiry  # the daily card-expiry scan
import billing.subscriptions.batch  # renewals as a set, beside the single renewal
import billing.subscriptions.service  # renewals, trial ends, incomplete expiry
import billing.usage.close  # renewal invoices held for late usage
import billing.wallets.tasks  # noqa: F401  credits expiring, automatic top-ups
