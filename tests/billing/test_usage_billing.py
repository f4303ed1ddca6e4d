"""Usage billed in arrears through the HTTP API on test clocks (SPEC §4 meters and charges, §5; issue 6 part 2):
every aggregation under every pricing model on the renewal invoice, period edges, the grace window that keeps
the renewal invoice a draft, late usage billed once as an adjustment, usage up to a cancel, usage so far
(GET .../usage and the upcoming invoice), and the invoice invariants with a coupon and a tax.

Events are ingested through POST /v1/usage_events/batch, at the test clock's time. Subscriptions use
collection_method=send_invoice so that every figure is visible without a card."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import text

from billing.catalog.common import decimal_text
from billing.db.engine import transaction
from billing.services import Services
from billing.usage.aggregate import UsageWindow, aggregate_sql, aggregate_usage
from tests.billing.world import Billing, at

APRIL = datetime(2027, 4, 1, tzinfo=UTC)
MAY = datetime(2027, 5, 1, tzinfo=UTC)
JUNE = datetime(2027, 6, 1, tzinfo=UTC)
JULY = datetime(2027, 7, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


class Metered(Billing):
    """The test-clock world plus meters, metered plans and usage events."""

    async def meter(self, aggregation: str, property_: str | None = None) -> str:
        code = f"{aggregation}_{secrets.token_hex(3)}"
        body: dict[str, Any] = {"code": code, "name": code.replace("_", " "), "aggregation": aggregation}
        if property_ is not None:
            body["property"] = property_
        await self.post("/v1/meters", body)
        return code

    async def metered_plan(self, amount: int, *charges: dict[str, Any]) -> str:
        return await self.plan(amount, name="Metered", charges=list(charges))

    async def send(self, customer: str, meter: str, *events: tuple[Any, ...]) -> dict[str, Any]:
        """Ingest events given as (timestamp, value[, properties][, id])."""
        batch = []
        for event in events:
            timestamp, value, *rest = event
            properties = rest[0] if rest else {}
            event_id = rest[1] if len(rest) > 1 else "ev_" + secrets.token_hex(8)
            body: dict[str, Any] = {
                "id": event_id,
                "customer": customer,
                "meter": meter,
                "timestamp": timestamp.isoformat(),
                "properties": properties,
            }
            if value is not None:
                body["value"] = str(value)
            batch.append(body)
        answer = await self.post("/v1/usage_events/batch", {"events": batch})
        assert answer["errors"] == [], answer
        assert answer["accepted"] == len(events), answer
        return answer

    async def count(self, customer: str, meter: str, *timestamps: datetime) -> None:
        await self.send(customer, meter, *((t, None) for t in timestamps))


def qty(line: dict[str, Any]) -> str:
    """An invoice line's quantity as canonical text ('3', '12.5')."""
    return decimal_text(Decimal(line["quantity"]))


def lines_of(invoice: dict[str, Any], type_: str) -> list[dict[str, Any]]:
    return [line for line in invoice["lines"] if line["type"] == type_]


def by_meter(invoice: dict[str, Any], type_: str = "usage") -> dict[str, dict[str, Any]]:
    return {line["details"]["meter"]: line for line in lines_of(invoice, type_)}


def assert_invariants(invoice: dict[str, Any]) -> None:
    """SPEC §5, on a finalized invoice as the API shows it (no inclusive tax in these tests)."""
    assert invoice["subtotal"] - invoice["discount"] + invoice["tax"] == invoice["total"]
    assert invoice["amount_due"] == max(0, invoice["total"] + invoice["starting_balance"])
    assert invoice["amount_paid"] + invoice["amount_remaining"] == invoice["amount_due"]
    assert sum(line["amount"] for line in invoice["lines"]) == invoice["subtotal"]


async def start(api: httpx.AsyncClient, services: Services, at_: datetime = APRIL) -> Metered:
    world = Metered(api, services)
    await world.start(at_)
    return world


