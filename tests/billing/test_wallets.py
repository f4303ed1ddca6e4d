"""Prepaid credit wallets (issue 17 item 4) through the HTTP API on test clocks: credits burned before the card is
charged (all of an invoice, or part of it), expiring credits first and their expiry, a void giving credits back,
the automatic top-up, two invoices finalizing at once, and the inputs refused."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select, text, update

from billing.scheduler.models import ScheduledTask
from billing.scheduler.runner import run_task_now
from billing.services import Services
from billing.settings.service import SANDBOX_CONNECTION
from tests.billing.locks import backend_pid, wait_until_blocked_by
from tests.billing.payment_helpers import FUTURE_YEAR, configure_gateways
from tests.billing.world import T0, Billing

GOOD_CARD = "4242424242424242"


async def _customer_with_card(world: Billing) -> str:
    await configure_gateways(world.api, dict(SANDBOX_CONNECTION))
    customer = await world.customer(email="w@example.com", currency="USD")
    card = {"number": GOOD_CARD, "exp_month": 12, "exp_year": FUTURE_YEAR}
    pm = await world.post("/v1/payment_methods", {"customer": customer, "card": card})
    response = await world.api.patch(f"/v1/customers/{customer}", json={"default_payment_method": pm["id"]})
    assert response.status_code == 200, response.text
    return customer


async def _invoice(world: Billing, customer: str, amount: int) -> dict[str, Any]:
    """A one-line manual invoice, finalized."""
    draft = await world.post(
        "/v1/invoices", {"customer": customer, "lines": [{"amount": amount, "description": "Consulting"}]}
    )
    return await world.post(f"/v1/invoices/{draft['id']}/finalize")


async def _entries(world: Billing, customer: str, wallet: str) -> list[tuple[str, str, int, int | None]]:
    """The wallet's ledger, oldest first: (kind, status, amount, remaining)."""
    listed = await world.get(f"/v1/customers/{customer}/wallets/{wallet}/transactions", limit=100)
    return [(t["kind"], t["status"], t["amount"], t["remaining"]) for t in reversed(listed["data"])]


async def _event_types(world: Billing, object_id: str) -> list[str]:
    events = await world.get("/v1/events", object_id=object_id, limit=100)
    return [e["type"] for e in reversed(events["data"])]


async def _payments(world: Billing, invoice: str) -> list[tuple[str, int]]:
    found = await world.get("/v1/payments", invoice=invoice, limit=100)
    return [(p["status"], p["amount"]) for p in found["data"]]


