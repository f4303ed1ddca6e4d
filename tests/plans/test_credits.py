"""Burning prepaid credits: soonest expiry first, never more than asked or than the live credit, never from
credits past their expiry; the balance in credits; crossing a threshold."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plans.credits import (
    CreditLot,
    burn_order,
    credits_of,
    crossed_below,
    live,
    next_expiry,
    parse_rate_amount,
    plan_burn,
    prepaid_credit_applied,
)
from plans.errors import CatalogError

AT = datetime(2027, 3, 1, tzinfo=UTC)


@st.composite
def lots(draw: st.DrawFn) -> list[CreditLot]:
    count = draw(st.integers(0, 6))
    return [
        CreditLot(
            id=f"wtx_{index}",
            remaining=draw(st.integers(0, 10_000)),
            expires_at=draw(st.none() | st.integers(-5, 5).map(lambda days: AT + timedelta(days=days))),
            seq=index,
        )
        for index in range(count)
    ]


@given(lots(), st.integers(0, 50_000))
def test_a_burn_takes_what_is_asked_up_to_the_live_credit_and_no_lot_beyond_what_it_holds(
    credit: list[CreditLot], wanted: int
) -> None:
    drawn = plan_burn(credit, wanted, AT)
    available = sum(lot.remaining for lot in credit if live(lot, AT))
    assert sum(amount for _, amount in drawn) == min(wanted, available)
    by_id = {lot.id: lot for lot in credit}
    assert len({lot_id for lot_id, _ in drawn}) == len(drawn)
    for lot_id, amount in drawn:
        assert 0 < amount <= by_id[lot_id].remaining
        assert live(by_id[lot_id], AT)


@given(lots(), st.integers(0, 50_000))
def test_no_lot_is_touched_while_one_expiring_sooner_has_credit_left(
    credit: list[CreditLot], wanted: int
) -> None:
    drawn = dict(plan_burn(credit, wanted, AT))
    order = burn_order([lot for lot in credit if live(lot, AT)])
    for earlier, later in itertools.pairwise(order):
        if drawn.get(later.id):
            assert drawn.get(earlier.id) == earlier.remaining


@given(lots(), st.integers(-5_000, 50_000), st.integers(-6, 6))
def test_what_an_invoice_burns_is_its_amount_due_up_to_the_credit_still_live_when_it_is_finalized(
    credit: list[CreditLot], amount_due: int, days: int
) -> None:
    # The upcoming invoice asks for a later moment than finalization's "now": credits expired by then count for
    # nothing, whatever they hold today.
    at = AT + timedelta(days=days)
    applied = sum(amount for _, amount in prepaid_credit_applied(amount_due, credit, at))
    live_then = sum(lot.remaining for lot in credit if lot.expires_at is None or lot.expires_at > at)
    assert applied == max(0, min(amount_due, live_then))


def test_worked_example_granted_credits_that_expire_burn_before_bought_ones() -> None:
    # 5.00 granted expiring in 10 days, 8.00 bought never expiring, 3.00 granted expiring in 20 days, 1.00 expired.
    credit = [
        CreditLot("bought", 800, None, 1),
        CreditLot("soon", 500, AT + timedelta(days=10), 2),
        CreditLot("later", 300, AT + timedelta(days=20), 3),
        CreditLot("gone", 100, AT, 0),
    ]
    assert plan_burn(credit, 1000, AT) == [("soon", 500), ("later", 300), ("bought", 200)]
    assert plan_burn(credit, 5000, AT) == [("soon", 500), ("later", 300), ("bought", 800)]
    assert plan_burn(credit, 0, AT) == []
    with pytest.raises(ValueError, match="negative"):
        plan_burn(credit, -1, AT)


def test_the_balance_in_credits_is_rounded_down() -> None:
    assert credits_of(1000, Decimal(1), 2) == Decimal("10")
    assert credits_of(100, Decimal("0.5"), 2) == Decimal("2")
    assert credits_of(1, Decimal(3), 2) == Decimal("0.003333")
    assert credits_of(500, Decimal(1), 0) == Decimal("500")


@pytest.mark.parametrize("text", ["0", "-1", "abc", "NaN", "1e13", "0.0000000000001"])
def test_a_bad_rate_is_refused_with_its_parameter(text: str) -> None:
    with pytest.raises(CatalogError) as refused:
        parse_rate_amount(text)
    assert refused.value.param == "rate_amount"


def test_a_threshold_is_crossed_once_on_the_way_down() -> None:
    assert crossed_below(1000, 999, 1000)
    assert crossed_below(2000, 0, 500)
    assert not crossed_below(999, 500, 1000)  # already below: not a new crossing
    assert not crossed_below(3500, 1000, 1000)  # at the threshold is not below it
    assert not crossed_below(500, 800, 1000)


def test_the_next_expiry_is_the_soonest_live_one_with_all_that_expires_then() -> None:
    # 3.00 and 2.00 expire in 5 days, 4.00 in 9, 8.00 never; 1.00 expired yesterday and 6.00 are used up.
    credit = [
        CreditLot("a", 300, AT + timedelta(days=5), 1),
        CreditLot("b", 400, AT + timedelta(days=9), 2),
        CreditLot("c", 200, AT + timedelta(days=5), 3),
        CreditLot("d", 800, None, 4),
        CreditLot("e", 100, AT - timedelta(days=1), 5),
        CreditLot("f", 0, AT + timedelta(days=2), 6),
    ]
    assert next_expiry(credit, AT) == (AT + timedelta(days=5), 500)
    assert next_expiry(credit, AT + timedelta(days=6)) == (AT + timedelta(days=9), 400)
    assert next_expiry([CreditLot("d", 800, None, 4)], AT) is None