async def test_every_aggregation_under_every_pricing_model_bills_on_the_renewal_invoice(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = await start(api, services)
    calls, gb, seats = await world.meter("count"), await world.meter("sum"), await world.meter("max")
    storage, users = await world.meter("last"), await world.meter("unique_count", "user")
    idle = await world.meter("count")
    plan = await world.metered_plan(
        1000,
        {"meter": calls, "model": "per_unit", "unit_amount": 2, "free_units": 3},
        {
            "meter": gb,
            "model": "graduated",
            "tiers": [
                {"up_to": 10, "unit_amount": 100},
                {"up_to": None, "unit_amount": 50, "flat_amount": 200},
            ],
        },
        {
            "meter": seats,
            "model": "volume",
            "tiers": [{"up_to": 5, "unit_amount": 1000}, {"up_to": None, "unit_amount": 800}],
        },
        {"meter": storage, "model": "package", "package_size": 100, "unit_amount": 500},
        {"meter": users, "model": "per_unit", "unit_amount": 300, "free_units": 1},
        {"meter": idle, "model": "per_unit", "unit_amount": 7},
    )
    customer = await world.customer()
    sub = await world.subscribe(customer, plan)
    await world.advance(APRIL + timedelta(days=27))
    day = APRIL + timedelta(days=20)
    await world.count(customer, calls, *(day + timedelta(minutes=i) for i in range(10)))
    await world.send(customer, gb, (day, "4.25"), (day, "8.25"))  # 12.5 GB
    await world.send(customer, seats, (day, 3), (day + HOUR, 7), (day + 2 * HOUR, 4))
    # last: the latest *timestamp* wins, not the latest arrival; a tie on the timestamp goes to the greater id.
    latest = day + 5 * HOUR
    await world.send(customer, storage, (day, 250), (latest, 120, {}, "st-a"), (latest, 310, {}, "st-b"))
    await world.send(customer, storage, (day + HOUR, 900))
    await world.send(
        customer, users, *((day, None, {"user": name}) for name in ("ann", "bob", "cid", "ann", "bob"))
    )
    await world.advance(MAY + 2 * HOUR)

    first, renewal = await world.invoices(sub["id"])
    assert first["billing_reason"] == "subscription_create" and lines_of(first, "usage") == []
    assert renewal["status"] == "open"
    assert (at(renewal["period_start"]), at(renewal["period_end"])) == (MAY, JUNE)
    usage = by_meter(renewal)
    assert list(usage) == [calls, gb, seats, storage, users, idle]  # the plan's charge order
    for line in usage.values():
        assert (at(line["period"]["start"]), at(line["period"]["end"])) == (APRIL, MAY)
    figures = {meter: (qty(line), line["amount"]) for meter, line in usage.items()}
    assert figures == {
        calls: ("10", 14),  # (10 - 3 free) x 2
        gb: ("12.5", 1325),  # 10 x 100 + 2.5 x 50 + 200 flat
        seats: ("7", 5600),  # all 7 at the second volume tier's 800
        storage: ("310", 2000),  # ceil(310 / 100) = 4 packages x 500
        users: ("3", 600),  # ann, bob, cid; 1 free
        idle: ("0", 0),  # a charge without usage still shows its line
    }
    assert usage[gb]["details"]["tiers"] == [
        {
            "tier": 1,
            "from_units": 0,
            "to_units": 10,
            "quantity": "10",
            "unit_amount_decimal": "100",
            "flat_amount": 0,
            "amount_decimal": "1000",
        },
        {
            "tier": 2,
            "from_units": 10,
            "to_units": None,
            "quantity": "2.5",
            "unit_amount_decimal": "50",
            "flat_amount": 200,
            "amount_decimal": "325",
        },
    ]
    assert usage[storage]["details"]["packages"] == 4
    assert usage[calls]["details"]["billable_quantity"] == "7"
    assert (usage[seats]["details"]["model"], usage[seats]["details"]["aggregation"]) == ("volume", "max")
    assert renewal["total"] == 1000 + 14 + 1325 + 5600 + 2000 + 600
    assert_invariants(renewal)


async def test_the_last_instant_of_a_period_bills_in_it_and_the_next_instant_in_the_next(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = await start(api, services)
    calls = await world.meter("count")
    customer = await world.customer()
    sub = await world.subscribe(
        customer, await world.metered_plan(500, {"meter": calls, "model": "per_unit", "unit_amount": 10})
    )
    await world.advance(MAY - timedelta(minutes=2))
    last_instant = MAY - timedelta(microseconds=1)
    await world.count(customer, calls, APRIL, MAY - timedelta(seconds=1), last_instant, MAY)
    await world.advance(JUNE + 2 * HOUR)
    _, may, june = await world.invoices(sub["id"])
    assert qty(by_meter(may)[calls]) == "3"  # April 1 00:00, 23:59:59 and 23:59:59.999999
    assert qty(by_meter(june)[calls]) == "1"  # May 1 00:00:00
    assert (at(by_meter(june)[calls]["period"]["start"]), at(by_meter(june)[calls]["period"]["end"])) == (
        MAY,
        JUNE,
    )


async def test_a_late_event_within_the_grace_window_lands_on_the_draft_invoice_of_its_period(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = await start(api, services)
    assert (await world.get("/v1/settings"))["usage"] == {"grace_period_seconds": 3600}
    calls = await world.meter("count")
    customer = await world.customer()
    sub = await world.subscribe(
        customer, await world.metered_plan(500, {"meter": calls, "model": "per_unit", "unit_amount": 10})
    )
    await world.advance(APRIL + timedelta(days=29))
    await world.count(customer, calls, APRIL + timedelta(days=28), APRIL + timedelta(days=29))
    await world.advance(MAY + timedelta(minutes=30))
    [_, renewal] = await world.invoices(sub["id"])
    assert renewal["status"] == "draft"
    assert renewal["number"] is None
    assert qty(by_meter(renewal)[calls]) == "2"
    # 30 minutes after the period ended, an event of its last day arrives: still in time.
    await world.count(customer, calls, MAY - HOUR)
    await world.advance(MAY + HOUR - timedelta(seconds=1))
    assert (await world.invoices(sub["id"]))[1]["status"] == "draft"
    await world.advance(MAY + HOUR)
    [_, renewal] = await world.invoices(sub["id"])
    assert renewal["status"] == "open"
    assert renewal["finalized_at"] == (MAY + HOUR).isoformat().replace("+00:00", "Z")
    assert (qty(by_meter(renewal)[calls]), by_meter(renewal)[calls]["amount"]) == ("3", 30)
    assert renewal["total"] == 530
    assert lines_of(renewal, "adjustment") == []
    assert_invariants(renewal)
    events = await world.get("/v1/events", object_id=renewal["id"], limit=10)
    assert [e["type"] for e in reversed(events["data"])] == ["invoice.created", "invoice.finalized"]


async def test_a_late_event_after_the_grace_window_is_billed_once_as_an_adjustment_on_the_next_invoice(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = await start(api, services)
    calls = await world.meter("count")
    # Volume pricing: a third call moves every call of April to the cheaper tier, so a late call lowers the
    # price of the period; a fourth raises it again. Each adjustment is the whole period re-priced, minus what
    # was billed before.
    tiers = [{"up_to": 2, "unit_amount": 100}, {"up_to": None, "unit_amount": 50}]
    customer = await world.customer()
    sub = await world.subscribe(
        customer, await world.metered_plan(1000, {"meter": calls, "model": "volume", "tiers": tiers})
    )
    await world.advance(APRIL + timedelta(days=20))
    await world.count(customer, calls, APRIL + timedelta(days=1), APRIL + timedelta(days=2))
    await world.advance(MAY + 2 * HOUR)
    await world.count(customer, calls, APRIL + timedelta(days=3))  # after the grace window
    [_, may] = await world.invoices(sub["id"])
    assert (may["status"], by_meter(may)[calls]["amount"], may["total"]) == ("open", 200, 1200)

    await world.advance(JUNE + 2 * HOUR)
    [_, _, june] = await world.invoices(sub["id"])
    [adjustment] = lines_of(june, "adjustment")
    assert (qty(adjustment), adjustment["amount"]) == ("1", -50)  # 3 x 50 = 150, 200 billed before
    assert (at(adjustment["period"]["start"]), at(adjustment["period"]["end"])) == (APRIL, MAY)
    assert adjustment["details"]["reason"] == "late_usage"
    assert adjustment["details"]["previously_billed"] == {"quantity": "2", "amount": 200}
    assert (adjustment["details"]["quantity"], adjustment["details"]["amount_decimal"]) == ("3", "150")
    assert qty(by_meter(june)[calls]) == "0"  # May had no usage
    assert june["total"] == 1000 - 50
    assert_invariants(june)

    # Another late April event (33 days old, still accepted) is billed on the next invoice, once.
    await world.advance(JUNE + timedelta(days=2))
    await world.count(customer, calls, MAY - timedelta(hours=5))
    await world.advance(JULY + 2 * HOUR)
    [_, _, _, july] = await world.invoices(sub["id"])
    [adjustment] = lines_of(july, "adjustment")
    assert (qty(adjustment), adjustment["amount"]) == ("1", 50)  # 4 x 50 = 200, 150 billed before
    await world.advance(datetime(2027, 8, 1, 2, tzinfo=UTC))
    [*_, august] = await world.invoices(sub["id"])
    assert lines_of(august, "adjustment") == []
    # Everything April's invoices billed adds up to the price of its final usage: 4 calls at 50.
    billed = 0
    for invoice in await world.invoices(sub["id"]):
        billed += sum(
            line["amount"]
            for line in invoice["lines"]
            if line["type"] in ("usage", "adjustment") and at(line["period"]["start"]) == APRIL
        )
    assert billed == 200


async def test_last_and_unique_count_are_recounted_whole_when_late_events_arrive(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = await start(api, services)
    storage, users = await world.meter("last"), await world.meter("unique_count", "user")
    customer = await world.customer()
    sub = await world.subscribe(
        customer,
        await world.metered_plan(
            0,
            {"meter": storage, "model": "per_unit", "unit_amount": 10},
            {"meter": users, "model": "per_unit", "unit_amount": 100},
        ),
    )
    await world.advance(APRIL + timedelta(days=25))
    await world.send(customer, storage, (APRIL + timedelta(days=20), 40))
    await world.send(
        customer, users, *((APRIL + timedelta(days=d), None, {"user": u}) for d, u in ((1, "a"), (2, "b")))
    )
    await world.advance(MAY + 2 * HOUR)
    # Late: a later reading of storage (lower), a user already counted, and a new one.
    await world.send(customer, storage, (APRIL + timedelta(days=29), 15))
    await world.send(customer, users, (APRIL + timedelta(days=3), None, {"user": "a"}))
    await world.send(customer, users, (APRIL + timedelta(days=4), None, {"user": "c"}))
    await world.advance(JUNE + 2 * HOUR)
    _, may, june = await world.invoices(sub["id"])
    assert {m: (qty(line), line["amount"]) for m, line in by_meter(may).items()} == {
        storage: ("40", 400),
        users: ("2", 200),
    }
    adjustments = by_meter(june, "adjustment")
    assert {m: (qty(line), line["amount"]) for m, line in adjustments.items()} == {
        storage: ("-25", -250),  # last is now 15: 150, 400 billed
        users: ("1", 100),  # a, b, c: 300, 200 billed
    }
    assert june["total"] == -150  # a credit: it becomes customer balance at finalization
    assert_invariants(june)


async def test_cancelling_now_bills_usage_up_to_the_cancel_on_a_final_invoice(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = await start(api, services)
    calls = await world.meter("count")
    customer = await world.customer()
    sub = await world.subscribe(
        customer, await world.metered_plan(900, {"meter": calls, "model": "per_unit", "unit_amount": 25})
    )
    cancel_at = APRIL + timedelta(days=14)
    await world.advance(cancel_at)
    await world.count(customer, calls, APRIL + timedelta(days=3), APRIL + timedelta(days=13))
    canceled = await world.post(f"/v1/subscriptions/{sub['id']}/cancel", {})
    assert canceled["status"] == "canceled"
    [_, final] = await world.invoices(sub["id"])
    assert (final["billing_reason"], final["status"]) == ("subscription_cancel", "draft")
    # Within the grace window an event from before the cancel still counts; one after it never does.
    await world.advance(cancel_at + timedelta(minutes=20))
    await world.count(customer, calls, cancel_at - HOUR, cancel_at + timedelta(minutes=10))
    await world.advance(cancel_at + 2 * HOUR)
    [_, final] = await world.invoices(sub["id"])
    assert final["status"] == "open"
    assert lines_of(final, "subscription") == []
    [line] = lines_of(final, "usage")
    assert (qty(line), line["amount"]) == ("3", 75)
    assert (at(line["period"]["start"]), at(line["period"]["end"])) == (APRIL, cancel_at)
    assert final["total"] == 75
    await world.advance(JUNE)
    assert len(await world.invoices(sub["id"])) == 2


async def test_cancelling_at_period_end_bills_the_last_periods_usage(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = await start(api, services)
    calls = await world.meter("count")
    customer = await world.customer()
    sub = await world.subscribe(
        customer, await world.metered_plan(900, {"meter": calls, "model": "per_unit", "unit_amount": 25})
    )
    await world.post(f"/v1/subscriptions/{sub['id']}/cancel", {"at_period_end": True})
    await world.advance(MAY - timedelta(minutes=3))
    await world.count(customer, calls, APRIL + timedelta(days=2), MAY - timedelta(seconds=1))
    await world.advance(JUNE + 2 * HOUR)
    assert (await world.subscription(sub["id"]))["status"] == "canceled"
    [_, final] = await world.invoices(sub["id"])
    assert (final["billing_reason"], final["status"], final["total"]) == ("subscription_cancel", "open", 50)
    assert [line["type"] for line in final["lines"]] == ["usage"]
    assert (at(final["period_start"]), at(final["period_end"])) == (APRIL, MAY)


async def test_usage_so_far_is_priced_per_charge_and_moves_right_after_an_ingest(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient, services: Services
) -> None:
    world = await start(api, services)
    calls = await world.meter("count")
    tiers = [{"up_to": 5, "unit_amount": 10}, {"up_to": None, "unit_amount": 5, "flat_amount": 100}]
    customer = await world.customer()
    sub = await world.subscribe(
        customer, await world.metered_plan(700, {"meter": calls, "model": "graduated", "tiers": tiers})
    )
    await world.advance(APRIL + timedelta(days=3))
    before = await world.get(f"/v1/customers/{customer}/usage")
    assert before["object"] == "customer_usage"
    [summary] = before["subscriptions"]
    assert (summary["subscription"], summary["total"], summary["charges"][0]["quantity"]) == (
        sub["id"],
        0,
        "0",
    )
    assert at(summary["as_of"]) == APRIL + timedelta(days=3)
    assert (at(summary["period"]["start"]), at(summary["period"]["end"])) == (APRIL, MAY)

    await world.count(customer, calls, *(APRIL + timedelta(hours=h) for h in range(7)))
    after = await world.get(f"/v1/subscriptions/{sub['id']}/usage")
    assert after["object"] == "subscription_usage"
    [charge] = after["charges"]
    assert (charge["meter"], charge["quantity"], charge["amount"], after["total"]) == (calls, "7", 160, 160)
    assert [(t["tier"], t["quantity"], t["amount_decimal"]) for t in charge["tiers"]] == [
        (1, "5", "50"),
        (2, "2", "110"),
    ]
    assert (await world.get(f"/v1/customers/{customer}/usage"))["subscriptions"][0] == after

    # Another merchant sees neither; an ended subscription has no current usage.
    for path in (f"/v1/customers/{customer}/usage", f"/v1/subscriptions/{sub['id']}/usage"):
        assert (await other_api.get(path)).status_code == 404
    await world.post(f"/v1/subscriptions/{sub['id']}/cancel", {})
    ended = await api.get(f"/v1/subscriptions/{sub['id']}/usage")
    assert ended.status_code == 409, ended.text
    assert (await world.get(f"/v1/customers/{customer}/usage"))["subscriptions"] == []


async def test_the_upcoming_invoice_includes_usage_so_far_and_matches_the_renewal(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = await start(api, services)
    calls = await world.meter("count")
    customer = await world.customer()
    sub = await world.subscribe(
        customer,
        await world.metered_plan(
            1000, {"meter": calls, "model": "package", "package_size": 10, "unit_amount": 300}
        ),
    )
    await world.advance(APRIL + timedelta(days=28))
    await world.count(customer, calls, *(APRIL + timedelta(days=d) for d in range(12)))
    upcoming = await world.get(f"/v1/subscriptions/{sub['id']}/upcoming_invoice")
    assert [(line["type"], line["amount"]) for line in upcoming["lines"]] == [
        ("subscription", 1000),
        ("usage", 600),
    ]
    usage = upcoming["lines"][1]
    assert (usage["quantity"], usage["details"]["packages"]) == ("12", 2)
    assert upcoming["total"] == 1600
    await world.advance(MAY + 2 * HOUR)
    [_, renewal] = await world.invoices(sub["id"])
    assert renewal["total"] == upcoming["total"]


async def test_usage_with_a_coupon_and_a_tax_keeps_the_invoice_invariants(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = await start(api, services)
    gb = await world.meter("sum")
    coupon = await world.post("/v1/coupons", {"percent_off": "15", "duration": "forever"})
    tax = await world.post("/v1/tax_rates", {"display_name": "Sales tax", "percentage": "8.875"})
    customer = await world.customer()
    sub = await world.subscribe(
        customer,
        await world.metered_plan(999, {"meter": gb, "model": "per_unit", "unit_amount_decimal": "12.345"}),
        coupon=coupon["id"],
        tax_rates=[tax["id"]],
    )
    await world.advance(APRIL + timedelta(days=10))
    await world.send(customer, gb, (APRIL + timedelta(days=1), "33.3"), (APRIL + timedelta(days=2), "0.7"))
    await world.advance(MAY + 2 * HOUR)
    [_, renewal] = await world.invoices(sub["id"])
    usage = by_meter(renewal)[gb]
    assert (qty(usage), usage["amount"]) == ("34", 420)  # 34 x 12.345 = 419.73 -> 420, half-up
    assert renewal["subtotal"] == 999 + 420
    assert renewal["discount"] == 213  # 15 % of 1419 = 212.85 -> 213
    assert renewal["tax"] == 107  # 8.875 % of 1206 = 107.03 -> 107
    assert renewal["total"] == 1419 - 213 + 107
    assert sum(line["discount_amount"] for line in renewal["lines"]) == renewal["discount"]
    assert sum(line["tax_amount"] for line in renewal["lines"]) == renewal["tax"]
    assert_invariants(renewal)


async def test_without_a_grace_window_the_renewal_is_final_at_once_and_late_usage_is_adjusted(
    api: httpx.AsyncClient, services: Services
) -> None:
    for bad in (-1, 7 * 86_400 + 1):
        refused = await api.patch("/v1/settings", json={"usage": {"grace_period_seconds": bad}})
        assert refused.status_code == 400, refused.text
    settings = await api.patch("/v1/settings", json={"usage": {"grace_period_seconds": 0}})
    assert settings.json()["usage"] == {"grace_period_seconds": 0}
    world = await start(api, services)
    calls = await world.meter("count")
    customer = await world.customer()
    sub = await world.subscribe(
        customer, await world.metered_plan(100, {"meter": calls, "model": "per_unit", "unit_amount": 1})
    )
    await world.advance(APRIL + timedelta(days=5))
    await world.count(customer, calls, APRIL + timedelta(days=4))
    await world.advance(MAY)
    [_, may] = await world.invoices(sub["id"])
    assert (may["status"], may["total"]) == ("open", 101)
    await world.count(customer, calls, APRIL + timedelta(days=6))
    await world.advance(JUNE)
    [_, _, june] = await world.invoices(sub["id"])
    assert (june["status"], [(line["type"], line["amount"]) for line in june["lines"]]) == (
        "open",
        [("subscription", 100), ("usage", 0), ("adjustment", 1)],
    )


async def test_aggregation_bounds_by_arrival_and_prunes_partitions(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = await start(api, services)
    total = await world.meter("sum")
    customer = await world.customer()
    await world.advance(APRIL + timedelta(days=2))
    await world.send(customer, total, (APRIL, 5))
    await world.advance(APRIL + timedelta(days=3))
    await world.send(customer, total, (APRIL + timedelta(days=1), 7))
    async with transaction(services.sessions) as session:
        meter_id = await session.scalar(text("SELECT id FROM meters WHERE code = :c"), {"c": total})
        merchant_id = await session.scalar(
            text("SELECT merchant_id FROM meters WHERE code = :c"), {"c": total}
        )
        window = UsageWindow(meter_id, "sum", None, APRIL, MAY)
        args = {"merchant_id": merchant_id, "customer_id": customer, "windows": [window]}
        assert await aggregate_usage(session, **args) == [Decimal(12)]
        cut = APRIL + timedelta(days=2, hours=12)
        assert await aggregate_usage(session, **args, received_before=cut) == [Decimal(5)]
        assert await aggregate_usage(session, **args, received_since=cut) == [Decimal(7)]
        later = UsageWindow(meter_id, "sum", None, MAY, JUNE)
        assert await aggregate_usage(session, **{**args, "windows": [later, window]}) == [None, Decimal(12)]
        # A window inside one month reads that month's partition only (the index range scan on big tables).
        await session.execute(text("SELECT usage_events_ensure_partitions(:t, 1, 1)"), {"t": APRIL})
        plan = "\n".join(
            row[0]
            for row in await session.execute(
                text("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + aggregate_sql()),
                {
                    "merchant_id": merchant_id,
                    "ords": [0],
                    "customer_ids": [customer],
                    "meter_ids": [meter_id],
                    "aggregations": ["sum"],
                    "properties": [None],
                    "starts": [APRIL + timedelta(days=1)],
                    "ends": [APRIL + timedelta(days=2)],
                },
            )
        )
        # Run-time pruning: every other month's scan shows "(never executed)".
        executed = {
            re.search(r" on (usage_events_\w+)", line)[1]  # type: ignore[index]
            for line in plan.splitlines()
            if re.search(r"Scan.* on usage_events_", line) and "never executed" not in line
        }
        assert executed == {"usage_events_p202704"}, plan


async def test_late_usage_of_an_ended_subscription_is_billed_once_when_no_more_can_arrive(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = await start(api, services)
    calls = await world.meter("count")
    customer = await world.customer()
    sub = await world.subscribe(
        customer, await world.metered_plan(900, {"meter": calls, "model": "per_unit", "unit_amount": 25})
    )
    cancel_at = APRIL + timedelta(days=14)
    await world.advance(cancel_at)
    await world.count(customer, calls, APRIL + timedelta(days=3))
    await world.post(f"/v1/subscriptions/{sub['id']}/cancel", {})
    await world.advance(cancel_at + 2 * HOUR)
    [_, final] = await world.invoices(sub["id"])
    assert (final["status"], final["total"]) == ("open", 25)
    # Days after the final invoice, two events of the canceled period arrive (within the 35 days events are
    # accepted), one of them a copy of an event already billed.
    await world.advance(cancel_at + timedelta(days=5))
    await world.count(customer, calls, APRIL + timedelta(days=10), APRIL + timedelta(days=12))
    # Nothing is invoiced while more may come; once none can, one invoice bills the difference.
    await world.advance(cancel_at + timedelta(days=34))
    assert len(await world.invoices(sub["id"])) == 2
    await world.advance(cancel_at + timedelta(days=36))
    [_, _, true_up] = await world.invoices(sub["id"])
    assert true_up["billing_reason"] == "subscription_cancel"
    [line] = true_up["lines"]
    assert (line["type"], line["amount"], true_up["total"]) == ("adjustment", 50, 50)
    assert_invariants(true_up)
    await world.advance(JULY)
    assert len(await world.invoices(sub["id"])) == 3


async def test_usage_before_a_pause_is_billed_on_resume_and_on_a_cancel_while_paused(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = await start(api, services)
    calls = await world.meter("count")
    plan = await world.metered_plan(900, {"meter": calls, "model": "per_unit", "unit_amount": 25})
    resumed_customer, canceled_customer = await world.customer(), await world.customer()
    resumed = await world.subscribe(resumed_customer, plan)
    canceled = await world.subscribe(canceled_customer, plan)
    await world.advance(APRIL + timedelta(days=9))
    for customer in (resumed_customer, canceled_customer):
        await world.count(customer, calls, APRIL + timedelta(days=2), APRIL + timedelta(days=8))
    paused_at = APRIL + timedelta(days=10)
    await world.advance(paused_at)
    for sub in (resumed, canceled):
        await world.post(f"/v1/subscriptions/{sub['id']}/pause")
    # Usage while paused is not billed.
    await world.advance(paused_at + timedelta(days=2))
    await world.count(resumed_customer, calls, paused_at + timedelta(days=1))

    await world.advance(MAY + timedelta(days=4))
    await world.post(f"/v1/subscriptions/{resumed['id']}/resume")
    [_, resume_invoice] = await world.invoices(resumed["id"])
    [usage] = lines_of(resume_invoice, "usage")
    assert (qty(usage), usage["amount"]) == ("2", 50)
    assert (at(usage["period"]["start"]), at(usage["period"]["end"])) == (APRIL, paused_at)
    assert resume_invoice["status"] == "open"  # finalized at once, like a new subscription's
    # Resumed on the unchanged calendar after the paid April: the rest of May, May 5 – Jun 1, is 27 of May's 31
    # days of 9.00, 7.8387… → 7.84 (half-up), plus the 0.50 of usage before the pause.
    [fee] = lines_of(resume_invoice, "subscription")
    assert (fee["amount"], fee["period"]["start"], fee["period"]["end"]) == (
        784,
        "2027-05-05T00:00:00Z",
        "2027-06-01T00:00:00Z",
    )
    assert resume_invoice["total"] == 834

    await world.post(f"/v1/subscriptions/{canceled['id']}/cancel", {})
    [_, final] = await world.invoices(canceled["id"])
    [usage] = final["lines"]
    assert (usage["type"], qty(usage), usage["amount"]) == ("usage", "2", 50)
    assert at(usage["period"]["end"]) == paused_at


async def test_late_usage_of_an_earlier_metered_plan_is_billed_after_a_cancel_on_an_unmetered_one(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = await start(api, services)
    calls = await world.meter("count")
    customer = await world.customer()
    metered = await world.metered_plan(900, {"meter": calls, "model": "per_unit", "unit_amount": 25})
    flat = await world.plan(900)
    sub = await world.subscribe(customer, metered)
    await world.post(f"/v1/subscriptions/{sub['id']}/change", {"plan": flat, "effective": "period_end"})
    await world.advance(APRIL + timedelta(days=5))
    await world.count(customer, calls, APRIL + timedelta(days=1))
    await world.advance(MAY + 2 * HOUR)  # April's usage billed on May's invoice, now on the flat plan
    cancel_at = MAY + timedelta(days=4)
    await world.advance(cancel_at)
    await world.count(customer, calls, APRIL + timedelta(days=20))  # late, for April
    await world.post(f"/v1/subscriptions/{sub['id']}/cancel", {})
    await world.advance(cancel_at + 2 * HOUR)
    invoices = await world.invoices(sub["id"])
    final = invoices[-1]
    assert final["billing_reason"] == "subscription_cancel"
    [line] = final["lines"]
    assert (line["type"], line["amount"], at(line["period"]["start"])) == ("adjustment", 25, APRIL)