async def test_credits_are_burned_before_the_card_which_is_charged_only_the_rest(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    await world.start()
    customer = await _customer_with_card(world)
    wallet = await world.post(
        f"/v1/customers/{customer}/wallets", {"currency": "USD", "granted_amount": 1000}
    )
    assert (wallet["balance"], wallet["credits_balance"], wallet["status"]) == (1000, "10.000000", "active")
    plan = await world.plan(2500)
    sub = await world.subscribe(customer, plan, collection_method="charge_automatically", days_until_due=None)

    # The first invoice (25.00): 10.00 of credits burned, the card charged the other 15.00.
    [first] = await world.invoices(sub["id"])
    assert (first["total"], first["prepaid_credit_amount"], first["amount_due"]) == (2500, 1000, 1500)
    assert (first["status"], first["amount_paid"], first["amount_remaining"]) == ("paid", 1500, 0)
    assert await _payments(world, first["id"]) == [("succeeded", 1500)]
    emptied = await world.get(f"/v1/customers/{customer}/wallets/{wallet['id']}")
    assert emptied["balance"] == 0
    assert await _entries(world, customer, wallet["id"]) == [
        ("granted", "settled", 1000, 0),
        ("burned", "settled", -1000, None),
    ]
    assert "wallet.depleted" in await _event_types(world, wallet["id"])

    # 40.00 more granted: the renewal a month later is paid by credits alone, no card charge.
    topped = await world.post(
        f"/v1/customers/{customer}/wallets/{wallet['id']}/top_up", {"granted_amount": 4000}
    )
    assert topped["balance"] == 4000
    await world.advance(T0 + timedelta(days=29))
    renewal = (await world.invoices(sub["id"]))[-1]
    assert renewal["billing_reason"] == "subscription_cycle"
    assert (renewal["total"], renewal["prepaid_credit_amount"], renewal["amount_due"]) == (2500, 2500, 0)
    assert (renewal["status"], renewal["amount_paid"]) == ("paid", 0)
    assert await _payments(world, renewal["id"]) == []
    assert (await world.get(f"/v1/customers/{customer}/wallets/{wallet['id']}"))["balance"] == 1500


async def test_expiring_credits_burn_first_then_expire_and_a_void_gives_credits_back(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    await world.start()
    customer = await world.customer(currency="USD")
    expiry = T0 + timedelta(days=10)
    wallet = await world.post(
        f"/v1/customers/{customer}/wallets",
        {"currency": "USD", "granted_amount": 500, "granted_expires_at": expiry.isoformat(), "name": "Promo"},
    )
    path = f"/v1/customers/{customer}/wallets/{wallet['id']}"
    await world.post(f"{path}/top_up", {"granted_amount": 800})

    # 3.00 burned from the 5.00 that expire, not from the 8.00 that never do.
    paid = await _invoice(world, customer, 300)
    assert (paid["prepaid_credit_amount"], paid["amount_due"], paid["status"]) == (300, 0, "paid")
    # The hosted invoice shows the deduction, in English and in Chinese.
    hosted = urlsplit(paid["hosted_invoice_url"]).path
    english, chinese = (await api.get(hosted)).text, (await api.get(hosted, params={"locale": "zh-CN"})).text
    assert "Prepaid credits applied" in english and "$3.00" in english
    assert "已抵扣预付额度" in chinese
    assert await _entries(world, customer, wallet["id"]) == [
        ("granted", "settled", 500, 200),
        ("granted", "settled", 800, 800),
        ("burned", "settled", -300, None),
    ]
    # 12.00: the last 2.00 that expire, then all 8.00 of the others; 2.00 left to pay.
    unpaid = await _invoice(world, customer, 1200)
    assert (unpaid["prepaid_credit_amount"], unpaid["amount_due"], unpaid["status"]) == (1000, 200, "open")
    assert (await world.get(path))["balance"] == 0
    # Voided: each credit it drew on comes back, with its own expiry.
    await world.post(f"/v1/invoices/{unpaid['id']}/void")
    assert (await world.get(path))["balance"] == 1000

    # At the expiry, the 2.00 given back from the expiring grant leave the wallet; the 8.00 stay.
    await world.advance(expiry + timedelta(minutes=1))
    assert (await world.get(path))["balance"] == 800
    assert await _entries(world, customer, wallet["id"]) == [
        ("granted", "settled", 500, 0),
        ("granted", "settled", 800, 0),
        ("burned", "settled", -300, None),
        ("burned", "settled", -1000, None),
        ("restored", "settled", 200, 0),
        ("restored", "settled", 800, 800),
        ("expired", "settled", -200, None),
    ]
    # The expired credits burn no more: a 10.00 invoice takes the 8.00 left.
    last = await _invoice(world, customer, 1000)
    assert (last["prepaid_credit_amount"], last["amount_due"]) == (800, 200)


async def test_a_paid_top_up_grants_credits_when_paid_and_a_burn_below_the_threshold_tops_up_once(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    await world.start()
    customer = await _customer_with_card(world)
    wallet = await world.post(
        f"/v1/customers/{customer}/wallets",
        {"currency": "USD", "paid_amount": 2000, "auto_top_up": {"threshold": 1000, "amount": 3000}},
    )
    # The purchase invoice was charged at once: its credits count.
    assert wallet["balance"] == 2000
    path = f"/v1/customers/{customer}/wallets/{wallet['id']}"
    [purchase] = await _entries(world, customer, wallet["id"])
    assert purchase == ("purchased", "settled", 2000, 2000)
    listed = await world.get(f"/v1/customers/{customer}/wallets/{wallet['id']}/transactions")
    bought = await world.get(f"/v1/invoices/{listed['data'][0]['invoice']}")
    assert (bought["billing_reason"], bought["total"], bought["prepaid_credit_amount"]) == (
        "wallet_top_up",
        2000,
        0,
    )
    assert (bought["status"], bought["amount_paid"]) == ("paid", 2000)

    # 15.00 burned: 20.00 → 5.00 crosses 10.00; the top-up of 30.00 is invoiced and charged on the clock.
    first = await _invoice(world, customer, 1500)
    assert (first["prepaid_credit_amount"], first["amount_due"]) == (1500, 0)
    assert (await world.get(path))["balance"] == 500
    assert (await _event_types(world, wallet["id"])).count("wallet.low_balance") == 1
    await world.advance(T0 + timedelta(minutes=5))
    assert (await world.get(path))["balance"] == 3500
    # 2.00 more keeps it above the threshold: no second top-up; 30.00 more crosses again: a second one.
    await _invoice(world, customer, 200)
    await _invoice(world, customer, 3000)
    await world.advance(T0 + timedelta(minutes=10))
    assert (await world.get(path))["balance"] == 300 + 3000
    top_ups = await world.get("/v1/invoices", customer=customer, limit=100)
    assert sorted(
        (i["total"], i["status"]) for i in top_ups["data"] if i["billing_reason"] == "wallet_top_up"
    ) == [(2000, "paid"), (3000, "paid"), (3000, "paid")]
    kinds = [entry[0] for entry in await _entries(world, customer, wallet["id"])]
    assert kinds == ["purchased", "burned", "purchased", "burned", "burned", "purchased"]
    # The task that tops up runs again (at-least-once): nothing more is bought for the same crossing.
    await _rerun_top_up_tasks(services)
    assert (await world.get(path))["balance"] == 3300


async def _until_waiting(services: Services, count: int, work: asyncio.Future[object]) -> None:
    """Once `count` backends wait for a lock (the holder's, or one the first waiter took before it)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND cardinality(pg_blocking_pids(pid)) > 0"
    )
    while True:
        async with services.sessions() as session:
            if (await session.scalar(query) or 0) >= count:
                return
        assert not work.done(), "it finished without waiting for the lock"
        await asyncio.sleep(0.02)


async def _rerun_top_up_tasks(services: Services) -> None:
    async with services.sessions() as session, session.begin():
        ids = (
            await session.scalars(select(ScheduledTask.id).where(ScheduledTask.kind == "wallet.auto_top_up"))
        ).all()
        await session.execute(update(ScheduledTask).where(ScheduledTask.id.in_(ids)).values(status="pending"))
    for task_id in ids:
        await run_task_now(services, task_id)


async def test_two_invoices_finalizing_at_once_never_burn_the_same_credit_twice(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    await world.start()
    customer = await world.customer(currency="USD")
    wallet = await world.post(
        f"/v1/customers/{customer}/wallets", {"currency": "USD", "granted_amount": 1000}
    )
    drafts = [
        await world.post(
            "/v1/invoices", {"customer": customer, "lines": [{"amount": 700, "description": "Work"}]}
        )
        for _ in range(2)
    ]
    # The wallet row is held while both finalizations start, so both are in flight before either burns.
    async with services.sessions() as holder, holder.begin():
        await holder.execute(text("SELECT 1 FROM wallets WHERE id = :id FOR UPDATE"), {"id": wallet["id"]})
        both = asyncio.gather(*(api.post(f"/v1/invoices/{d['id']}/finalize") for d in drafts))
        await wait_until_blocked_by(services, await backend_pid(holder), both)
        await _until_waiting(services, 2, both)
    finalized = await both
    assert [r.status_code for r in finalized] == [200, 200]
    burned = sorted((r.json()["prepaid_credit_amount"], r.json()["amount_due"]) for r in finalized)
    assert burned == [(300, 400), (700, 0)]
    assert (await world.get(f"/v1/customers/{customer}/wallets/{wallet['id']}"))["balance"] == 0
    assert sorted(e[2] for e in await _entries(world, customer, wallet["id"])) == [-700, -300, 1000]


async def test_bad_wallet_inputs_are_refused_with_what_to_do(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    await world.start()
    customer = await world.customer(currency="USD")
    wallets = f"/v1/customers/{customer}/wallets"

    async def refused(path: str, body: dict[str, Any], status: int = 400) -> dict[str, Any]:
        response = await api.post(path, json=body)
        assert response.status_code == status, response.text
        error: dict[str, Any] = response.json()["error"]
        return error

    mismatch = await refused(wallets, {"currency": "EUR", "granted_amount": 100})
    assert mismatch["param"] == "currency" and "USD" in mismatch["message"]
    assert (await refused(wallets, {"currency": "USD", "granted_amount": -100}))["param"] == "granted_amount"
    assert (await refused(wallets, {"currency": "USD", "paid_amount": 0}))["param"] == "paid_amount"
    typo = await refused(wallets, {"currency": "USD", "granted_amout": 100})
    assert "granted_amout" in typo["message"]
    assert (await refused(wallets, {"currency": "USD", "rate_amount": "-1"}))["param"] == "rate_amount"
    past = (T0 - timedelta(days=1)).isoformat()
    assert (await refused(wallets, {"currency": "USD", "granted_amount": 1, "granted_expires_at": past}))[
        "param"
    ] == "granted_expires_at"
    assert (await refused(wallets, {"currency": "usd!", "granted_amount": 1}))["param"] == "currency"
    # Nothing was created by the refused requests.
    assert (await world.get(wallets))["data"] == []

    wallet = await world.post(wallets, {"currency": "USD", "granted_amount": 100, "rate_amount": "0.5"})
    assert (wallet["balance"], wallet["credits_balance"], wallet["rate_amount"]) == (100, "2.000000", "0.5")
    assert (await refused(wallets, {"currency": "USD"}, 409))["code"] == "wallet_exists"
    top_up = f"{wallets}/{wallet['id']}/top_up"
    assert (await refused(top_up, {}))["param"] == "paid_amount"
    assert (await refused(top_up, {"paid_amount": 5, "expires_at": (T0 + timedelta(days=1)).isoformat()}))[
        "param"
    ] == "expires_at"
    assert "amount" in (await refused(top_up, {"amount": 5}))["message"]
    # Another merchant's customer or wallet: not found, the same answer as an unknown id.
    response = await other_api.get(f"{wallets}/{wallet['id']}")
    assert response.status_code == 404

    ended = await world.post(f"{wallets}/{wallet['id']}/terminate")
    assert (ended["status"], ended["balance"]) == ("terminated", 0)
    assert (await refused(top_up, {"granted_amount": 5}, 409))["code"] == "wallet_terminated"
    assert await _entries(world, customer, wallet["id"]) == [
        ("granted", "settled", 100, 0),
        ("voided", "settled", -100, None),
    ]
    # A terminated wallet burns nothing; a new one can be opened in the same currency.
    assert (await _invoice(world, customer, 100))["prepaid_credit_amount"] == 0
    assert (await world.post(wallets, {"currency": "USD"}))["status"] == "active"


async def test_credits_expiring_below_the_threshold_top_the_wallet_up(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    await world.start()
    customer = await _customer_with_card(world)
    expiry = T0 + timedelta(days=5)
    wallet = await world.post(
        f"/v1/customers/{customer}/wallets",
        {
            "currency": "USD",
            "granted_amount": 1000,
            "granted_expires_at": expiry.isoformat(),
            "auto_top_up": {"threshold": 500, "amount": 2000},
        },
    )
    await world.advance(expiry + timedelta(minutes=1))
    assert (await world.get(f"/v1/customers/{customer}/wallets/{wallet['id']}"))["balance"] == 2000
    assert await _entries(world, customer, wallet["id"]) == [
        ("granted", "settled", 1000, 0),
        ("expired", "settled", -1000, None),
        ("purchased", "settled", 2000, 2000),
    ]
    assert (await _event_types(world, wallet["id"])).count("wallet.low_balance") == 1


async def test_deleting_a_customer_ends_its_wallet_and_drops_its_pending_items(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    await world.start()
    customer = await world.customer(currency="USD")
    wallet = await world.post(f"/v1/customers/{customer}/wallets", {"currency": "USD", "granted_amount": 700})
    item = await world.post(
        "/v1/invoice_items", {"customer": customer, "amount": 300, "description": "Setup"}
    )
    deleted = await api.delete(f"/v1/customers/{customer}")
    assert deleted.status_code == 200, deleted.text
    assert "wallet.terminated" in await _event_types(world, wallet["id"])
    assert "invoiceitem.deleted" in await _event_types(world, item["id"])
    assert (await api.get(f"/v1/invoice_items/{item['id']}")).status_code == 404
    async with services.sessions() as session:
        status, balance = (
            await session.execute(
                text("SELECT status, balance FROM wallets WHERE id = :id"), {"id": wallet["id"]}
            )
        ).one()
        kinds = (
            await session.scalars(
                text("SELECT kind FROM wallet_transactions WHERE wallet_id = :id ORDER BY seq"),
                {"id": wallet["id"]},
            )
        ).all()
    assert (status, balance, list(kinds)) == ("terminated", 0, ["granted", "voided"])


async def test_the_upcoming_invoice_shows_the_credits_its_finalization_will_burn(
    api: httpx.AsyncClient, services: Services
) -> None:
    """Team is 25.00 a month. The wallet holds 18.00 that never expire and 10.00 granted to expire a day before
    the renewal: the upcoming renewal burns 18.00 (the 10.00 will be gone) and charges the card 7.00, as the
    renewal then does; with credit for all of it, nothing is left due."""
    world = Billing(api, services)
    await world.start()
    customer = await _customer_with_card(world)
    plan = await world.plan(2500, name="Team")
    sub = await world.subscribe(customer, plan, collection_method="charge_automatically", days_until_due=None)
    renewal_at = datetime.fromisoformat(sub["current_period_end"])
    wallet = await world.post(
        f"/v1/customers/{customer}/wallets", {"currency": "USD", "granted_amount": 1800}
    )
    await world.post(
        f"/v1/customers/{customer}/wallets/{wallet['id']}/top_up",
        {"granted_amount": 1000, "expires_at": (renewal_at - timedelta(days=1)).isoformat()},
    )
    assert (await world.get(f"/v1/customers/{customer}/wallets/{wallet['id']}"))["balance"] == 2800

    upcoming = await world.get(f"/v1/subscriptions/{sub['id']}/upcoming_invoice")
    assert (upcoming["total"], upcoming["prepaid_credit_amount"], upcoming["amount_due"]) == (2500, 1800, 700)

    await world.advance(renewal_at + timedelta(hours=1))
    renewal = (await world.invoices(sub["id"]))[-1]
    assert (renewal["total"], renewal["prepaid_credit_amount"], renewal["amount_due"]) == (2500, 1800, 700)
    assert await _payments(world, renewal["id"]) == [("succeeded", 700)]

    # 30.00 granted now: the next renewal is all credit.
    await world.post(f"/v1/customers/{customer}/wallets/{wallet['id']}/top_up", {"granted_amount": 3000})
    upcoming = await world.get(f"/v1/subscriptions/{sub['id']}/upcoming_invoice")
    assert (upcoming["total"], upcoming["prepaid_credit_amount"], upcoming["amount_due"]) == (2500, 2500, 0)
