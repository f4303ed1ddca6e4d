"""Every feature that registers scheduled-task handlers, imported in one place so that any process running
tasks (a worker, a test clock advance) knows every kind."""

import billing.invoices.collection
import billing.subscriptions.service  # noqa: F401  renewals, trial ends, incomplete expiry
