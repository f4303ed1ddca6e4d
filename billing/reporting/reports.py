"""The finance reports (definitions in docs/console.md): each one query (or a few) over the merchant's rows,
set-based in SQL, or one query's rows through the pure functions of `billing.reporting.mrr`.

A report covers one scope: live data (customers without a test clock, "now" is real time), or one test clock's
customers (its frozen time is "now"), as Stripe keeps test clocks out of live figures. Months are UTC calendar
months from `from` to `to` (YYYY-MM, both included; default: the 12 months up to now).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog.models import Coupon, Plan
from billing.clock import Clock
from billing.credit_notes.models import CreditNote
from billing.customers.models import Customer
from billing.errors import InvalidRequest
from billing.invoices.models import Invoice, InvoiceLine
from billing.invoices.search import due_moment
from billing.payments.models import Payment, Refund
from billing.reporting import mrr, schemas
from billing.test_clocks.service import get_test_clock
from dunning.models import DunningCase
from plans.discounts import Coupon as PureCoupon
from plans.discounts import CouponDuration
from webhooks.models import Event

NAMES = ("mrr", "churn", "ar_aging", "payment_success", "revenue", "dunning")
MAX_MONTHS = 60
_MONTH = re.compile(r"(\d{4})-(\d{2})")
# (bucket, first day past due, last day past due); days past due = whole days since the due moment.
AGING_BUCKETS: tuple[tuple[str, int | None, int | None], ...] = (
    ("current", None, 0),
    ("1_30", 1, 30),
    ("31_60", 31, 60),
    ("61_90", 61, 90),
    ("90_plus", 91, None),
)


def aging_bucket(days_past_due: int) -> str:
    """The ageing bucket of an invoice this many whole days past its due moment (≤ 0: not yet due)."""
    for name, first, last in AGING_BUCKETS:
        if (first is None or days_past_due >= first) and (last is None or days_past_due <= last):
            return name
    raise AssertionError("the buckets cover every integer")


@dataclass(frozen=True)
class Month:
    label: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Scope:
    merchant_id: str
    test_clock_id: str | None
    now: datetime
    months: tuple[Month, ...]

    @property
    def start(self) -> datetime:
        return self.months[0].start

    @property
    def end(self) -> datetime:
        return self.months[-1].end


def _first_of(year: int, month: int) -> datetime:
    return datetime(year, month, 1, tzinfo=UTC)


def _shift(year: int, month: int, by: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + by
    return index // 12, index % 12 + 1


def parse_month(value: str, param: str) -> tuple[int, int]:
    match = _MONTH.fullmatch(value.strip())
    if match is None or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1970:
        raise InvalidRequest(
            f"{param} must be a month as YYYY-MM, e.g. 2027-03; got {value[:20]!r}.", param=param
        )
    return int(match.group(1)), int(match.group(2))


def month_windows(first: tuple[int, int], last: tuple[int, int]) -> tuple[Month, ...]:
    count = (last[0] * 12 + last[1]) - (first[0] * 12 + first[1]) + 1
    months = []
    for offset in range(count):
        y, m = _shift(*first, offset)
        ny, nm = _shift(y, m, 1)
        months.append(Month(f"{y:04d}-{m:02d}", _first_of(y, m), _first_of(ny, nm)))
    return tuple(months)


async def resolve_scope(
    session: AsyncSession,
    merchant_id: str,
    clock: Clock,
    *,
    test_clock: str | None = None,
    month_from: str | None = None,
    month_to: str | None = None,
) -> Scope:
    """The scope of a report: live data in `clock`'s time, or a test clock's customers in its frozen time."""
    now = clock.now()
    test_clock_id = None
    if test_clock:
        row = await get_test_clock(session, merchant_id, test_clock, param="test_clock")
        now, test_clock_id = row.frozen_time, row.id
    last = parse_month(month_to, "to") if month_to else (now.year, now.month)
    first = parse_month(month_from, "from") if month_from else _shift(*last, -11)
    if first > last:
        raise InvalidRequest("from is after to: give the earlier month first.", param="from")
    months = month_windows(first, last)
    if len(months) > MAX_MONTHS:
        raise InvalidRequest(f"A report covers at most {MAX_MONTHS} months; narrow from/to.", param="from")
    return Scope(merchant_id=merchant_id, test_clock_id=test_clock_id, now=now, months=months)


def _in_scope(column: Any, scope: Scope) -> ColumnElement[bool]:
    condition: ColumnElement[bool] = column.is_not_distinct_from(scope.test_clock_id)
    return condition


def _customer_in_scope(customer_id: Any, scope: Scope) -> ColumnElement[bool]:
    condition: ColumnElement[bool] = customer_id.in_(
        select(Customer.id).where(
            Customer.merchant_id == scope.merchant_id, _in_scope(Customer.test_clock_id, scope)
        )
    )
    return condition


def _month_label(column: Any) -> Any:
    """The UTC month of an instant as YYYY-MM. Constants are inlined, so the same expression in SELECT and
    GROUP BY is the same SQL text (bound parameters would make PostgreSQL see two different expressions)."""
    return func.to_char(
        func.date_trunc(literal_column("'month'"), func.timezone(literal_column("'UTC'"), column)),
        literal_column("'YYYY-MM'"),
    )


def _base(scope: Scope) -> dict[str, Any]:
    return {"as_of": scope.now, "test_clock": scope.test_clock_id, "months": [m.label for m in scope.months]}


# --- MRR and churn ------------------------------------------------------------------------------------------


async def subscription_states(session: AsyncSession, scope: Scope) -> list[mrr.SubscriptionState]:
    """Every state of the scope's subscriptions up to now, from their events (each event holds the object as it
    was), with the plan's price (or the subscription's own), the coupon and the add-on items: one query, and one
    for the add-ons' plans."""
    plan_id = Event.data["plan"].astext
    coupon_id = Event.data["coupon"].astext
    rows = await session.execute(
        select(
            Event.created_at,
            Event.seq,
            Event.object_id,
            plan_id,
            Event.data["customer"].astext,
            Event.data["status"].astext,
            Event.data["quantity"].astext,
            Event.data["current_period_start"].astext,
            coupon_id,
            Plan.currency,
            Plan.amount_decimal,
            Plan.interval,
            Plan.interval_count,
            Coupon.duration,
            Coupon.percent_off,
            Coupon.amount_off,
            Coupon.currency,
            Coupon.duration_in_periods,
            Event.data["items"],
            Event.data["price_overrides"],
        )
        .join(Plan, and_(Plan.id == plan_id, Plan.merchant_id == Event.merchant_id))
        .outerjoin(Coupon, and_(Coupon.id == coupon_id, Coupon.merchant_id == Event.merchant_id))
        .where(
            Event.merchant_id == scope.merchant_id,
            Event.type.startswith("subscription."),
            _in_scope(Event.test_clock_id, scope),
            Event.created_at <= scope.now,
        )
        .order_by(Event.created_at, Event.seq)
    )
    found = rows.all()
    addon_prices = await _addon_prices(session, scope.merchant_id, [row[-2] for row in found])
    states = []
    for (
        at,
        seq,
        subscription,
        plan,
        customer,
        status,
        quantity,
        period_start,
        coupon,
        currency,
        amount,
        interval,
        interval_count,
        duration,
        percent_off,
        amount_off,
        coupon_currency,
        periods,
        items,
        overrides,
    ) in found:
        own = overrides.get("amount_decimal") if overrides and overrides.get("plan") == plan else None
        states.append(
            mrr.SubscriptionState(
                at=at,
                seq=seq,
                subscription=subscription,
                customer=customer,
                status=status,
                quantity=int(quantity),
                current_period_start=datetime.fromisoformat(period_start) if period_start else None,
                currency=currency,
                unit_amount=Decimal(own if own is not None else amount),
                addons=tuple(
                    (addon_prices[item["plan"]], int(item["quantity"])) for item in (items or [])[1:]
                ),
                interval=interval,
                interval_count=interval_count,
                coupon_id=coupon if duration is not None else None,
                coupon=PureCoupon(
                    duration=CouponDuration(duration),
                    percent_off=percent_off,
                    amount_off=amount_off,
                    currency=coupon_currency,
                    duration_in_periods=periods,
                )
                if duration is not None
                else None,
            )
        )
    return states


