"""Current-period usage as the API shows it (`GET /v1/customers/{id}/usage`, `GET /v1/subscriptions/{id}/usage`)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from billing.catalog.models import Aggregation
from billing.subscriptions.schemas import SubscriptionStatus
from plans.pricing import PricingModel


class UsageTier(msgspec.Struct, kw_only=True):
    """One row of a price breakdown: `quantity` × `unit_amount_decimal` + `flat_amount` = `amount_decimal`
    (minor units, exact). `tier` counts from 1 (null for per_unit and package); for package, `quantity`
    counts packages."""

    tier: int | None
    from_units: int
    to_units: int | None
    quantity: str
    unit_amount_decimal: str
    flat_amount: int
    amount_decimal: str


class ChargeUsage(msgspec.Struct, kw_only=True):
    """One metered charge: the meter's quantity so far this period and its price so far."""

    meter: str
    meter_id: str
    meter_name: str
    aggregation: Aggregation
    model: PricingModel
    quantity: str
    free_units: str
    billable_quantity: str
    packages: int | None
    tiers: list[UsageTier]
    amount_decimal: str
    amount: int


class UsagePeriod(msgspec.Struct, kw_only=True):
    """The usage of one meter in one period: the aggregated quantity and what it will cost."""

    start: datetime
    end: datetime


class SubscriptionUsage(msgspec.Struct, kw_only=True):
    """A subscription's usage in its current period, as it would be billed if the period closed now. `total` is
    the sum of the charges' amounts, before discounts and taxes; usage in a trial is shown but costs nothing."""

    object: Literal["subscription_usage"] = "subscription_usage"
    subscription: str
    customer: str
    plan: str
    status: SubscriptionStatus
    currency: str
    period: UsagePeriod
    in_trial: bool
    as_of: datetime
    charges: list[ChargeUsage]
    total: int


class CustomerUsage(msgspec.Struct, kw_only=True):
    """The current-period usage of each of a customer's subscriptions that renew (trialing, active, past_due,
    unpaid), newest subscription first."""

    object: Literal["customer_usage"] = "customer_usage"
    customer: str
    as_of: datetime
    subscriptions: list[SubscriptionUsage]
