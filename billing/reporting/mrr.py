"""Monthly recurring revenue, as pure functions over the history of subscription states (docs/console.md).

Definition. A subscription contributes to MRR while its status is `active` or `past_due` (trialing, paused,
incomplete, unpaid and ended subscriptions contribute nothing). Its contribution is the advance fee of one
period — its plan's (unit price × quantity, the subscription's own price when it overrides the plan's) plus each
add-on item's (its plan's unit price × its quantity), each rounded half-up as its invoice line is — less the
coupon's discount on that sum when the coupon applies to the current period (the invoice's own rule, `plans.discounts`: `once` → the first period, `repeating`
→ the first N paid periods, `forever` → always), normalised to a month: × 1/count for `month`, ÷ 12 for `year`,
× 52/12 for `week`, × 365/12 for `day`, rounded half-up to a minor unit per subscription. Metered charges are
not MRR (they are reported apart, as invoiced usage). ARR = MRR × 12.

Movements, per customer and currency (a customer's MRR is the sum over its subscriptions): each change of a
customer's MRR is one movement — `new` (0 → positive, the customer never had MRR before), `reactivated`
(0 → positive, it had before), `expansion` (up), `contraction` (down, not to 0), `churned` (to 0). So for any
period, MRR at its end = MRR at its start + new + reactivated + expansion − contraction − churned, exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from fractions import Fraction

from plans.discounts import Coupon, apply_discount, coupon_applies
from plans.items import item_fee
from plans.money import round_minor

PAYING = frozenset({"active", "past_due"})
_MONTHS_PER = {
    "month": Fraction(1),
    "year": Fraction(1, 12),
    "week": Fraction(52, 12),
    "day": Fraction(365, 12),
}
MOVEMENTS = ("new", "expansion", "contraction", "churned", "reactivated")


@dataclass(frozen=True)
class SubscriptionState:
    """A subscription as one event recorded it (the object at that moment), with its plan's price and its
    coupon: what MRR is computed from."""

    at: datetime
    seq: int
    subscription: str
    customer: str
    status: str
    quantity: int
    current_period_start: datetime | None
    currency: str
    unit_amount: Decimal
    interval: str
    interval_count: int
    coupon_id: str | None = None
    coupon: Coupon | None = None
    # The add-on items then: (unit price of the item's plan, quantity) each, on the subscription's calendar.
    addons: tuple[tuple[Decimal, int], ...] = ()


@dataclass(frozen=True)
class CustomerChange:
    at: datetime
    seq: int
    customer: str
    currency: str
    before: int
    after: int
    kind: str


def monthly_factor(interval: str, interval_count: int) -> Fraction:
    """How many of this billing period fit in a month (a year plan: 1/12)."""
    return _MONTHS_PER[interval] / interval_count


def subscription_mrr(state: SubscriptionState, coupon_period: int | None) -> int:
    """One subscription's MRR in this state; `coupon_period`: the index of the current period since the coupon
    was redeemed (None: not known to apply)."""
    if state.status not in PAYING:
        return 0
    fee = item_fee(state.unit_amount, state.quantity) + sum(
        item_fee(unit_amount, quantity) for unit_amount, quantity in state.addons
    )
    discount = 0
    if state.coupon is not None and coupon_period is not None and coupon_applies(state.coupon, coupon_period):
        discount = apply_discount(fee, state.coupon, currency=state.currency)
    return round_minor((fee - discount) * monthly_factor(state.interval, state.interval_count))


@dataclass
class _Tracker:
    coupon_id: str | None = None
    periods: list[datetime] = field(default_factory=list)
    value: int = 0


def subscription_values(states: Iterable[SubscriptionState]) -> list[tuple[SubscriptionState, int]]:
    """Each state (in time order, then event order) with the subscription's MRR from then on. Coupon periods are
    counted as the invoice counts them: paid periods since the coupon was redeemed (a trial is not one)."""
    trackers: dict[str, _Tracker] = {}
    out = []
    for state in sorted(states, key=lambda s: (s.at, s.seq)):
        tracker = trackers.setdefault(state.subscription, _Tracker())
        if state.coupon_id != tracker.coupon_id:
            tracker.coupon_id, tracker.periods = state.coupon_id, []
        period: int | None = None
        if (
            state.coupon_id is not None
            and state.status != "trialing"
            and state.current_period_start is not None
        ):
            if state.current_period_start not in tracker.periods:
                tracker.periods.append(state.current_period_start)
            period = tracker.periods.index(state.current_period_start)
        tracker.value = subscription_mrr(state, period)
        out.append((state, tracker.value))
    return out


def classify(before: int, after: int, had_mrr_before: bool) -> str:
    """The movement of a customer's MRR going from `before` to `after` (they differ)."""
    if before == 0:
        return "reactivated" if had_mrr_before else "new"
    if after == 0:
        return "churned"
    return "expansion" if after > before else "contraction"


