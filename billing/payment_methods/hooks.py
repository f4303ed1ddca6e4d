"""The hook points fired when a customer's payment method changes (billing/hooks.py): one was added, or chosen
as the default of a customer or of a subscription. Dunning retries the invoices it is recovering by listening
(subscribed in billing/wiring.py); whoever fires it imports no dunning."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.hooks import Hook


@dataclass(frozen=True)
class PaymentMethodChosen:
    session: AsyncSession
    merchant_id: str
    customer_id: str
    clock: Clock
    # The payment method to charge (None: the customer's default at the time of the charge).
    payment_method: str | None = None
    # Only the invoices of this subscription (None: every invoice of the customer).
    subscription_id: str | None = None


payment_method_added: Hook[PaymentMethodChosen] = Hook("payment_method_added")