async def _addon_prices(
    session: AsyncSession, merchant_id: str, items_of_states: Sequence[list[dict[str, Any]] | None]
) -> dict[str, Decimal]:
    """The unit price of every plan that is an add-on item (not the first item) in one of the states."""
    wanted = {item["plan"] for items in items_of_states for item in (items or [])[1:]}
    if not wanted:
        return {}
    rows = await session.execute(
        select(Plan.id, Plan.amount_decimal).where(Plan.merchant_id == merchant_id, Plan.id.in_(wanted))
    )
    return {plan_id: Decimal(amount) for plan_id, amount in rows}


async def _metered_revenue(session: AsyncSession, scope: Scope) -> dict[tuple[str, str], int]:
    """Usage invoiced per (currency, month of finalization): the metered revenue shown apart from MRR."""
    rows = await session.execute(
        select(Invoice.currency, _month_label(Invoice.finalized_at), func.sum(InvoiceLine.amount))
        .join(InvoiceLine, InvoiceLine.invoice_id == Invoice.id)
        .where(
            Invoice.merchant_id == scope.merchant_id,
            Invoice.status.in_(("open", "paid", "uncollectible")),
            InvoiceLine.type == "usage",
            Invoice.finalized_at >= scope.start,
            Invoice.finalized_at < scope.end,
            _customer_in_scope(Invoice.customer_id, scope),
        )
        .group_by(Invoice.currency, _month_label(Invoice.finalized_at))
    )
    return {(currency, month): int(total or 0) for currency, month, total in rows}


