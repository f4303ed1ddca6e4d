"""The hook points subscriptions fire (billing/hooks.py): a subscription was created; its trial ends soon.
Notifications (the card-expiry scan, the trial-ending email) listen, subscribed in billing/wiring.py;
subscriptions send no email."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.hooks import Hook
from billing.subscriptions.models import Subscription


@dataclass(frozen=True)
class SubscriptionCreated:
    session: AsyncSession
    merchant_id: str
    clock: Clock


@dataclass(frozen=True)
class TrialEnding:
    """`subscription.trial_will_end`, with what the invoice that ends the trial will charge (the subscription's
    upcoming invoice: coupon, taxes and the customer's balance applied)."""

    session: AsyncSession
    subscription: Subscription
    clock: Clock
    amount_due: int
    currency: str
    period_start: datetime
    period_end: datetime


subscription_created: Hook[SubscriptionCreated] = Hook("subscription_created")
trial_will_end: Hook[TrialEnding] = Hook("trial_will_end")
