"""The reports as the API returns them (`GET /v1/reports/<name>`): amounts in minor units per currency, months
as YYYY-MM (UTC), ratios as decimal strings with 4 places (null when undefined)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec


class _Report(msgspec.Struct, kw_only=True):
    object: Literal["report"] = "report"
    as_of: datetime
    test_clock: str | None
    months: list[str]


class MrrMonth(msgspec.Struct, kw_only=True):
    """One month's MRR and its movements: new, expansion, contraction, churned and reactivated."""

    month: str
    mrr: int
    arr: int
    customers: int
    new: int
    expansion: int
    contraction: int
    churned: int
    reactivated: int
    metered_revenue: int


class MrrCurrency(msgspec.Struct, kw_only=True):
    """Monthly recurring revenue in one currency, month by month."""

    currency: str
    mrr: int
    arr: int
    customers: int
    months: list[MrrMonth]


class MrrReport(_Report, kw_only=True):
    """Monthly recurring revenue and its movements per month and currency."""

    name: Literal["mrr"] = "mrr"
    currencies: list[MrrCurrency]


class ChurnMonth(msgspec.Struct, kw_only=True):
    """One month of churn: customers at the start, customers lost, MRR lost and the churn rates."""

    month: str
    customers_at_start: int
    customers_churned: int
    customer_churn_rate: str | None
    mrr_at_start: int
    churned_mrr: int
    contraction_mrr: int
    expansion_mrr: int
    reactivated_mrr: int
    gross_revenue_churn_rate: str | None
    net_revenue_churn_rate: str | None


class ChurnCurrency(msgspec.Struct, kw_only=True):
    """Churn in one currency: monthly rows of customers lost and MRR lost."""

    currency: str
    months: list[ChurnMonth]


class ChurnReport(_Report, kw_only=True):
    """Customer and revenue churn per month and currency."""

    name: Literal["churn"] = "churn"
    currencies: list[ChurnCurrency]


class AgingBucket(msgspec.Struct, kw_only=True):
    """Open invoices of one age: `bucket` is days past due (current = not due yet), with their amount due and count."""

    bucket: Literal["current", "1_30", "31_60", "61_90", "90_plus"]
    amount: int
    invoices: int


class AgingCurrency(msgspec.Struct, kw_only=True):
    """Accounts-receivable aging in one currency: the amount due of open invoices per age bucket."""

    currency: str
    total: int
    invoices: int
    buckets: list[AgingBucket]


class ArAgingReport(_Report, kw_only=True):
    """Accounts-receivable aging as of a date: open invoices' amounts due by days past due, per currency."""

    name: Literal["ar_aging"] = "ar_aging"
    currencies: list[AgingCurrency]


class SuccessCounts(msgspec.Struct, kw_only=True):
    """Charge attempts that ended (pending ones are left out) and the share that succeeded."""

    attempts: int
    succeeded: int
    failed: int
    success_rate: str | None


class SuccessRow(SuccessCounts, kw_only=True):
    """Attempts and successes for one gateway or decline reason."""

    key: str


class SuccessBreakdown(SuccessCounts, kw_only=True):
    by_gateway: list[SuccessRow]
    by_decline_reason: list[SuccessRow]


class SuccessMonth(SuccessBreakdown, kw_only=True):
    """Attempts and successes in one month."""

    month: str


class PaymentSuccessReport(_Report, kw_only=True):
    """Payment attempts and how many succeeded, per gateway, decline reason and month."""

    name: Literal["payment_success"] = "payment_success"
    attempts: int
    succeeded: int
    failed: int
    success_rate: str | None
    by_gateway: list[SuccessRow]
    by_decline_reason: list[SuccessRow]
    by_month: list[SuccessMonth]


class RevenueMonth(msgspec.Struct, kw_only=True):
    """One month of revenue: invoiced, paid, credited and refunded amounts."""

    month: str
    invoiced: int
    paid: int
    outstanding: int
    credited: int
    refunded: int


class RevenueCurrency(msgspec.Struct, kw_only=True):
    """Revenue in one currency, month by month."""

    currency: str
    months: list[RevenueMonth]


class RevenueReport(_Report, kw_only=True):
    """Revenue per month and currency."""

    name: Literal["revenue"] = "revenue"
    currencies: list[RevenueCurrency]


class DunningMonth(msgspec.Struct, kw_only=True):
    """One month of dunning: cases opened, recovered and exhausted, and the recovery rate."""

    month: str
    cases_opened: int
    cases_recovered: int
    cases_exhausted: int
    recovered_amount: int


class DunningCurrency(msgspec.Struct, kw_only=True):
    """Dunning results in one currency: cases opened, recovered and lost, and the revenue recovered."""

    currency: str
    recovered_amount: int
    cases_opened: int
    cases_recovered: int
    cases_closed: int
    recovery_rate: str | None
    months: list[DunningMonth]


class DunningReport(_Report, kw_only=True):
    """How failed payments were recovered: cases and recovered revenue per month and currency."""

    name: Literal["dunning"] = "dunning"
    currencies: list[DunningCurrency]


AnyReport = MrrReport | ChurnReport | ArAgingReport | PaymentSuccessReport | RevenueReport | DunningReport