async def mrr_report(session: AsyncSession, scope: Scope) -> schemas.MrrReport:
    changes = mrr.customer_changes(await subscription_states(session, scope))
    metered = await _metered_revenue(session, scope)
    currencies = sorted({c.currency for c in changes} | {currency for currency, _ in metered})
    out = []
    for currency in currencies:
        now_mrr, now_customers = mrr.mrr_at(changes, currency, scope.now)
        figures = mrr.monthly_figures(changes, currency, [(m.start, m.end) for m in scope.months])
        out.append(
            schemas.MrrCurrency(
                currency=currency,
                mrr=now_mrr,
                arr=now_mrr * 12,
                customers=now_customers,
                months=[
                    schemas.MrrMonth(
                        month=month.label,
                        mrr=f.end_mrr,
                        arr=f.end_mrr * 12,
                        customers=f.end_customers,
                        new=f.new,
                        expansion=f.expansion,
                        contraction=f.contraction,
                        churned=f.churned,
                        reactivated=f.reactivated,
                        metered_revenue=metered.get((currency, month.label), 0),
                    )
                    for month, f in zip(scope.months, figures, strict=True)
                ],
            )
        )
    return schemas.MrrReport(currencies=out, **_base(scope))


async def churn_report(session: AsyncSession, scope: Scope) -> schemas.ChurnReport:
    """Customer churn = customers whose MRR fell to 0 in the month / paying customers at its start. Gross revenue
    churn = (churned + contraction) / MRR at start; net = (churned + contraction − expansion − reactivated) /
    MRR at start (negative: the base grew)."""
    changes = mrr.customer_changes(await subscription_states(session, scope))
    out = []
    for currency in sorted({c.currency for c in changes}):
        figures = mrr.monthly_figures(changes, currency, [(m.start, m.end) for m in scope.months])
        out.append(
            schemas.ChurnCurrency(
                currency=currency,
                months=[
                    schemas.ChurnMonth(
                        month=month.label,
                        customers_at_start=f.start_customers,
                        customers_churned=f.churned_customers,
                        customer_churn_rate=mrr.ratio(f.churned_customers, f.start_customers),
                        mrr_at_start=f.start_mrr,
                        churned_mrr=f.churned,
                        contraction_mrr=f.contraction,
                        expansion_mrr=f.expansion,
                        reactivated_mrr=f.reactivated,
                        gross_revenue_churn_rate=mrr.ratio(f.churned + f.contraction, f.start_mrr),
                        net_revenue_churn_rate=mrr.ratio(
                            f.churned + f.contraction - f.expansion - f.reactivated, f.start_mrr
                        ),
                    )
                    for month, f in zip(scope.months, figures, strict=True)
                ],
            )
        )
    return schemas.ChurnReport(currencies=out, **_base(scope))


