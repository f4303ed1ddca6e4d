"""Risky interactions through the HTTP API on test clocks (issue 19 item 1): changes at the first instant, the
middle and the last second of a paid period; voiding an invoice in dunning; a stub period up to an explicit
`billing_cycle_anchor`; every filter of `GET /v1/subscriptions`.

Every expected amount is written out by hand from the dates (docs/billing.md "Proration"): April 2027 has 30
days, 2,592,000 seconds; a credit or charge is `amount × remaining / period`, rounded half-up once. Nothing is
read back from the invoice under test to compute what it should hold."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from billing.clock import utc_now
from billing.gateways.sandbox import HANG_CARD
from billing.payments.janitor import run_janitor
from billing.services import Services
from billing.settings.service import SANDBOX_CONNECTION
from tests.billing.payment_helpers import (
    charges_with_key,
    configure_gateways,
    sandbox_admin,
    set_mode,
    standalone_sandbox,
)
from tests.billing.test_dunning import SOFT, World
from tests.billing.test_dunning import at as after_renewal
from tests.billing.test_resume import figures
from tests.billing.world import Billing

APRIL1 = datetime(2027, 4, 1, tzinfo=UTC)
MAY1 = datetime(2027, 5, 1, tzinfo=UTC)

# (name, instant of the change, expected credit for the unused 30.00 of April, expected 60.00-plan charge)
# start: nothing of April is used, so the whole 30.00 comes back and the whole 60.00 is charged;
# middle: Apr 11 12:00 leaves 19.5 of 30 days = 0.65: −19.50 and +39.00;
# last second: 1 s of 2,592,000 remains: 30.00 × 1/2,592,000 = 0.001 cent and 60.00 × … = 0.002 cent, both
# round to 0, so nothing is moved.
POINTS = [
    ("start", APRIL1, -3000, 6000),
    ("middle", datetime(2027, 4, 11, 12, tzinfo=UTC), -1950, 3900),
    ("last_second", MAY1 - timedelta(seconds=1), 0, 0),
]


async def subscribed_until(world: Billing, plan: str, when: datetime) -> str:
    """A subscription to `plan` from April 1 on `world`'s clock, the clock then moved to `when`."""
    sub = str((await world.subscribe(await world.customer(), plan))["id"])
    if when > APRIL1:
        await world.advance(when)
    return sub


def amounts(invoice: dict[str, Any]) -> list[tuple[str, int]]:
    return [(line["type"], line["amount"]) for line in invoice["lines"]]


@pytest.mark.parametrize(("point", "when", "credit", "charge"), POINTS, ids=[p[0] for p in POINTS])
async def test_a_plan_change_made_now_is_prorated_by_the_second_at_any_point_of_the_period(
    api: httpx.AsyncClient, services: Services, point: str, when: datetime, credit: int, charge: int
) -> None:
    world = Billing(api, services)
    await world.start(APRIL1)
    basic, pro = await world.plan(3000, name="Basic"), await world.plan(6000, name="Pro")
    sub = await subscribed_until(world, basic, when)
    await world.post(f"/v1/subscriptions/{sub}/change", {"plan": pro})
    upcoming = await world.get(f"/v1/subscriptions/{sub}/upcoming_invoice")
    # The renewal on May 1 bills May on Pro (60.00) plus the two pending prorations.
    expected = [("subscription", 6000)] + [("proration", a) for a in (credit, charge) if a]
    assert [(line["type"], line["amount"]) for line in upcoming["lines"]] == expected
    await world.advance(MAY1 + timedelta(hours=1))
    [first, renewal] = await world.invoices(sub)
    assert first["total"] == 3000
    assert amounts(renewal) == expected
    assert renewal["total"] == 6000 + credit + charge


@pytest.mark.parametrize(("point", "when", "credit", "charge"), POINTS, ids=[p[0] for p in POINTS])
async def test_a_quantity_change_invoiced_at_once_bills_the_extra_seats_for_the_time_left(
    api: httpx.AsyncClient, services: Services, point: str, when: datetime, credit: int, charge: int
) -> None:
    """From one seat to two of a 30.00 plan: the 60.00 of two seats stands for the new plan of POINTS."""
    world = Billing(api, services)
    await world.start(APRIL1)
    sub = await subscribed_until(world, await world.plan(3000), when)
    await world.post(
        f"/v1/subscriptions/{sub}/change", {"quantity": 2, "proration_behavior": "always_invoice"}
    )
    invoices = await world.invoices(sub)
    if credit or charge:
        [_, update] = invoices
        assert update["billing_reason"] == "subscription_update"
        assert [line["amount"] for line in update["lines"]] == [credit, charge]
        assert update["total"] == credit + charge
    else:
        # Nothing left to prorate in the last second: no invoice of zero is made.
        assert len(invoices) == 1
    await world.advance(MAY1 + timedelta(hours=1))
    assert (await world.invoices(sub))[-1]["total"] == 2 * 3000


