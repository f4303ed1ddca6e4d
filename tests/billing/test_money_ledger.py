"""The money ledger property (issue 19 item 2): whatever a merchant does to a subscription, no stretch of time is
billed more than once.

Hypothesis draws sequences of operations (change plan or quantity now with each proration_behavior or at the
period end, pause, resume with either anchor and each proration behaviour, cancel now or at the period end,
with or without a prorated credit, and advances of the test clock by up to 45 days) and drives them through the
HTTP API on a test clock, the worker running each advance. Then every invoice line that bills time (fees and
prorations, each with its period) is spread evenly over its period, and at every instant the sum of what the
lines bill per second must not exceed one period's price per second: the fee (plan amount × quantity) of a
plan the subscription was on around then, over the shortest period billed in full (27 days: February, less a
partial first day), plus half a minor unit of rounding per line. Billing a stretch twice at one price (a second
fee on paid time, a charge without its credit) doubles the rate there (at least 2/31 of the fee a day, against
1/27) and breaks the bound, wherever no price 1.7 times higher was in force around that instant: everywhere but
near a change of quantity, as the plans' prices are within that factor of each other.

A sequence is a list of drawn operations (not a RuleBasedStateMachine): the rules would have to await the
HTTP API on the test session's event loop, which hypothesis's stateful runner cannot do; lists shrink as well.
In CI the seed is fixed by tests/conftest.py's "ci" profile."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from itertools import pairwise
from typing import Any

import httpx
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from billing.services import Services
from tests.billing.world import Billing, at

START = datetime(2027, 1, 15, 10, tzinfo=UTC)
FOREVER = datetime.max.replace(tzinfo=UTC)
# Monthly prices within a factor 1.7 of each other (3000 × 1 .. 4000 × 1; quantities double them, so a quantity
# change is checked against both fees).
PRICES = {"basic": 3000, "pro": 4000}
# The shortest period billed as a whole month: February (28 days), less the part of its first day before the
# instant a subscription or a new cycle starts (the calendar starts at that day's midnight; the first period is
# billed in full, docs/billing.md "Periods").
SHORTEST_PERIOD = timedelta(days=27)
# How long a price stays billable after the subscription left it: the rest of a period paid in advance at it.
PAID_AHEAD = timedelta(days=62)
BEHAVIOURS = ("create_prorations", "always_invoice", "none")

OPERATIONS = st.one_of(
    # Short steps (inside a period) as often as long ones (past its end).
    st.tuples(st.just("advance"), st.one_of(st.integers(1, 72), st.integers(73, 45 * 24))),
    st.tuples(
        st.just("change"),
        st.sampled_from(sorted(PRICES)),
        st.integers(1, 2),
        st.sampled_from(BEHAVIOURS),
        st.sampled_from(("now", "period_end")),
    ),
    st.tuples(st.just("pause")),
    st.tuples(st.just("resume"), st.sampled_from(("unchanged", "now")), st.sampled_from(BEHAVIOURS)),
    st.tuples(st.just("cancel"), st.sampled_from(("now", "now_prorated", "period_end"))),
)


@dataclass
class Price:
    """A fee (plan amount × quantity per period) the subscription may be billed at during [start, end)."""

    fee: int
    start: datetime
    end: datetime = FOREVER


@dataclass
class Ledger:
    """What the test knows independently of the engine: the clock's time and the prices the subscription was on."""

    now: datetime
    prices: list[Price] = field(default_factory=list)

    def move_to(self, fee: int, since: datetime) -> None:
        """From `since` the subscription is on `fee`; what it was on stays billable for the period paid ahead."""
        for price in self.prices:
            if price.end > since + PAID_AHEAD:
                price.end = since + PAID_AHEAD
        self.prices.append(Price(fee, since))

    def highest_fee(self, start: datetime, end: datetime) -> int:
        return max((p.fee for p in self.prices if p.start < end and start < p.end), default=0)