# --- Receivables --------------------------------------------------------------------------------------------


def _days_past_due(now: datetime) -> Any:
    return func.floor(func.extract("epoch", literal(now) - due_moment()) / 86400)


def _bucket_case(days: Any) -> Any:
    whens = []
    for name, first, last in AGING_BUCKETS:
        conditions = []
        if first is not None:
            conditions.append(days >= first)
        if last is not None:
            conditions.append(days <= last)
        whens.append((and_(*conditions), name))
    return case(*whens)


async def ar_aging_report(session: AsyncSession, scope: Scope) -> schemas.ArAgingReport:
    """What open invoices still ask (amount_remaining) as of now, by whole days past their due moment (the due
    date; for invoices charged automatically, finalization). Uncollectible (written-off) invoices are left out."""
    bucket = _bucket_case(_days_past_due(scope.now))
    rows = await session.execute(
        select(Invoice.currency, bucket, func.sum(Invoice.amount_remaining), func.count())
        .where(
            Invoice.merchant_id == scope.merchant_id,
            Invoice.status == "open",
            Invoice.amount_remaining > 0,
            Invoice.finalized_at <= scope.now,
            _customer_in_scope(Invoice.customer_id, scope),
        )
        .group_by(Invoice.currency, bucket)
    )
    found: dict[str, dict[str, tuple[int, int]]] = defaultdict(dict)
    for currency, name, amount, count in rows:
        found[currency][name] = (int(amount or 0), int(count))
    out = []
    for currency in sorted(found):
        buckets = [
            schemas.AgingBucket(
                bucket=name,  # type: ignore[arg-type]
                amount=found[currency].get(name, (0, 0))[0],
                invoices=found[currency].get(name, (0, 0))[1],
            )
            for name, _, _ in AGING_BUCKETS
        ]
        out.append(
            schemas.AgingCurrency(
                currency=currency,
                total=sum(b.amount for b in buckets),
                invoices=sum(b.invoices for b in buckets),
                buckets=buckets,
            )
        )
    return schemas.ArAgingReport(currencies=out, **_base(scope))


# --- Payments -----------------------------------------------------------------------------------------------


def _success_rows(counts: dict[str, tuple[int, int]]) -> list[schemas.SuccessRow]:
    return [
        schemas.SuccessRow(
            key=key, attempts=ok + bad, succeeded=ok, failed=bad, success_rate=mrr.ratio(ok, ok + bad)
        )
        for key, (ok, bad) in sorted(counts.items(), key=lambda item: (-(item[1][0] + item[1][1]), item[0]))
    ]


