"""The task table: every kind of scheduled task, its typed payload and its handlers, in one place. The scheduler
(Infra) runs what this table gives it and imports no feature; `billing/wiring.py` installs the table. Kind names are
stored in `scheduled_tasks.kind`: a renamed kind keeps its old names in `old_names`, so stored rows still run."""

from __future__ import annotations

from billing.invoices import collection
from billing.notifications import card_expiry
from billing.scheduler.registry import NoPayload, TaskKind
from billing.subscriptions import batch
from billing.subscriptions import service as subscriptions
from billing.usage import billing as usage_billing
from billing.usage import close as usage_close
from billing.wallets import ledger as wallet_ledger
from billing.wallets import tasks as wallet_tasks
from dunning import schedule as dunning_schedule

TASK_TABLE: tuple[TaskKind, ...] = (
    # Renewals (the set-based batch beside the single renewal, which stays the reference), their notices.
    TaskKind(
        subscriptions.RENEW, subscriptions.RenewPayload, subscriptions.renew_task, batch=batch.renew_batch
    ),
    TaskKind(
        subscriptions.UPCOMING_NOTICE, subscriptions.UpcomingNoticePayload, subscriptions.upcoming_notice_task
    ),
    TaskKind(
        subscriptions.TRIAL_WILL_END, subscriptions.SubscriptionPayload, subscriptions.trial_will_end_task
    ),
    TaskKind(
        subscriptions.EXPIRE_INCOMPLETE,
        subscriptions.SubscriptionPayload,
        subscriptions.expire_incomplete_task,
    ),
    # Usage: renewal invoices held for late usage, the last true-up of an ended subscription.
    TaskKind(
        usage_billing.CLOSE_USAGE,
        usage_billing.CloseUsagePayload,
        usage_close.close_usage_invoice_task,
        batch=usage_close.close_usage_batch,
    ),
    TaskKind(
        usage_billing.FINAL_TRUE_UP, usage_billing.FinalTrueUpPayload, subscriptions.final_usage_true_up_task
    ),
    # Collection: charges of invoices (first attempts, dunning retries, looks again at pending payments).
    TaskKind(
        collection.COLLECT, collection.CollectPayload, collection.collect_task, batch=collection.collect_batch
    ),
    # Dunning: the deadline of a case waiting for a payment method.
    TaskKind(dunning_schedule.DEADLINE, dunning_schedule.DeadlinePayload, dunning_schedule.deadline_task),
    # Notifications: the daily card-expiry scan of a merchant.
    TaskKind(card_expiry.SCAN, NoPayload, card_expiry.card_expiry_scan_task),
    # Wallets: granted credits expire; a movement below the threshold buys the automatic top-up.
    TaskKind(wallet_ledger.EXPIRE, wallet_ledger.ExpireCreditsPayload, wallet_tasks.expire_credits_task),
    TaskKind(wallet_ledger.AUTO_TOP_UP, wallet_ledger.AutoTopUpPayload, wallet_tasks.auto_top_up_task),
)