class LedgerWorld(Billing):
    plans: dict[str, str]

    async def call(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """POST an operation; None when the engine refuses it in the subscription's state (400/409, a clear error),
        which is allowed: the sequence is random. Anything else is a failure."""
        response = await self.api.post(path, json=body)
        if response.status_code in (400, 409):
            error = response.json()["error"]
            assert error["type"] in ("invalid_request_error", "conflict") and error["message"], response.text
            return None
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data


_PLANS: dict[str, dict[str, str]] = {}


async def plans_of(world: LedgerWorld, merchant_key: str) -> dict[str, str]:
    """The two monthly plans, created once per merchant (hypothesis runs every example on the test's merchant)."""
    if merchant_key not in _PLANS:
        _PLANS[merchant_key] = {name: await world.plan(amount, name=name) for name, amount in PRICES.items()}
    return _PLANS[merchant_key]


async def apply(world: LedgerWorld, ledger: Ledger, sub: str, operation: tuple[Any, ...]) -> None:
    kind = operation[0]
    if kind == "advance":
        ledger.now += timedelta(hours=operation[1])
        await world.advance(ledger.now)
        return
    path = f"/v1/subscriptions/{sub}"
    if kind == "change":
        _, plan, quantity, behaviour, effective = operation
        done = await world.call(
            f"{path}/change",
            {
                "plan": world.plans[plan],
                "quantity": quantity,
                "proration_behavior": behaviour,
                "effective": effective,
            },
        )
        if done is not None:
            ledger.move_to(PRICES[plan] * quantity, ledger.now)
    elif kind == "pause":
        await world.call(f"{path}/pause", {})
    elif kind == "resume":
        _, anchor, behaviour = operation
        await world.call(f"{path}/resume", {"billing_cycle_anchor": anchor, "proration_behavior": behaviour})
    elif kind == "cancel":
        how = operation[1]
        body = {"at_period_end": True} if how == "period_end" else {"prorate": how == "now_prorated"}
        await world.call(f"{path}/cancel", body)


def check_never_billed_twice(ledger: Ledger, invoices: list[dict[str, Any]]) -> None:
    lines = [
        (line, at(line["period"]["start"]), at(line["period"]["end"]))
        for invoice in invoices
        if invoice["status"] in ("open", "paid", "uncollectible")
        for line in invoice["lines"]
        if line["type"] in ("subscription", "proration") and line["period"]["end"] > line["period"]["start"]
    ]
    instants = sorted({moment for _, start, end in lines for moment in (start, end)})
    for start, end in pairwise(instants):
        seconds = Fraction(int((end - start).total_seconds()))
        billed = Fraction(0)
        rounding = Fraction(0)
        for line, line_start, line_end in lines:
            if line_start <= start and end <= line_end:
                share = seconds / Fraction(int((line_end - line_start).total_seconds()))
                billed += line["amount"] * share
                rounding += Fraction(1, 2) * share
        bound = ledger.highest_fee(start, end) * seconds / Fraction(int(SHORTEST_PERIOD.total_seconds()))
        assert billed <= bound + rounding, (
            f"{start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} billed {float(billed):.2f}, more than one period's "
            f"price for it ({float(bound):.2f}): {[(i['billing_reason'], i['lines']) for i in invoices]}"
        )


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(trial_days=st.sampled_from((0, 0, 7)), operations=st.lists(OPERATIONS, min_size=1, max_size=6))
# The interactions issue 12 found, always tried: resumes inside a paid period (each anchor), in a trial, after a
# paid period, and after an upgrade.
@example(
    trial_days=0, operations=[("pause",), ("advance", 120), ("resume", "unchanged", "create_prorations")]
)
@example(trial_days=0, operations=[("pause",), ("advance", 120), ("resume", "now", "create_prorations")])
@example(trial_days=7, operations=[("pause",), ("advance", 48), ("resume", "unchanged", "none")])
@example(
    trial_days=0,
    operations=[
        ("advance", 240),
        ("change", "pro", 1, "create_prorations", "now"),
        ("pause",),
        ("advance", 960),
        ("resume", "unchanged", "create_prorations"),
    ],
)
async def test_no_stretch_of_time_is_ever_billed_twice(
    api: httpx.AsyncClient, services: Services, trial_days: int, operations: list[tuple[Any, ...]]
) -> None:
    world = LedgerWorld(api, services)
    await world.start(START)
    world.plans = await plans_of(world, str(api.headers["authorization"]))
    sub = await world.subscribe(
        await world.customer(),
        world.plans["basic"],
        **({"trial_period_days": trial_days} if trial_days else {}),
        days_until_due=30,
    )
    ledger = Ledger(now=START, prices=[Price(PRICES["basic"], START)])
    for operation in operations:
        await apply(world, ledger, sub["id"], operation)
    # One more period, so that changes made last reach an invoice.
    ledger.now += timedelta(days=32)
    await world.advance(ledger.now)
    check_never_billed_twice(ledger, await world.invoices(sub["id"]))