async def payment_success_report(session: AsyncSession, scope: Scope) -> schemas.PaymentSuccessReport:
    """Charge attempts created in the months (pending ones, still being confirmed, left out): succeeded / all, by
    gateway connection and by decline reason (failure code), overall and per month."""
    gateway = func.coalesce(Payment.gateway, "none")
    reason = func.coalesce(Payment.failure_code, "unknown")
    rows = await session.execute(
        select(_month_label(Payment.created_at), gateway, Payment.status, reason, func.count())
        .where(
            Payment.merchant_id == scope.merchant_id,
            Payment.status.in_(("succeeded", "failed")),
            _in_scope(Payment.test_clock_id, scope),
            Payment.created_at >= scope.start,
            Payment.created_at < scope.end,
        )
        .group_by(_month_label(Payment.created_at), gateway, Payment.status, reason)
    )
    by_month: dict[str, dict[str, dict[str, list[int]]]] = defaultdict(
        lambda: {"gateway": defaultdict(lambda: [0, 0]), "reason": defaultdict(lambda: [0, 0])}
    )
    for month, gateway_id, status, code, count in rows:
        ok = status == "succeeded"
        by_month[month]["gateway"][gateway_id][0 if ok else 1] += int(count)
        if not ok:
            by_month[month]["reason"][code][1] += int(count)

    def totals(groups: Sequence[dict[str, list[int]]]) -> dict[str, tuple[int, int]]:
        merged: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for group in groups:
            for key, (ok, bad) in group.items():
                merged[key][0] += ok
                merged[key][1] += bad
        return {key: (ok, bad) for key, (ok, bad) in merged.items()}

    months = []
    for month in scope.months:
        data = by_month.get(month.label)
        gateways = totals([data["gateway"]]) if data else {}
        ok = sum(v[0] for v in gateways.values())
        bad = sum(v[1] for v in gateways.values())
        months.append(
            schemas.SuccessMonth(
                month=month.label,
                attempts=ok + bad,
                succeeded=ok,
                failed=bad,
                success_rate=mrr.ratio(ok, ok + bad),
                by_gateway=_success_rows(gateways),
                by_decline_reason=_success_rows(totals([data["reason"]]) if data else {}),
            )
        )
    all_gateways = totals([d["gateway"] for d in by_month.values()])
    ok = sum(v[0] for v in all_gateways.values())
    bad = sum(v[1] for v in all_gateways.values())
    return schemas.PaymentSuccessReport(
        attempts=ok + bad,
        succeeded=ok,
        failed=bad,
        success_rate=mrr.ratio(ok, ok + bad),
        by_gateway=_success_rows(all_gateways),
        by_decline_reason=_success_rows(totals([d["reason"] for d in by_month.values()])),
        by_month=months,
        **_base(scope),
    )


# --- Revenue ------------------------------------------------------------------------------------------------


async def revenue_report(session: AsyncSession, scope: Scope) -> schemas.RevenueReport:
    """Per month and currency: invoiced (totals of invoices finalized in the month, void ones left out), paid
    (money received: succeeded charges, and invoices paid out of band, by the day the money came), outstanding
    (what the month's invoices still ask today), credited (credit notes issued) and refunded (refunds that
    succeeded)."""
    figures: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    window_invoices = (
        Invoice.merchant_id == scope.merchant_id,
        Invoice.finalized_at >= scope.start,
        Invoice.finalized_at < scope.end,
        _customer_in_scope(Invoice.customer_id, scope),
    )
    invoiced = await session.execute(
        select(
            Invoice.currency,
            _month_label(Invoice.finalized_at),
            func.sum(case((Invoice.status != "void", Invoice.total), else_=0)),
            func.sum(case((Invoice.status == "open", Invoice.amount_remaining), else_=0)),
        )
        .where(*window_invoices)
        .group_by(Invoice.currency, _month_label(Invoice.finalized_at))
    )
    for currency, month, total, outstanding in invoiced:
        figures[currency][month]["invoiced"] += int(total or 0)
        figures[currency][month]["outstanding"] += int(outstanding or 0)
    paid_at = func.coalesce(Payment.settled_at, Payment.created_at)
    refunded_at = func.coalesce(Refund.settled_at, Refund.created_at)
    sums = (
        (
            "paid",
            Payment.currency,
            paid_at,
            Payment.amount,
            (
                Payment.merchant_id == scope.merchant_id,
                Payment.status == "succeeded",
                _in_scope(Payment.test_clock_id, scope),
            ),
        ),
        (
            "paid",
            Invoice.currency,
            Invoice.paid_at,
            Invoice.amount_paid - Invoice.pre_payment_credit_notes_amount,
            (
                Invoice.merchant_id == scope.merchant_id,
                Invoice.paid_out_of_band.is_(True),
                _customer_in_scope(Invoice.customer_id, scope),
            ),
        ),
        (
            "credited",
            CreditNote.currency,
            CreditNote.created_at,
            CreditNote.amount,
            (
                CreditNote.merchant_id == scope.merchant_id,
                CreditNote.status == "issued",
                _customer_in_scope(CreditNote.customer_id, scope),
            ),
        ),
        (
            "refunded",
            Refund.currency,
            refunded_at,
            Refund.amount,
            (
                Refund.merchant_id == scope.merchant_id,
                Refund.status == "succeeded",
                _in_scope(Refund.test_clock_id, scope),
            ),
        ),
    )
    for figure, currency_column, moment, amount, where in sums:
        month = _month_label(moment)
        rows = await session.execute(
            select(currency_column, month, func.sum(amount))
            .where(*where, moment >= scope.start, moment < scope.end)
            .group_by(currency_column, month)
        )
        for currency, label, total in rows:
            figures[currency][label][figure] += int(total or 0)
    return schemas.RevenueReport(
        currencies=[
            schemas.RevenueCurrency(
                currency=currency,
                months=[
                    schemas.RevenueMonth(
                        month=m.label,
                        invoiced=figures[currency][m.label]["invoiced"],
                        paid=figures[currency][m.label]["paid"],
                        outstanding=figures[currency][m.label]["outstanding"],
                        credited=figures[currency][m.label]["credited"],
                        refunded=figures[currency][m.label]["refunded"],
                    )
                    for m in scope.months
                ],
            )
            for currency in sorted(figures)
        ],
        **_base(scope),
    )