@pytest.mark.parametrize(
    ("when", "credit", "renewal"),
    [
        (APRIL1, -3000, "2028-04-01T00:00:00Z"),
        (datetime(2027, 4, 11, 12, tzinfo=UTC), -1950, "2028-04-11T00:00:00Z"),
        (MAY1 - timedelta(seconds=1), 0, "2028-04-30T00:00:00Z"),
    ],
    ids=["start", "middle", "last_second"],
)
async def test_an_interval_change_now_restarts_the_cycle_at_any_point_with_the_unused_time_credited(
    api: httpx.AsyncClient, services: Services, when: datetime, credit: int, renewal: str
) -> None:
    """The new cycle is anchored on the local midnight of the change day (docs/billing.md: the cycle restarts
    on the day of the change), so its first year runs from the change instant to that day's next-year midnight
    and is billed in full, like any first period."""
    world = Billing(api, services)
    await world.start(APRIL1)
    monthly, yearly = await world.plan(3000), await world.plan(30000, interval="year")
    sub = await subscribed_until(world, monthly, when)
    changed = await world.post(f"/v1/subscriptions/{sub}/change", {"plan": yearly})
    [_, change_invoice] = await world.invoices(sub)
    expected = ([("proration", credit)] if credit else []) + [("subscription", 30000)]
    assert amounts(change_invoice) == expected
    assert change_invoice["total"] == 30000 + credit
    # The monthly May 1 renewal is gone.
    assert (changed["current_period_start"], changed["current_period_end"]) == (
        when.isoformat().replace("+00:00", "Z"),
        renewal,
    )
    await world.advance(MAY1 + timedelta(days=1))
    assert len(await world.invoices(sub)) == 2


async def test_voiding_an_invoice_in_dunning_closes_its_case_and_stops_the_retries(
    api: httpx.AsyncClient, services: Services
) -> None:
    await configure_gateways(api, dict(SANDBOX_CONNECTION))
    world = World(api, services)
    await world.start(card=SOFT)
    await world.advance(after_renewal(0, 1))
    invoice = await world.renewal()
    case = await world.case(invoice["id"])
    assert (case["state"], case["attempts"]) == ("retrying", 1)
    voided = await world.call("POST", f"/v1/invoices/{invoice['id']}/void")
    assert voided["status"] == "void"
    case = await world.case(invoice["id"])
    assert (case["state"], case["next_attempt_at"]) == ("voided", None)
    # Days 1, 3, 5 and 7 of the schedule pass: no retry, no final action (the subscription is not canceled).
    await world.advance(after_renewal(8))
    assert [p["status"] for p in await world.payments(invoice["id"])] == ["failed"]
    assert (await world.case(invoice["id"]))["state"] == "voided"
    assert (await world.subscription())["status"] != "canceled"


@pytest.fixture(scope="module")
def hanging_sandbox() -> Iterator[str]:
    """A standalone sandbox whose HANG_CARD charges are recorded, then answered only after 1.5 s."""
    with standalone_sandbox() as url:
        yield url