def customer_changes(states: Iterable[SubscriptionState]) -> list[CustomerChange]:
    """Every change of a customer's MRR (per currency), in time order, classified."""
    per_subscription: dict[str, int] = {}
    per_customer: dict[tuple[str, str], int] = {}
    had: set[tuple[str, str]] = set()
    changes = []
    for state, value in subscription_values(states):
        key = (state.customer, state.currency)
        old_sub = per_subscription.get(state.subscription, 0)
        if value == old_sub:
            continue
        per_subscription[state.subscription] = value
        before = per_customer.get(key, 0)
        after = before + value - old_sub
        per_customer[key] = after
        if before == after:
            continue
        changes.append(
            CustomerChange(
                state.at,
                state.seq,
                state.customer,
                state.currency,
                before,
                after,
                classify(before, after, key in had),
            )
        )
        if after > 0:
            had.add(key)
    return changes


@dataclass(frozen=True)
class MonthFigures:
    """One month of one currency: MRR and paying customers at the month's end, and the movements in it
    (contraction and churned as positive amounts taken away)."""

    start_mrr: int
    end_mrr: int
    start_customers: int
    end_customers: int
    new: int = 0
    expansion: int = 0
    contraction: int = 0
    churned: int = 0
    reactivated: int = 0
    churned_customers: int = 0


def mrr_at(changes: Sequence[CustomerChange], currency: str, instant: datetime) -> tuple[int, int]:
    """(MRR, paying customers) of `currency` just after `instant` (changes at `instant` included)."""
    current: dict[str, int] = {}
    for change in changes:
        if change.currency == currency and change.at <= instant:
            current[change.customer] = change.after
    return sum(current.values()), sum(1 for v in current.values() if v > 0)


def monthly_figures(
    changes: Sequence[CustomerChange], currency: str, months: Sequence[tuple[datetime, datetime]]
) -> list[MonthFigures]:
    """For each month [start, end): MRR at its start and end and the movements of changes at start ≤ t < end."""
    mine = [c for c in changes if c.currency == currency]
    out = []
    for start, end in months:
        state: dict[str, int] = {}
        for change in mine:
            if change.at < start:
                state[change.customer] = change.after
        start_mrr, start_customers = sum(state.values()), sum(1 for v in state.values() if v > 0)
        moved = dict.fromkeys(MOVEMENTS, 0)
        churned_customers = 0
        for change in mine:
            if start <= change.at < end:
                delta = change.after - change.before
                moved[change.kind] += abs(delta)
                if change.kind == "churned":
                    churned_customers += 1
                state[change.customer] = change.after
        out.append(
            MonthFigures(
                start_mrr=start_mrr,
                end_mrr=sum(state.values()),
                start_customers=start_customers,
                end_customers=sum(1 for v in state.values() if v > 0),
                churned_customers=churned_customers,
                **moved,
            )
        )
    return out


def ratio(numerator: int, denominator: int) -> str | None:
    """numerator / denominator as a decimal string with 4 places (half-up), None when the denominator is 0."""
    if denominator == 0:
        return None
    return str(Decimal(round_minor(Fraction(numerator * 10_000, denominator))).scaleb(-4))
