"""Smart retries and dunning through HTTP on test clocks (SPEC §6, docs/dunning.md): the schedule, the decline
classes, the final actions, recovery by a new card, technical errors, two workers, settings and metrics."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from billing.clock import utc_now
from billing.db.engine import transaction
from billing.payments.janitor import run_janitor
from billing.scheduler.models import ScheduledTask
from billing.services import Services
from billing.settings.service import SANDBOX_CONNECTION
from billing.test_clocks.advance import run_due_tasks
from dunning.models import DunningCase
from tests.billing.payment_helpers import configure_gateways, sandbox_admin, set_mode, standalone_sandbox
from tests.billing.world import run_worker

GOOD = "4242424242424242"
SOFT = "4000000000000341"  # attaches, every charge declined card_declined (soft)
HARD = "4000000000009979"  # stolen_card
EXPIRED = "4000000000000069"  # expired_card
T0 = datetime(2027, 3, 1, 10, 0, tzinfo=UTC)
RENEWAL = datetime(2027, 4, 1, tzinfo=UTC)  # the first renewal: local midnight (UTC customer)


class World:
    def __init__(self, api: httpx.AsyncClient, services: Services) -> None:
        self.api, self.services = api, services
        self.clock = self.customer = self.sub = ""

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any) -> Any:
        response = await self.api.request(method, path, json=body, params=params or None)
        assert response.status_code == 200, f"{method} {path}: {response.text}"
        return response.json()

    async def attach(self, number: str, *, default: bool = True) -> str:
        card = {"number": number, "exp_month": 12, "exp_year": 2040, "cvc": "123"}
        pm = (await self.call("POST", "/v1/payment_methods", {"customer": self.customer, "card": card}))["id"]
        if default:
            await self.call("PATCH", f"/v1/customers/{self.customer}", {"default_payment_method": pm})
        return str(pm)

    async def start(
        self, *, card: str = GOOD, charges: list[dict[str, Any]] | None = None, **dunning: Any
    ) -> None:
        """A subscription paid with a good card at T0; then `card` becomes the default for the renewals."""
        if dunning:
            await self.call("PATCH", "/v1/settings", {"dunning": dunning})
        self.clock = (await self.call("POST", "/v1/test_clocks", {"frozen_time": T0.isoformat()}))["id"]
        self.customer = (
            await self.call(
                "POST",
                "/v1/customers",
                {"test_clock": self.clock, "currency": "USD", "email": "payer@example.com"},
            )
        )["id"]
        await self.attach(GOOD)
        plan = await self.call(
            "POST",
            "/v1/plans",
            {
                "code": "d" + secrets.token_hex(4),
                "name": "Team",
                "currency": "USD",
                "amount": 2500,
                "charges": charges or [],
            },
        )
        sub = await self.call("POST", "/v1/subscriptions", {"customer": self.customer, "plan": plan["id"]})
        assert sub["status"] == "active"
        self.sub = sub["id"]
        if card != GOOD:
            await self.attach(card)

    async def advance(self, to: datetime) -> None:
        await self.call("POST", f"/v1/test_clocks/{self.clock}/advance", {"frozen_time": to.isoformat()})
        await run_worker(self.services)
        assert (await self.call("GET", f"/v1/test_clocks/{self.clock}"))["status"] == "ready"

    async def subscription(self) -> dict[str, Any]:
        return dict(await self.call("GET", f"/v1/subscriptions/{self.sub}"))

    async def renewal(self) -> dict[str, Any]:
        return dict(await self.call("GET", f"/v1/invoices/{(await self.subscription())['latest_invoice']}"))

    async def payments(self, invoice: str) -> list[dict[str, Any]]:
        data = (await self.call("GET", "/v1/payments", invoice=invoice, limit=100))["data"]
        return list(reversed(data))

    async def case(self, invoice: str) -> dict[str, Any]:
        [found] = (await self.call("GET", "/v1/dunning/cases", invoice=invoice))["data"]
        return dict(found)

    async def events(self, object_id: str, event_type: str) -> list[dict[str, Any]]:
        found = await self.call("GET", "/v1/events", object_id=object_id, type=event_type, limit=100)
        return list(reversed(found["data"]))


@pytest.fixture
async def world(api: httpx.AsyncClient, services: Services) -> World:
    await configure_gateways(api, dict(SANDBOX_CONNECTION))
    return World(api, services)


def at(day: int, hour: int = 0) -> datetime:
    return RENEWAL + timedelta(days=day, hours=hour)


async def test_a_soft_decline_is_retried_on_days_1_3_5_7_then_the_subscription_is_canceled(
    world: World,
) -> None:
    await world.start(card=SOFT)
    await world.advance(at(0, 1))
    invoice = await world.renewal()
    assert (await world.subscription())["status"] == "past_due"
    assert (invoice["attempt_count"], invoice["next_payment_attempt"]) == (1, "2027-04-02T00:00:00Z")

    # invoice.payment_failed carries the attempt count, the reason and the next attempt.
    [failed] = await world.events(invoice["id"], "invoice.payment_failed")
    shown = failed["data"]["object"]
    assert shown["attempt_count"] == 1
    assert shown["next_payment_attempt"] == "2027-04-02T00:00:00Z"
    assert (shown["last_payment_error"]["code"], shown["last_payment_error"]["decline_class"]) == (
        "card_declined",
        "soft",
    )
    [scheduled] = await world.events((await world.case(invoice["id"]))["id"], "dunning.retry_scheduled")
    assert scheduled["data"]["object"]["next_attempt_at"] == "2027-04-02T00:00:00Z"

    await world.advance(at(7, 1))
    payments = await world.payments(invoice["id"])
    assert [(p["created_at"], p["status"], p["attempt"]) for p in payments] == [
        ("2027-04-01T00:00:00Z", "failed", 1),
        ("2027-04-02T00:00:00Z", "failed", 2),
        ("2027-04-04T00:00:00Z", "failed", 3),
        ("2027-04-06T00:00:00Z", "failed", 4),
        ("2027-04-08T00:00:00Z", "failed", 5),
    ]
    case = await world.case(invoice["id"])
    assert (case["state"], case["attempts"], case["final_action"], case["next_attempt_at"]) == (
        "exhausted",
        5,
        "cancel",
        None,
    )
    after = await world.call("GET", f"/v1/invoices/{invoice['id']}")
    assert (after["status"], after["attempt_count"], after["next_payment_attempt"]) == (
        "uncollectible",
        5,
        None,
    )
    assert (await world.subscription())["status"] == "canceled"
    failures = await world.events(invoice["id"], "invoice.payment_failed")
    assert [f["data"]["object"]["next_payment_attempt"] for f in failures] == [
        "2027-04-02T00:00:00Z",
        "2027-04-04T00:00:00Z",
        "2027-04-06T00:00:00Z",
        "2027-04-08T00:00:00Z",
        None,
    ]
    assert len(await world.events(case["id"], "dunning.case_opened")) == 1
    assert len(await world.events(case["id"], "dunning.retry_scheduled")) == 4
    assert len(await world.events(case["id"], "dunning.exhausted")) == 1
    assert await world.events(case["id"], "dunning.recovered") == []
    # Nothing more happens later: the final action ran once.
    await world.advance(at(20))
    assert len(await world.payments(invoice["id"])) == 5
    assert len(await world.events(case["id"], "dunning.exhausted")) == 1

    metrics = await world.call("GET", "/v1/dunning/metrics")
    assert (metrics["cases_opened"], metrics["closed_cases"], metrics["exhausted_cases"]) == (1, 1, 1)
    assert (metrics["recovery_rate"], metrics["attempts_per_recovery"]) == ("0.0000", None)
    assert metrics["final_actions"] == {"cancel": 1, "unpaid": 0, "past_due": 0}


async def test_final_action_unpaid_keeps_invoicing_without_charging_until_a_new_card_pays(
    world: World,
) -> None:
    await world.start(card=SOFT, retry_schedule_days=[2], final_action="unpaid")
    await world.advance(at(2, 1))
    first = await world.renewal()
    assert (await world.case(first["id"]))["state"] == "exhausted"
    assert (await world.subscription())["status"] == "unpaid"
    assert (await world.call("GET", f"/v1/invoices/{first['id']}"))["status"] == "open"
    # The next renewal is invoiced but not charged.
    await world.advance(datetime(2027, 5, 1, 1, tzinfo=UTC))
    second = await world.renewal()
    assert second["id"] != first["id"] and second["status"] == "open"
    assert await world.payments(second["id"]) == []
    # A new card pays everything owed and the subscription is active again.
    await world.attach(GOOD, default=False)
    await world.advance(datetime(2027, 5, 1, 1, 1, tzinfo=UTC))
    assert (await world.call("GET", f"/v1/invoices/{first['id']}"))["status"] == "paid"
    assert (await world.call("GET", f"/v1/invoices/{second['id']}"))["status"] == "paid"
    assert (await world.subscription())["status"] == "active"
    assert (await world.case(first["id"]))["state"] == "recovered"


async def test_final_action_past_due_keeps_charging_each_new_invoice(world: World) -> None:
    await world.start(card=SOFT, retry_schedule_days=[1], final_action="past_due")
    await world.advance(at(1, 1))
    first = await world.renewal()
    case = await world.case(first["id"])
    assert (case["state"], case["final_action"]) == ("exhausted", "past_due")
    assert (await world.subscription())["status"] == "past_due"
    assert (await world.call("GET", f"/v1/invoices/{first['id']}"))["status"] == "open"
    await world.advance(datetime(2027, 5, 1, 1, tzinfo=UTC))
    second = await world.renewal()
    assert [p["status"] for p in await world.payments(second["id"])] == ["failed"]
    assert (await world.case(second["id"]))["state"] == "retrying"


async def test_a_hard_decline_is_never_retried_and_ends_with_the_schedule(world: World) -> None:
    await world.start(card=HARD)
    await world.advance(at(0, 1))
    invoice = await world.renewal()
    case = await world.case(invoice["id"])
    assert (case["state"], case["next_attempt_at"], invoice["next_payment_attempt"]) == (
        "awaiting_payment_method",
        None,
        None,
    )
    assert invoice["last_payment_error"]["decline_class"] == "hard"
    await world.advance(at(6))
    assert len(await world.payments(invoice["id"])) == 1
    # The last slot (day 7) passes without a new card: the final action runs.
    await world.advance(at(7, 1))
    assert len(await world.payments(invoice["id"])) == 1
    assert (await world.case(invoice["id"]))["state"] == "exhausted"
    assert (await world.subscription())["status"] == "canceled"


async def test_an_expired_card_waits_and_a_new_card_recovers_at_once(world: World) -> None:
    await world.start(card=EXPIRED)
    await world.advance(at(0, 1))
    invoice = await world.renewal()
    assert (await world.case(invoice["id"]))["state"] == "awaiting_payment_method"
    assert invoice["last_payment_error"]["decline_class"] == "expired"
    await world.advance(at(2))
    assert len(await world.payments(invoice["id"])) == 1
    # The customer chooses a good card: an attempt is due at once (the next tick, or here the next clock step).
    await world.attach(GOOD)
    await world.advance(at(2, 0) + timedelta(minutes=1))
    assert [p["status"] for p in await world.payments(invoice["id"])] == ["failed", "succeeded"]
    assert (await world.call("GET", f"/v1/invoices/{invoice['id']}"))["status"] == "paid"
    assert (await world.subscription())["status"] == "active"
    case = await world.case(invoice["id"])
    assert (case["state"], case["recovered_amount"]) == ("recovered", 2500)
    [recovered] = await world.events(case["id"], "dunning.recovered")
    assert (recovered["data"]["object"]["state"], recovered["data"]["object"]["recovered_amount"]) == (
        "recovered",
        2500,
    )
    metrics = await world.call("GET", "/v1/dunning/metrics")
    assert metrics["recovered_revenue"] == [{"currency": "USD", "amount": 2500, "cases": 1}]
    assert (metrics["recovery_rate"], metrics["attempts_per_recovery"], metrics["open_cases"]) == (
        "1.0000",
        "1.0000",
        0,
    )
    later = await world.call("GET", "/v1/dunning/metrics", since="2027-05-01T00:00:00Z")
    assert (later["cases_opened"], later["recovered_revenue"]) == (0, [])


async def test_a_soft_declined_renewal_recovers_when_the_subscription_gets_a_new_card(world: World) -> None:
    await world.start(card=SOFT)
    await world.advance(at(0, 1))
    invoice = await world.renewal()
    good = await world.attach(GOOD, default=False)
    await world.call("PATCH", f"/v1/subscriptions/{world.sub}", {"default_payment_method": good})
    await world.advance(at(0, 2))
    assert (await world.call("GET", f"/v1/invoices/{invoice['id']}"))["status"] == "paid"
    assert (await world.subscription())["status"] == "active"
    # The planned retry was canceled: no more attempts.
    await world.advance(at(3))
    assert len(await world.payments(invoice["id"])) == 2


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    with standalone_sandbox() as url:
        yield url


async def test_a_decline_followed_by_a_technical_error_does_not_burn_an_attempt(
    api: httpx.AsyncClient, services: Services, sandbox_url: str
) -> None:
    await sandbox_admin(sandbox_url, "/admin/reset", {})
    await set_mode(sandbox_url, "normal")
    await configure_gateways(api, {"id": "main", "type": "sandbox", "url": sandbox_url, "timeout_ms": 400})
    world = World(api, services)
    await world.start(card=SOFT)
    await world.advance(at(0, 1))
    invoice = await world.renewal()
    try:
        await set_mode(sandbox_url, "down")
        await world.advance(at(1, 0) + timedelta(minutes=5))  # the day-1 retry meets a gateway that is down
    finally:
        await set_mode(sandbox_url, "normal")
    await run_janitor(
        services, now=utc_now() + timedelta(hours=2)
    )  # it was never received: failed, no charge
    await world.advance(at(1, 3))
    payments = await world.payments(invoice["id"])
    assert [(p["status"], p["decline_type"]) for p in payments] == [
        ("failed", "soft"),
        ("failed", None),  # technical: gateway_unavailable
        ("failed", "soft"),  # the same slot tried again an hour later
    ]
    case = await world.case(invoice["id"])
    assert (case["attempts"], case["next_attempt_at"]) == (2, "2027-04-04T00:00:00Z")
    after = await world.call("GET", f"/v1/invoices/{invoice['id']}")
    assert after["attempt_count"] == 2
    # The whole schedule is still there: day 3, 5 and 7, then the final action.
    await world.advance(at(7, 1))
    case = await world.case(invoice["id"])
    assert (case["state"], case["attempts"]) == ("exhausted", 5)
    assert len(await world.payments(invoice["id"])) == 6


async def test_two_workers_never_make_two_attempts_for_one_slot(
    api: httpx.AsyncClient, services: Services
) -> None:
    await configure_gateways(api, dict(SANDBOX_CONNECTION))
    customer = (await api.post("/v1/customers", json={"currency": "USD"})).json()["id"]
    card = {"number": SOFT, "exp_month": 12, "exp_year": 2040}
    pm = (await api.post("/v1/payment_methods", json={"customer": customer, "card": card})).json()["id"]
    await api.patch(f"/v1/customers/{customer}", json={"default_payment_method": pm})
    invoice = (
        await api.post(
            "/v1/invoices",
            json={
                "customer": customer,
                "currency": "USD",
                "lines": [{"description": "Setup", "amount": 900}],
            },
        )
    ).json()
    await api.post(f"/v1/invoices/{invoice['id']}/finalize")
    # The first charge, asked for in a request, is declined: the invoice enters dunning (real time here).
    assert (await api.post(f"/v1/invoices/{invoice['id']}/pay", json={})).status_code == 402
    async with transaction(services.sessions) as session:
        case = await session.scalar(select(DunningCase).where(DunningCase.invoice_id == invoice["id"]))
        assert case is not None and case.attempts == 1
        # The day-1 retry is due now (as if a day had passed) and both workers tick at once.
        retried = await session.execute(
            update(ScheduledTask)
            .where(
                ScheduledTask.status == "pending",
                ScheduledTask.payload["invoice"].astext == invoice["id"],
            )
            .values(due_at=utc_now() - timedelta(seconds=1))
            .returning(ScheduledTask.dedupe_key)
        )
        assert [key for (key,) in retried] == [f"dunning:{invoice['id']}:1:0"]
    await asyncio.gather(*(run_due_tasks(services) for _ in range(4)))
    payments = (await api.get("/v1/payments", params={"invoice": invoice["id"]})).json()["data"]
    assert sorted(p["attempt"] for p in payments) == [1, 2]
    async with transaction(services.sessions) as session:
        case = await session.scalar(select(DunningCase).where(DunningCase.invoice_id == invoice["id"]))
        assert case is not None and case.attempts == 2
        pending = (
            await session.scalars(
                select(ScheduledTask.dedupe_key).where(
                    ScheduledTask.status == "pending",
                    ScheduledTask.payload["invoice"].astext == invoice["id"],
                )
            )
        ).all()
        assert pending == [f"dunning:{invoice['id']}:2:0"]


async def test_dunning_settings_are_validated_and_merged(api: httpx.AsyncClient) -> None:
    shown = (await api.get("/v1/settings")).json()["dunning"]
    assert shown == {"retry_schedule_days": [1, 3, 5, 7], "final_action": "cancel", "smart_retries": True}
    changed = await api.patch("/v1/settings", json={"dunning": {"final_action": "unpaid"}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["dunning"] == {
        "retry_schedule_days": [1, 3, 5, 7],
        "final_action": "unpaid",
        "smart_retries": True,
    }
    for days, param, words in [
        ([3, 2], "dunning.retry_schedule_days[1]", "strictly increasing"),
        ([0], "dunning.retry_schedule_days[0]", "from 1 to 60"),
        ([61], "dunning.retry_schedule_days[0]", "from 1 to 60"),
        ([], "dunning.retry_schedule_days", "1 to 10"),
        (list(range(1, 12)), "dunning.retry_schedule_days", "1 to 10"),
    ]:
        refused = await api.patch("/v1/settings", json={"dunning": {"retry_schedule_days": days}})
        assert refused.status_code == 400, refused.text
        error = refused.json()["error"]
        assert (error["type"], error["param"]) == ("invalid_request_error", param)
        assert words in error["message"]
    bad_action = await api.patch("/v1/settings", json={"dunning": {"final_action": "delete"}})
    assert bad_action.status_code in (400, 422)
    assert "final_action" in str(bad_action.json()["error"])
    assert (await api.get("/v1/settings")).json()["dunning"]["final_action"] == "unpaid"


async def test_another_merchant_cannot_see_dunning_cases(world: World, other_api: httpx.AsyncClient) -> None:
    await world.start(card=SOFT)
    await world.advance(at(0, 1))
    case = await world.case((await world.renewal())["id"])
    assert (await world.api.get(f"/v1/dunning/cases/{case['id']}")).status_code == 200
    assert (await other_api.get(f"/v1/dunning/cases/{case['id']}")).status_code == 404
    assert (await other_api.get("/v1/dunning/metrics")).json()["cases_opened"] == 0


async def test_a_smart_retry_moves_to_the_hour_that_succeeds_most_for_the_brand_within_its_day(
    world: World,
) -> None:
    await world.start()
    # This merchant's history: 20 Visa charges succeeded at 14:xx (the customer's local time, UTC here).
    await world.advance(datetime(2027, 3, 2, 14, 5, tzinfo=UTC))
    for _ in range(20):
        draft = await world.call(
            "POST",
            "/v1/invoices",
            {"customer": world.customer, "lines": [{"description": "Top-up", "amount": 500}]},
        )
        await world.call("POST", f"/v1/invoices/{draft['id']}/finalize")
        assert (await world.call("POST", f"/v1/invoices/{draft['id']}/pay", {}))["status"] == "paid"
    await world.attach(SOFT)  # a Visa card whose every charge is declined (soft)
    await world.advance(at(0, 1))
    invoice = await world.renewal()
    # Day 1 of the schedule, moved from the failure's time (00:00) to 14:00 on that same day.
    assert (invoice["attempt_count"], invoice["next_payment_attempt"]) == (1, "2027-04-02T14:00:00Z")
    await world.advance(at(1, 15))
    payments = await world.payments(invoice["id"])
    assert [p["created_at"][:16] for p in payments] == ["2027-04-01T00:00", "2027-04-02T14:00"]


async def test_the_cancel_final_action_bills_the_usage_up_to_the_end_like_any_cancel(world: World) -> None:
    await world.call("POST", "/v1/meters", {"code": "calls_dunning", "name": "Calls", "aggregation": "count"})
    await world.start(card=SOFT, charges=[{"meter": "calls_dunning", "model": "per_unit", "unit_amount": 10}])
    await world.advance(at(0, 1))
    assert (await world.subscription())["status"] == "past_due"
    await world.advance(at(3, 3))
    events = [
        {
            "id": f"call-{day}",
            "customer": world.customer,
            "meter": "calls_dunning",
            "timestamp": at(day, 2).isoformat(),
        }
        for day in (1, 2, 3)
    ]
    assert (await world.call("POST", "/v1/usage_events/batch", {"events": events}))["accepted"] == 3
    await world.advance(at(7, 3))
    assert (await world.subscription())["status"] == "canceled"
    final = (await world.call("GET", "/v1/invoices", subscription=world.sub, limit=10))["data"][0]
    assert final["billing_reason"] == "subscription_cancel"
    [usage] = final["lines"]
    assert (usage["type"], usage["amount"], usage["period"]["start"]) == ("usage", 30, "2027-04-01T00:00:00Z")
