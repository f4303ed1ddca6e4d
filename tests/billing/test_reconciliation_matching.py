"""The pure matcher (billing.reconciliation.matching): a worked day, then properties over any listing."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from billing.gateways.base import SettlementRow
from billing.reconciliation.matching import BUCKETS, EngineTransaction, reconcile

AT = datetime(2027, 3, 1, 12, tzinfo=UTC)


def row(
    kind: str, key: str, reference: str, amount: int, fee: int = 0, currency: str = "USD"
) -> SettlementRow:
    return SettlementRow(kind, key, reference, amount, currency, fee, AT)  # type: ignore[arg-type]


def test_a_day_with_each_kind_of_difference() -> None:
    settlement = [
        row("charge", "pay_a", "ch_a", 1999, fee=88),
        row("charge", "pay_b", "ch_b", 5000, fee=175),  # the engine says 4999
        row("charge", "pay_x", "ch_x", 700, fee=50),  # the engine never made it
        row("refund", "re_a", "rf_a", 500),
        row("charge", "unknown-key", "ch_c", 300, fee=39),  # found by its reference
    ]
    engine = [
        EngineTransaction("charge", "pay_a", "ch_a", 1999, "USD"),
        EngineTransaction("charge", "pay_b", "ch_b", 4999, "USD"),
        EngineTransaction("charge", "pay_c", "ch_c", 300, "USD"),
        EngineTransaction("charge", "pay_m", "ch_m", 1200, "USD"),  # not in the listing
        EngineTransaction("refund", "re_a", "rf_a", 500, "USD"),
    ]
    result = reconcile(settlement, engine)
    assert [(r.bucket, r.id) for r in result.rows] == [
        ("matched", "pay_a"),
        ("amount_mismatch", "pay_b"),
        ("missing_in_engine", "pay_x"),
        ("matched", "re_a"),
        ("matched", "pay_c"),
        ("missing_in_settlement", "pay_m"),
    ]
    mismatch = result.rows[1]
    assert (mismatch.settlement_amount, mismatch.engine_amount) == (5000, 4999)
    [usd] = result.totals
    # charges 1999+5000+700+300 = 7999, refunds 500, fees 88+175+50+39 = 352, net 7999-500-352 = 7147
    assert (usd.charges, usd.refunds, usd.fees, usd.net) == (7999, 500, 352, 7147)


def test_a_duplicated_row_matches_once_and_the_copy_is_missing_in_engine() -> None:
    result = reconcile(
        [row("charge", "pay_a", "ch_a", 100), row("charge", "pay_a", "ch_a", 100)],
        [EngineTransaction("charge", "pay_a", "ch_a", 100, "USD")],
    )
    assert [r.bucket for r in result.rows] == ["matched", "missing_in_engine"]


keys = st.sampled_from(["k1", "k2", "k3", "k4"])
settlement_rows = st.lists(
    st.builds(
        row,
        kind=st.sampled_from(["charge", "refund"]),
        key=keys,
        reference=keys,
        amount=st.integers(1, 1000),
        fee=st.integers(0, 50),
        currency=st.sampled_from(["USD", "CNY"]),
    ),
    max_size=8,
)
engine_rows = st.lists(
    st.builds(
        EngineTransaction,
        kind=st.sampled_from(["charge", "refund"]),
        id=keys,
        reference=st.none() | keys,
        amount=st.integers(1, 1000),
        currency=st.sampled_from(["USD", "CNY"]),
        in_day=st.booleans(),
    ),
    max_size=8,
    unique_by=lambda t: (t.kind, t.id),
)


@given(settlement_rows, engine_rows)
def test_every_row_lands_in_exactly_one_bucket(
    settlement: list[SettlementRow], engine: list[EngineTransaction]
) -> None:
    result = reconcile(settlement, engine)
    from_listing = [r for r in result.rows if r.bucket != "missing_in_settlement"]
    assert len(from_listing) == len(settlement)
    assert all(r.bucket in BUCKETS for r in result.rows)
    assert sum(result.count(b) for b in BUCKETS) == len(result.rows)
    # Each engine transaction is matched (or mismatched) at most once, and reported missing only if unmatched.
    claimed = [(r.kind, r.id) for r in result.rows if r.bucket in ("matched", "amount_mismatch")]
    assert len(claimed) == len(set(claimed))
    missing = {(r.kind, r.id) for r in result.rows if r.bucket == "missing_in_settlement"}
    assert missing == {(t.kind, t.id) for t in engine if t.in_day} - set(claimed)
    for total in result.totals:
        assert total.net == total.charges - total.refunds - total.fees