# --- Dunning ------------------------------------------------------------------------------------------------


async def dunning_report(session: AsyncSession, scope: Scope) -> schemas.DunningReport:
    """Dunning cases opened (first failure) in each month, and those closed in it: recovered (with the amount the
    recovery brought in) or exhausted. Recovery rate over the months = recovered / (recovered + exhausted +
    voided) of the cases closed in them."""
    where = (DunningCase.merchant_id == scope.merchant_id, _in_scope(DunningCase.test_clock_id, scope))
    opened = await session.execute(
        select(DunningCase.currency, _month_label(DunningCase.first_failure_at), func.count())
        .where(*where, DunningCase.first_failure_at >= scope.start, DunningCase.first_failure_at < scope.end)
        .group_by(DunningCase.currency, _month_label(DunningCase.first_failure_at))
    )
    figures: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    for currency, month, count in opened:
        figures[currency][month]["opened"] += int(count)
    closed = await session.execute(
        select(
            DunningCase.currency,
            _month_label(DunningCase.closed_at),
            DunningCase.state,
            func.count(),
            func.coalesce(func.sum(DunningCase.recovered_amount), 0),
        )
        .where(
            *where,
            DunningCase.closed_at.is_not(None),
            DunningCase.closed_at >= scope.start,
            DunningCase.closed_at < scope.end,
        )
        .group_by(DunningCase.currency, _month_label(DunningCase.closed_at), DunningCase.state)
    )
    for currency, month, state, count, amount in closed:
        figures[currency][month]["closed"] += int(count)
        if state == "recovered":
            figures[currency][month]["recovered"] += int(count)
            figures[currency][month]["amount"] += int(amount or 0)
        elif state == "exhausted":
            figures[currency][month]["exhausted"] += int(count)
    out = []
    for currency in sorted(figures):
        months = [
            schemas.DunningMonth(
                month=m.label,
                cases_opened=figures[currency][m.label]["opened"],
                cases_recovered=figures[currency][m.label]["recovered"],
                cases_exhausted=figures[currency][m.label]["exhausted"],
                recovered_amount=figures[currency][m.label]["amount"],
            )
            for m in scope.months
        ]
        recovered = sum(m.cases_recovered for m in months)
        closed_count = sum(figures[currency][m.label]["closed"] for m in scope.months)
        out.append(
            schemas.DunningCurrency(
                currency=currency,
                recovered_amount=sum(m.recovered_amount for m in months),
                cases_opened=sum(m.cases_opened for m in months),
                cases_recovered=recovered,
                cases_closed=closed_count,
                recovery_rate=mrr.ratio(recovered, closed_count),
                months=months,
            )
        )
    return schemas.DunningReport(currencies=out, **_base(scope))


async def build_report(session: AsyncSession, name: str, scope: Scope) -> schemas.AnyReport:
    builders: dict[str, Callable[[AsyncSession, Scope], Awaitable[schemas.AnyReport]]] = {
        "mrr": mrr_report,
        "churn": churn_report,
        "ar_aging": ar_aging_report,
        "payment_success": payment_success_report,
        "revenue": revenue_report,
        "dunning": dunning_report,
    }
    if name not in builders:
        raise InvalidRequest(f"Unknown report {name!r}: one of {', '.join(NAMES)}.", param="name")
    return await builders[name](session, scope)
