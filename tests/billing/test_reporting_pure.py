"""The pure parts of the console and its reports: MRR normalisation, coupon periods and movements (with
properties), ageing buckets, chart ticks, typed amounts and the language a browser asks for."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.console.charts import Series, bar_chart, line_chart, nice_ticks
from billing.console.pages import parse_major
from billing.console.texts import from_accept_language, pick_locale
from billing.reporting.mrr import (
    SubscriptionState,
    classify,
    customer_changes,
    monthly_factor,
    monthly_figures,
    ratio,
    subscription_values,
)
from billing.reporting.reports import aging_bucket
from plans.discounts import Coupon, CouponDuration

T0 = datetime(2027, 1, 1, tzinfo=UTC)


def state(
    at: datetime,
    sub: str = "sub_1",
    *,
    customer: str = "cus_1",
    status: str = "active",
    quantity: int = 1,
    amount: str = "1000",
    interval: str = "month",
    count: int = 1,
    period: datetime | None = None,
    coupon: Coupon | None = None,
    seq: int = 0,
) -> SubscriptionState:
    return SubscriptionState(
        at=at,
        seq=seq,
        subscription=sub,
        customer=customer,
        status=status,
        quantity=quantity,
        current_period_start=period or at,
        currency="USD",
        unit_amount=Decimal(amount),
        interval=interval,
        interval_count=count,
        coupon_id="cpn_1" if coupon else None,
        coupon=coupon,
    )


def test_monthly_factors() -> None:
    assert monthly_factor("month", 1) == 1
    assert monthly_factor("month", 3) == Fraction(1, 3)
    assert monthly_factor("year", 1) == Fraction(1, 12)
    assert monthly_factor("week", 2) == Fraction(52, 24)
    assert monthly_factor("day", 1) == Fraction(365, 12)


def test_a_repeating_coupon_counts_paid_periods_not_the_trial() -> None:
    coupon = Coupon(duration=CouponDuration.REPEATING, percent_off=Decimal(50), duration_in_periods=2)
    feb, mar, apr = T0 + timedelta(days=31), T0 + timedelta(days=59), T0 + timedelta(days=90)
    states = [
        state(T0, status="trialing", coupon=coupon, period=T0),
        state(feb, coupon=coupon, period=feb, seq=1),
        state(feb + timedelta(days=3), coupon=coupon, period=feb, seq=2),  # an update within the same period
        state(mar, coupon=coupon, period=mar, seq=3),
        state(apr, coupon=coupon, period=apr, seq=4),
    ]
    assert [value for _, value in subscription_values(states)] == [0, 500, 500, 500, 1000]


def test_movements_are_classified_per_customer() -> None:
    assert classify(0, 100, had_mrr_before=False) == "new"
    assert classify(0, 100, had_mrr_before=True) == "reactivated"
    assert classify(100, 150, had_mrr_before=True) == "expansion"
    assert classify(100, 50, had_mrr_before=True) == "contraction"
    assert classify(100, 0, had_mrr_before=True) == "churned"
    # Two subscriptions of one customer: the second one is expansion, not new.
    changes = customer_changes([state(T0, "sub_1"), state(T0 + timedelta(days=1), "sub_2", seq=1)])
    assert [c.kind for c in changes] == ["new", "expansion"]


_events = st.lists(
    st.tuples(
        st.integers(0, 120),  # day
        st.sampled_from(["sub_1", "sub_2", "sub_3"]),
        st.sampled_from(["active", "past_due", "trialing", "paused", "canceled"]),
        st.integers(1, 5),
        st.sampled_from(["month", "year", "week"]),
    ),
    max_size=30,
)


@given(_events)
def test_movements_always_add_up_to_the_change_of_mrr(events: list[tuple[int, str, str, int, str]]) -> None:
    owners = {"sub_1": "cus_a", "sub_2": "cus_a", "sub_3": "cus_b"}
    states = [
        state(
            T0 + timedelta(days=day),
            sub,
            customer=owners[sub],
            status=status,
            quantity=quantity,
            interval=interval,
            seq=i,
        )
        for i, (day, sub, status, quantity, interval) in enumerate(events)
    ]
    changes = customer_changes(states)
    months = [(T0 + timedelta(days=30 * k), T0 + timedelta(days=30 * (k + 1))) for k in range(5)]
    previous_end = 0
    for figures in monthly_figures(changes, "USD", months):
        assert figures.start_mrr == previous_end
        assert figures.end_mrr == (
            figures.start_mrr
            + figures.new
            + figures.expansion
            + figures.reactivated
            - figures.contraction
            - figures.churned
        )
        assert (
            min(figures.new, figures.expansion, figures.contraction, figures.churned, figures.reactivated)
            >= 0
        )
        previous_end = figures.end_mrr


def test_ratios_round_half_up_to_four_places() -> None:
    assert ratio(1, 3) == "0.3333"
    assert ratio(2, 3) == "0.6667"
    assert ratio(-25, 85) == "-0.2941"
    assert ratio(5, 5) == "1.0000"
    assert ratio(1, 0) is None


@pytest.mark.parametrize(
    ("days", "bucket"),
    [
        (-20, "current"),
        (0, "current"),
        (1, "1_30"),
        (30, "1_30"),
        (31, "31_60"),
        (60, "31_60"),
        (61, "61_90"),
        (90, "61_90"),
        (91, "90_plus"),
        (4000, "90_plus"),
    ],
)
def test_ageing_buckets(days: int, bucket: str) -> None:
    assert aging_bucket(days) == bucket


@given(st.integers(-(10**9), 10**9), st.integers(-(10**9), 10**9))
def test_chart_ticks_cover_the_values_and_zero(a: int, b: int) -> None:
    low, high = min(a, b), max(a, b)
    ticks = nice_ticks(low, high)
    assert ticks[0] <= min(low, 0) and ticks[-1] >= max(high, 0)
    steps = {later - earlier for earlier, later in pairwise(ticks)}
    assert len(steps) <= 1 and len(ticks) <= 12


def test_charts_escape_their_labels() -> None:
    line = line_chart("MRR <script>", ["2027-01"], [Series("a&b", [100])], str)
    bars = bar_chart("t", ["<x>"], [Series("s", [-5])], str)
    assert "<script>" not in line and "&lt;script&gt;" in line and "a&amp;b" in line
    assert "&lt;x&gt;" in bars and line.startswith("<svg")


@pytest.mark.parametrize(
    ("typed", "currency", "minor"),
    [
        ("12.50", "USD", 1250),
        ("1,250", "USD", 125000),
        ("1250", "JPY", 1250),
        ("0.125", "KWD", 125),
        ("", "USD", None),
        ("7", None, 700),
    ],
)
def test_typed_amounts(typed: str, currency: str | None, minor: int | None) -> None:
    assert parse_major(typed, currency) == minor


@pytest.mark.parametrize("typed", ["12.345", "1.5", "abc", "NaN", "Infinity"])
def test_typed_amounts_refused(typed: str) -> None:
    currency = "JPY" if typed == "1.5" else "USD"
    with pytest.raises(ValueError, match=re.escape(typed)):
        parse_major(typed, currency)


def test_accept_language() -> None:
    assert from_accept_language("zh-CN,zh;q=0.9,en;q=0.8") == "zh-CN"
    assert from_accept_language("en-GB,zh;q=0.5") == "en"
    assert from_accept_language("fr-FR,zh-TW;q=0.4") == "zh-CN"
    assert from_accept_language("fr, de") is None
    assert pick_locale("en", "zh-CN") == "en"
    assert pick_locale(None, "de, zh;q=0.1") == "zh-CN"
    assert pick_locale(None, None) == "en"


@given(
    st.integers(1, 50),
    st.lists(st.tuples(st.integers(1, 100_000), st.integers(1, 50)), max_size=4),
    st.sampled_from(["month", "year", "week"]),
)
def test_an_add_on_adds_its_fee_to_the_subscriptions_mrr_as_a_subscription_of_its_own_would(
    quantity: int, addons: list[tuple[int, int]], interval: str
) -> None:
    # Without a coupon, the MRR is every item's fee (unit price × quantity) added up and normalised to a month,
    # rounded once: within half a minor unit of the exact figure.
    base = SubscriptionState(
        at=T0,
        seq=0,
        subscription="sub_1",
        customer="cus_1",
        status="active",
        quantity=quantity,
        current_period_start=T0,
        currency="USD",
        unit_amount=Decimal(1000),
        interval=interval,
        interval_count=1,
        addons=tuple((Decimal(unit), qty) for unit, qty in addons),
    )
    [(_, together)] = subscription_values([base])
    fees = 1000 * quantity + sum(unit * qty for unit, qty in addons)
    factor = monthly_factor(interval, 1)
    assert abs(together - Fraction(fees) * factor) <= Fraction(1, 2)


def test_a_coupon_discounts_the_plan_and_its_add_ons_together() -> None:
    # 1 × 30.00 + 3 × 10.00 = 60.00 a month, 25 % off: 45.00 (the invoice's discount on the sum of its lines).
    quarter = Coupon(duration=CouponDuration.FOREVER, percent_off=Decimal(25))
    with_addons = SubscriptionState(
        at=T0,
        seq=0,
        subscription="sub_1",
        customer="cus_1",
        status="active",
        quantity=1,
        current_period_start=T0,
        currency="USD",
        unit_amount=Decimal(3000),
        interval="month",
        interval_count=1,
        coupon_id="cpn_1",
        coupon=quarter,
        addons=((Decimal(1000), 3),),
    )
    assert [value for _, value in subscription_values([with_addons])] == [4500]