async def test_a_success_the_gateway_reports_after_the_engine_lost_the_answer_recovers_the_case_once(
    api: httpx.AsyncClient, services: Services, hanging_sandbox: str
) -> None:
    """The renewal is declined (a failure recorded, a dunning case opened); the recovery charge on the new card
    is taken by the gateway but its answer never reaches the engine (400 ms timeout, the answer comes after
    1.5 s), so the engine records it pending. The janitor later asks the gateway, which reports success: the
    invoice ends paid at the collection task's next look, the case recovered, and the planned retries charge
    nothing more. About 3–7 s: a standalone sandbox process, and a week of the retry schedule run to show that
    nothing more is charged."""
    await sandbox_admin(hanging_sandbox, "/admin/reset", {})
    await set_mode(hanging_sandbox, "normal", hang_ms=1500)
    await configure_gateways(
        api, {"id": "main", "type": "sandbox", "url": hanging_sandbox, "timeout_ms": 400}
    )
    world = World(api, services)
    await world.start(card=SOFT)
    await world.advance(after_renewal(0, 1))
    invoice = await world.renewal()
    assert (await world.case(invoice["id"]))["state"] == "retrying"
    await world.attach(HANG_CARD)
    await world.advance(after_renewal(0, 2))
    [declined, unknown] = await world.payments(invoice["id"])
    assert (declined["status"], unknown["status"]) == ("failed", "pending")
    assert (await world.call("GET", f"/v1/invoices/{invoice['id']}"))["status"] == "open"

    await run_janitor(services, now=utc_now() + timedelta(hours=2))
    assert (await world.call("GET", f"/v1/payments/{unknown['id']}"))["status"] == "succeeded"
    # The invoice's collection task looks at its pending payment again every minute (docs/dunning.md
    # "Technical errors"): its next look finds the success and pays the invoice, charging nothing.
    await world.advance(after_renewal(0, 3))
    paid = await world.call("GET", f"/v1/invoices/{invoice['id']}")
    assert (paid["status"], paid["amount_paid"]) == ("paid", 2500)
    case = await world.case(invoice["id"])
    assert (case["state"], case["recovered_amount"]) == ("recovered", 2500)
    assert (await world.subscription())["status"] == "active"
    # Days 1 to 7 of the schedule pass: nothing more is charged for this invoice.
    await world.advance(after_renewal(8))
    assert [p["status"] for p in await world.payments(invoice["id"])] == ["failed", "succeeded"]
    assert [c["status"] for c in await charges_with_key(hanging_sandbox, unknown["id"])] == ["succeeded"]
    state = await sandbox_admin(hanging_sandbox, "/admin/state")
    # The processor's whole ledger: the first invoice (good card, at the start), the declined renewal, and the
    # one recovery charge.
    assert sorted((c["status"], c["amount"]) for c in state["charges"]) == [
        ("declined", 2500),
        ("succeeded", 2500),
        ("succeeded", 2500),
    ]


async def test_an_explicit_billing_cycle_anchor_bills_a_stub_for_exactly_its_fraction_of_a_period(
    api: httpx.AsyncClient, services: Services
) -> None:
    """docs/billing.md "Periods": a future anchor makes the first period a stub up to the anchor, charged for
    exactly the fraction of the period it covers. Started Apr 1 00:00 with the anchor Apr 21: 20 days of the
    30-day period that ends on the anchor (Mar 21 – Apr 21 is 31 days, so the fraction is 20/31 of 31.00 =
    20.00); then full periods from the anchor."""
    world = Billing(api, services)
    await world.start(APRIL1)
    anchor = datetime(2027, 4, 21, tzinfo=UTC)
    sub = await world.subscribe(
        await world.customer(), await world.plan(3100), billing_cycle_anchor=anchor.isoformat()
    )
    assert (sub["current_period_start"], sub["current_period_end"]) == (
        "2027-04-01T00:00:00Z",
        "2027-04-21T00:00:00Z",
    )
    await world.advance(datetime(2027, 5, 21, 1, tzinfo=UTC))
    invoices = await world.invoices(sub["id"])
    assert figures(invoices) == [
        ("2027-04-01", "2027-04-21", 2000),
        ("2027-04-21", "2027-05-21", 3100),
        ("2027-05-21", "2027-06-21", 3100),
    ]


async def test_listing_subscriptions_each_filter_excludes_what_it_should(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    await world.start(APRIL1)
    basic, pro = await world.plan(3000), await world.plan(6000)
    alice, bob = await world.customer(), await world.customer()
    alice_basic = (await world.subscribe(alice, basic))["id"]
    alice_pro = (await world.subscribe(alice, pro))["id"]
    bob_basic = (await world.subscribe(bob, basic))["id"]
    await world.post(f"/v1/subscriptions/{alice_pro}/cancel")

    async def listed(**filters: str) -> set[str]:
        return {s["id"] for s in (await world.get("/v1/subscriptions", limit=100, **filters))["data"]}

    everything = await listed()
    assert {alice_basic, alice_pro, bob_basic} <= everything
    assert await listed(customer=alice) == {alice_basic, alice_pro}
    assert await listed(plan=basic) == {alice_basic, bob_basic}
    assert await listed(customer=alice, status="active") == {alice_basic}
    assert await listed(customer=alice, status="canceled") == {alice_pro}
    assert await listed(customer=bob, plan=pro) == set()
    # Pagination: one at a time, newest first, never the same one twice.
    first = await world.get("/v1/subscriptions", customer=alice, limit=1)
    assert ([s["id"] for s in first["data"]], first["has_more"]) == ([alice_pro], True)
    second = await world.get("/v1/subscriptions", customer=alice, limit=1, starting_after=alice_pro)
    assert ([s["id"] for s in second["data"]], second["has_more"]) == ([alice_basic], False)
    unknown = await api.get("/v1/subscriptions", params={"costumer": alice})
    assert unknown.status_code == 400
