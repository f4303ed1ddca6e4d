"""The hosted customer portal over HTTP (SPEC §10, issue 14): links and logins, every page and form, the same use
cases as the API behind them, and what keeps a form from doing harm (CSRF, double submits, other customers'
ids, card attempts)."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

import httpx

from billing.services import Services
from billing.settings.service import SANDBOX_CONNECTION
from tests.billing.payment_helpers import FUTURE_YEAR, configure_gateways
from tests.billing.portal_helpers import form, path_of, portal_link, sign_in, visible_text, visitor
from tests.billing.world import Billing

GOOD = "4242424242424242"
DECLINES = "4000000000000341"  # attaches, every charge declined card_declined (soft)
T0 = datetime(2027, 3, 1, 10, tzinfo=UTC)


async def world_at(api: httpx.AsyncClient, services: Services, at: datetime = T0) -> Billing:
    """A test clock at `at`, and the merchant charging through the in-process sandbox gateway."""
    await configure_gateways(api, SANDBOX_CONNECTION)
    world = Billing(api, services)
    await world.start(at)
    return world


async def attach(api: httpx.AsyncClient, customer: str, number: str = GOOD, *, default: bool = True) -> str:
    card = {"number": number, "exp_month": 12, "exp_year": FUTURE_YEAR}
    created = await api.post("/v1/payment_methods", json={"customer": customer, "card": card})
    assert created.status_code == 200, created.text
    pm: str = created.json()["id"]
    if default:
        updated = await api.patch(f"/v1/customers/{customer}", json={"default_payment_method": pm})
        assert updated.status_code == 200, updated.text
    return pm


async def past_due(
    api: httpx.AsyncClient, world: Billing, **customer: Any
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A customer whose card declines every charge, past due after a 7-day trial of Team ($25.00 a month):
    (customer, subscription, its open invoice)."""
    cus = await world.customer(email="ada@example.com", **customer)
    await attach(api, cus, DECLINES)
    plan = await world.plan(2500, name="Team", trial_period_days=7)
    sub = await world.subscribe(cus, plan, collection_method="charge_automatically")
    await world.advance(T0 + timedelta(days=8))
    after = await world.subscription(sub["id"])
    assert after["status"] == "past_due"
    invoice = await world.get(f"/v1/invoices/{after['latest_invoice']}")
    assert invoice["status"] == "open"
    return cus, after, invoice


def half_up(value: Fraction) -> int:
    """Round a fraction of minor units half-up, as the engine states it does (independent of plans.money)."""
    return int((Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal(1), ROUND_HALF_UP))


def usd(minor: int) -> str:
    sign = "-" if minor < 0 else ""
    return f"{sign}${abs(minor) // 100:,}.{abs(minor) % 100:02d}"


# --- links and logins -----------------------------------------------------------------------------------------


async def test_a_link_opens_the_portal_once_on_a_clean_url_with_a_strict_cookie(
    api: httpx.AsyncClient, app: Any, services: Services
) -> None:
    world = await world_at(api, services)
    customer = await world.customer(email="ada@example.com", name="Ada")
    plan = await world.plan(2500, name="Team")
    await world.subscribe(customer, plan)
    link = await portal_link(api, customer, return_url="https://app.example.com/account")
    assert link["url"].split("/portal/s/")[1].startswith(link["id"] + ".")
    assert datetime.fromisoformat(link["expires_at"]) == T0 + timedelta(hours=1)

    async with visitor(app) as browser:
        opened = await browser.get(path_of(link["url"]))
        assert opened.status_code == 303 and opened.headers["location"] == "/portal/"
        cookie = opened.headers["set-cookie"]
        for attribute in ("HttpOnly", "Secure", "SameSite=lax", "Path=/portal"):
            assert attribute.lower() in cookie.lower(), cookie
        page = await browser.get("/portal/")
        assert page.status_code == 200
        words = visible_text(page.text)
        assert "Your subscriptions" in words and "Team" in words and "$25.00 per month" in words
        assert "Return to Merchant A" in words and 'href="https://app.example.com/account"' in page.text
        # The same browser opening its link again (the back button) lands where it was, with no new login.
        again = await browser.get(path_of(link["url"]))
        assert again.status_code == 303 and "set-cookie" not in again.headers

    async with visitor(app) as stranger:
        reused = await stranger.get(path_of(link["url"]))
        assert reused.status_code == 410
        assert "This link was already used" in reused.text
        assert 'href="https://app.example.com/account"' in reused.text
        assert (await stranger.get("/portal/")).status_code == 401


async def test_forged_and_expired_links_show_a_friendly_page_with_the_way_back(
    api: httpx.AsyncClient, app: Any, services: Services
) -> None:
    world = await world_at(api, services)
    customer = await world.customer(email="ada@example.com")
    link = await portal_link(api, customer, return_url="https://app.example.com/account")
    token = link["url"].split("/portal/s/")[1]
    session_id, expires, signature = token.split(".")
    forged_signature = ("A" if signature[0] != "A" else "B") + signature[1:]
    other = await world.customer(email="eve@example.com")
    other_link = await portal_link(api, other)
    other_signature = other_link["url"].split(".")[-1]
    async with visitor(app) as browser:
        for forged in (
            f"{session_id}.{expires}.{forged_signature}",  # the signature changed
            f"{session_id}.{int(expires) + 3600}.{signature}",  # a longer life asked for
            f"{session_id}.{expires}.{other_signature}",  # another customer's signature
        ):
            refused = await browser.get(f"/portal/s/{forged}")
            assert refused.status_code == 404, forged
            assert "This link is not valid" in refused.text
            assert 'href="https://app.example.com/account"' in refused.text
            assert "set-cookie" not in refused.headers
        garbage = await browser.get("/portal/s/not-a-token")
        assert garbage.status_code == 404 and "This link is not valid" in garbage.text

    # Links live one hour of the customer's clock.
    await world.advance(T0 + timedelta(hours=1, seconds=1))
    async with visitor(app) as browser:
        expired = await browser.get(path_of(link["url"]))
        assert expired.status_code == 410 and "This link has expired" in expired.text
        assert 'href="https://app.example.com/account"' in expired.text
        assert "Return to Merchant A" in visible_text(expired.text)


async def test_signing_out_ends_the_login_and_its_cookie(
    api: httpx.AsyncClient, app: Any, services: Services
) -> None:
    world = await world_at(api, services)
    customer = await world.customer(email="ada@example.com")
    link = await portal_link(api, customer, return_url="https://app.example.com/account")
    async with visitor(app) as browser:
        await sign_in(browser, link["url"])
        page = await browser.get("/portal/")
        # Without the login's CSRF token, sign-out does nothing.
        assert (await browser.post("/portal/logout", data={"csrf": "guess"})).status_code == 303
        assert (await browser.get("/portal/")).status_code == 200
        signed_out = await browser.post("/portal/logout", data=form(page.text, "/portal/logout"))
        assert signed_out.status_code == 200 and "You have signed out" in signed_out.text
        assert 'href="https://app.example.com/account"' in signed_out.text
        ended = await browser.get("/portal/")
        assert ended.status_code == 401 and "Your session has ended" in ended.text


async def test_a_login_lasts_an_hour_of_the_customers_clock(
    api: httpx.AsyncClient, app: Any, services: Services
) -> None:
    world = await world_at(api, services)
    customer = await world.customer(email="ada@example.com")
    link = await portal_link(api, customer)
    async with visitor(app) as browser:
        await sign_in(browser, link["url"])
        await world.advance(T0 + timedelta(minutes=59))
        assert (await browser.get("/portal/")).status_code == 200
        await world.advance(T0 + timedelta(hours=1, minutes=1))
        assert (await browser.get("/portal/")).status_code == 401


# --- overview -------------------------------------------------------------------------------------------------


async def test_the_overview_shows_each_subscription_with_its_next_invoice_and_what_to_do(
    api: httpx.AsyncClient, app: Any, services: Services
) -> None:
    world = await world_at(api, services)
    customer = await world.customer(email="ada@example.com", name="Ada")
    pm = await attach(api, customer)
    team = await world.plan(2500, name="Team")
    seats = await world.plan(1000, name="Seats", trial_period_days=14)
    active = await world.subscribe(customer, team, collection_method="charge_automatically", quantity=2)
    trial = await world.subscribe(customer, seats, collection_method="charge_automatically", quantity=3)
    assert active["status"] == "active" and trial["status"] == "trialing"
    link = await portal_link(api, customer)
    async with visitor(app) as browser:
        await sign_in(browser, link["url"])
        page = await browser.get("/portal/")
    words = visible_text(page.text)
    # Team: 2 × $25.00 a month, renewed on Apr 1 (the customer lives in UTC) for $50.00.
    assert "Team Active" in words and "$50.00 per month" in words
    assert "Current period Mar 1 – Apr 1, 2027" in words
    assert "Next invoice $50.00 on Apr 1, 2027" in words
    # The trial: 14 days, ending at the customer's midnight after them (Mar 16, 00:00 UTC), then 3 × $10.00
    # charged to the default card.
    assert datetime.fromisoformat(trial["trial_end"]) == datetime(2027, 3, 16, tzinfo=UTC)
    assert "Seats Free trial" in words
    assert "Your free trial of Seats ends on Mar 16, 2027. (15 days left)" in words
    assert "Then Visa •••• 4242 will be charged $30.00." in words
    assert "Next invoice $30.00 on Mar 16, 2027" in words
    assert pm


async def test_a_past_due_subscription_says_why_and_offers_to_pay_or_update_the_card(
    api: httpx.AsyncClient, app: Any, services: Services
) -> None:
    world = await world_at(api, services)
    customer, _, invoice = await past_due(api, world)
    link = await portal_link(api, customer, locale="zh-CN")
    async with visitor(app) as browser:
        await sign_in(browser, link["url"])
        page = await browser.get("/portal/")
    words = visible_text(page.text)
    assert "逾期未付" in words
    assert f"我们未能收取发票 {invoice['number']} 的款项 US$25.00：您的银行卡被拒绝。" in words
    assert f'href="/portal/invoices/{invoice["id"]}/pay"' in page.text
    assert 'href="/portal/payment_methods"' in page.text


# --- change plan -------------------------------------------------------------------------------------------------


async def plans_and_subscription(
    api: httpx.AsyncClient, world: Billing, **subscription: Any
) -> tuple[str, str, str, dict[str, Any]]:
    customer = await world.customer(email="ada@example.com", name="Ada")
    await attach(api, customer)
    basic = await world.plan(1000, name="Basic", portal_visible=True)
    pro = await world.plan(3000, name="Pro", portal_visible=True)
    await world.plan(9900, name="Hidden")  # not offered in the portal
    sub = await world.subscribe(customer, basic, collection_method="charge_automatically", **subscription)
    assert sub["status"] == "active"
    return customer, basic, pro, sub


def prorations(sub: dict[str, Any], at: datetime, old: int, new: int) -> tuple[int, int]:
    """(credit, charge) of a change at `at`: the exact part of the period left, half-up at the line."""
    start = datetime.fromisoformat(sub["current_period_start"])
    end = datetime.fromisoformat(sub["current_period_end"])
    left = Fraction(int((end - at).total_seconds() * 10**6), int((end - start).total_seconds() * 10**6))
    return -half_up(old * left), half_up(new * left)


async def test_a_plan_change_is_previewed_then_made_once_however_often_it_is_confirmed(
    api: httpx.AsyncClient, app: Any, services: Services
) -> None:
    world = await world_at(api, services)
    assert (
        await api.patch("/v1/settings", json={"portal": {"proration_behavior": "always_invoice"}})
    ).status_code == 200
    customer, _, pro, sub = await plans_and_subscription(api, world)
    at = T0 + timedelta(days=10)
    await world.advance(at)
    credit, charge = prorations(sub, at, 1000, 3000)
    assert credit < 0 < charge
    link = await portal_link(api, customer)
    async with visitor(app) as browser:
        await sign_in(browser, link["url"])
        choose = await browser.get(f"/portal/subscriptions/{sub['id']}/change")
        words = visible_text(choose.text)
        assert "Basic Current plan" in words and "Pro $30.00 per month" in words and "Hidden" not in words
        preview = await browser.get(
            f"/portal/subscriptions/{sub['id']}/change/preview", params={"plan": pro, "quantity": "1"}
        )
        assert preview.status_code == 200, preview.text
        words = visible_text(preview.text)
        assert f"Credit for unused time on Basic Mar 11 – Apr 1, 2027 {usd(credit)}" in words
        assert f"Remaining time on Pro Mar 11 – Apr 1, 2027 {usd(charge)}" in words
        assert f"Due today {usd(credit + charge)}" in words
        assert "Next invoice, on Apr 1, 2027 $30.00" in words
        assert f"{usd(credit + charge)} is charged today to your default payment method." in words
        # The preview changed nothing.
        assert (await world.subscription(sub["id"]))["plan"] != pro

        fields = form(preview.text, f"/portal/subscriptions/{sub['id']}/change")
        assert fields["expected"] == str(credit + charge)
        first, second = await asyncio.gather(
            browser.post(f"/portal/subscriptions/{sub['id']}/change", data=fields),
            browser.post(f"/portal/subscriptions/{sub['id']}/change", data=fields),
        )
        assert first.status_code == second.status_code == 303
        assert first.headers["location"] == second.headers["location"]
        shown = await browser.get(first.headers["location"])
        assert f"Your plan was changed, and {usd(credit + charge)} was charged for it." in visible_text(
            shown.text
        )

    changed = await world.subscription(sub["id"])
    assert changed["plan"] == pro
    updates = [i for i in await world.invoices(sub["id"]) if i["billing_reason"] == "subscription_update"]
    assert len(updates) == 1
    assert updates[0]["amount_due"] == credit + charge and updates[0]["status"] == "paid"
    payments = (await world.get("/v1/payments", invoice=updates[0]["id"]))["data"]
    assert [p["status"] for p in payments] == ["succeeded"] and payments[0]["amount"] == credit + charge


async def test_with_prorations_on_the_next_invoice_nothing_is_due_today(
    api: httpx.AsyncClient, app: Any, services: Services
) -> None:
    world = await world_at(api, services)
    customer, _, pro, sub = await plans_and_subscription(api, world)
    at = T0 + timedelta(days=20)
    await world.advance(at)
    credit, charge = prorations(sub, at, 1000, 3000 * 2)
    link = await portal_link(api, customer)
    async with visitor(app) as browser:
        await sign_in(browser, link["url"])
        preview = await browser.get(
            f"/portal/subscriptions/{sub['id']}/change/preview", params={"plan": pro, "quantity": "2"}
        )
        words = visible_text(preview.text)
        assert "From Basic × 1 to Pro × 2" in words
        assert "Due today $0.00" in words
        assert f"Next invoice, on Apr 1, 2027 {usd(6000 + credit + charge)}" in words
        assert "The credit and the charge are added to your next invoice: nothing is charged today." in words
        done = await browser.post(
            f"/portal/subscriptions/{sub['id']}/change",
            data=form(preview.text, f"/portal/subscriptions/{sub['id']}/change"),
        )
        assert done.status_code == 303
    upcoming = await world.get(f"/v1/subscriptions/{sub['id']}/upcoming_invoice")
    assert upcoming["amount_due"] == 6000 + credit + charge
    assert (await world.subscription(sub["id"]))["quantity"] == 2


async def test_a_change_is_refused_when_it_is_not_offered_or_changes_nothing(
    api: httpx.AsyncClient, app: Any, services: Services, other_api: httpx.AsyncClient
) -> None:
    world = await world_at(api, services)
    customer, basic, _, sub = await plans_and_subscription(api, world)
    hidden = (await api.get("/v1/plans", params={"portal_visible": "false"})).json()["data"][0]
    assert hidden["name"] == "Hidden"
    foreign = (
        await other_api.post(
            "/v1/plans",
            json={"code": "x1", "name": "X", "currency": "USD", "amount": 1, "portal_visible": True},
        )
    ).json()["id"]
    link = await portal_link(api, customer)
    async with visitor(app) as browser:
        await sign_in(browser, link["url"])
        path = f"/portal/subscriptions/{sub['id']}/change/preview"
        for plan, quantity, words in (
            (hidden["id"], "1", "That plan is not available."),
            (foreign, "1", "That plan is not available."),
            (basic, "1", "That is your current plan and quantity."),
            (basic, "0", "Enter a quantity as a whole number"),
            (basic, "abc", "Enter a quantity as a whole number"),
        ):
            refused = await browser.get(path, params={"plan": plan, "quantity": quantity})
            assert refused.status_code in (400, 409), refused.text
            assert words in visible_text(refused.text)
    assert (await world.subscription(sub["id"]))["plan"] == basic


# --- cancel and undo -----------------------------------------------------------------------------------------------


async def test_cancel_at_the_period_end_with_a_reason_then_undo_it(
    api: httpx.AsyncClient, app: Any, services: Services
) -> None:
    world = await world_at(api, services)
    customer, _, _, sub = await plans_and_subscription(api, world)
    link = await portal_link(api, customer)
    async with visitor(app) as browser:
        await sign_in(browser, link["url"])
        page = await browser.get(f"/portal/subscriptions/{sub['id']}/cancel")
        words = visible_text(page.text)
        assert (
            "Your Basic subscription stays active until Apr 1, 2027, and you will not be charged again."
            in words
        )
        assert (
            "It is too expensive" in words and "Now" not in words
        )  # immediate cancel is not allowed by default
        fields = form(page.text, f"/portal/subscriptions/{sub['id']}/cancel")
        # Asking for "now" where the merchant does not allow it still cancels at the period end.
        done = await browser.post(
            f"/portal/subscriptions/{sub['id']}/cancel",
            data={**fields, "when": "now", "reason": "too_expensive", "comment": "  Too pricey for us  "},
        )
        assert done.status_code == 303
        overview = await browser.get(done.headers["location"])
        words = visible_text(overview.text)
        assert "Your subscription will end on Apr 1, 2027. You can undo this until then." in words
        assert "Ends on Apr 1, 2027: it will not renew." in words
        assert "Reason you gave: It is too expensive" in words
        canceled = await world.subscription(sub["id"])
        assert canceled["status"] == "active" and canceled["cancel_at_period_end"] is True
        assert canceled["cancellation_details"] == {"reason": "too_expensive", "comment": "Too pricey for us"}

        renewed = await browser.post(
            f"/portal/subscriptions/{sub['id']}/renew",
            data=form(overview.text, f"/portal/subscriptions/{sub['id']}/renew"),
        )
        assert renewed.status_code == 303
        assert "Your subscription will keep renewing as before." in visible_text(
            (await browser.get(renewed.headers["location"])).text
        )
    back = await world.subscription(sub["id"])
    assert back["cancel_at_period_end"] is False and back["cancellation_details"] is None
    assert back["canceled_at"] is None
    events = (await world.get("/v1/events", limit=5))["data"]
    assert events[0]["type"] == "subscription.updated"
    assert events[0]["data"]["previous_attributes"]["cancel_at_period_end"] is True


async def test_cancel_now_only_where_the_merchant_allows_it(
    api: httpx.AsyncClient, app: Any, services: Services
) -> None:
    world = await world_at(api, services)
    patched = await api.patch(
        "/v1/settings", json={"portal": {"cancel_mode": "at_period_end_or_now", "cancel_now_prorate": True}}
    )
    assert patched.status_code == 200 and patched.json()["portal"]["cancel_mode"] == "at_period_end_or_now"
    customer, _, _, sub = await plans_and_subscription(api, world)
    at = T0 + timedelta(days=10)
    await world.advance(at)
    credit, _ = prorations(sub, at, 1000, 0)
    link = await portal_link(api, customer, flow={"type": "subscription_cancel", "subscription": sub["id"]})
    async with visitor(app) as browser:
        landing = await sign_in(browser, link["url"])
        assert landing == f"/portal/subscriptions/{sub['id']}/cancel"
        page = await browser.get(landing)
        assert "Ended now, the unused time is credited to your account balance." in visible_text(page.text)
        done = await browser.post(
            landing, data={**form(page.text, landing), "when": "now", "reason": "switched_service"}
        )
        assert "Your subscription was cancelled." in visible_text(
            (await browser.get(done.headers["location"])).text
        )
    ended = await world.subscription(sub["id"])
    assert ended["status"] == "canceled"
    assert ended["cancellation_details"] == {"reason": "switched_service", "comment": None}
    assert (await world.get(f"/v1/customers/{customer}"))["balance"] == credit


async def test_cancelling_is_hidden_and_refused_when_the_merchant_turned_it_off(
    api: httpx.AsyncClient, app: Any, services: Services
) -> None:
    world = await world_at(api, services)
    await api.patch("/v1/settings", json={"portal": {"cancel_mode": "disabled"}})
    customer, _, _, sub = await plans_and_subscription(api, world)
    refused = await api.post(
        "/v1/portal_sessions",
        json={"customer": customer, "flow": {"type": "subscription_cancel", "subscription": sub["id"]}},
    )
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "portal_feature_disabled"
    link = await portal_link(api, customer)
    async with visitor(app) as browser:
        await sign_in(browser, link["url"])
        overview = await browser.get("/portal/")
        assert f"/portal/subscriptions/{sub['id']}/cancel" not in overview.text
        page = await browser.get(f"/portal/subscriptions/{sub['id']}/cancel")
        assert page.status_code == 409
        posted = await browser.post(
            f"/portal/subscriptions/{sub['id']}/cancel",
            data={**form(overview.text, "/portal/logout"), "form_key": "k" * 20},
        )
        assert posted.status_code == 409
    assert (await world.subscription(sub["id"]))["cancel_at_period_end"] is False


# --- paying invoices ---------------------------------------------------------------------------------------------


async def open_send_invoice(
    api: httpx.AsyncClient, world: Billing, **customer: Any
) -> tuple[str, dict[str, Any]]:
    """A customer whose send_invoice subscription left an open invoice of $25.00, due in 7 days."""
    cus = await world.customer(email="ada@example.com", **customer)
    plan = await world.plan(2500, name="Team")
    sub = await world.subscribe(cus, plan)
    invoice = await world.get(f"/v1/invoices/{sub['latest_invoice']}")
    assert invoice["status"] == "open" and invoice["amount_remaining"] == 2500
    return cus, invoice


async def test_an_open_invoice_is_paid_once_with_a_new_card_however_often_the_form_is_sent(
    api: httpx.AsyncClient, app: Any, services: Services
) -> None:
    world = await world_at(api, services)
    customer, invoice = await open_send_invoice(api, world)
    link = await portal_link(api, customer)
    async with visitor(app) as browser:
        await sign_in(browser, link["url"])
        listed = await browser.get("/portal/invoices")
        words = visible_text(listed.text)
        assert "You have 1 invoice to pay." in words
        assert f"{invoice['number']} Mar 1, 2027 Open $25.00 $25.00 to pay" in words
        assert f'href="/i/{invoice["hosted_invoice_url"].rsplit("/", 1)[1]}/pdf?locale=en"' in listed.text
        pay = await browser.get(f"/portal/invoices/{invoice['id']}/pay")
        words = visible_text(pay.text)
        assert f"Pay invoice {invoice['number']}" in words and "Amount to pay $25.00" in words
        assert "Due date Mar 8, 2027" in words and "Pay $25.00" in words
        fields = {
            **form(pay.text, f"/portal/invoices/{invoice['id']}/pay"),
            "payment_method": "new",
            "number": GOOD,
            "exp_month": "12",
            "exp_year": str(FUTURE_YEAR),
            "cvc": "123",
            "save_default": "1",
        }
        responses = await asyncio.gather(
            *(browser.post(f"/portal/invoices/{invoice['id']}/pay", data=fields) for _ in range(3))
        )
        assert {r.status_code for r in responses} == {303}
        assert len({r.headers["location"] for r in responses}) == 1
        shown = await browser.get(responses[0].headers["location"])
        assert (
            f"Thank you: invoice {invoice['number']} is paid ($25.00 charged to Visa •••• 4242)."
            in visible_text(shown.text)
        )
    payments = (await world.get("/v1/payments", invoice=invoice["id"]))["data"]
    assert [(p["status"], p["amount"]) for p in payments] == [("succeeded", 2500)]
    assert (await world.get(f"/v1/invoices/{invoice['id']}"))["status"] == "paid"
    methods = (await world.get("/v1/payment_methods", customer=customer))["data"]
    assert len(methods) == 1  # one card attached, once
    assert (await world.get(f"/v1/customers/{customer}"))["default_payment_method"] == methods[0]["id"]


async def test_a_declined_card_says_why_in_the_customers_language_and_the_invoice_stays_open(
    api: httpx.AsyncClient, app: Any, services: Services
) -> None:
    world = await world_at(api, services)
    customer, invoice = await open_send_invoice(api, world, locale="zh-CN")
    saved = await attach(api, customer, DECLINES)
    link = await portal_link(api, customer, flow={"type": "invoice_pay", "invoice": invoice["id"]})
    async with visitor(app) as browser:
        landing = await sign_in(browser, link["url"])
        assert landing == f"/portal/invoices/{invoice['id']}/pay"
        page = await browser.get(landing)
        assert "Visa •••• 0341" in visible_text(page.text)
        done = await browser.post(landing, data={**form(page.text, landing), "payment_method": saved})
        shown = await browser.get(done.headers["location"])
        assert "付款失败：您的银行卡被拒绝。" in visible_text(shown.text)
        assert "支付 US$25.00" in visible_text(shown.text)  # the form is there to try another card
    assert (await world.get(f"/v1/invoices/{invoice['id']}"))["status"] == "open"


async def test_card_attempts_are_limited_per_link(
    api: httpx.AsyncClient, app: Any, services: Services
) -> None:
    world = await world_at(api, services)
    customer = await world.customer(email="ada@example.com")
    link = await portal_link(api, customer)
    async with visitor(app) as browser:
        await sign_in(browser, link["url"])
        page = await browser.get("/portal/payment_methods")
        for attempt in range(5):
            refused = await browser.post(
                "/portal/payment_methods",
                data={
                    **form(page.text, "/portal/payment_methods"),
                    "number": "4242424242424241",  # fails the Luhn check
                    "exp_month": "12",
                    "exp_year": str(FUTURE_YEAR),
                },
            )
            assert refused.status_code == 400, attempt
            assert "The card could not be added: the card number is" in visible_text(refused.text)
            page = refused
        assert "0 more card attempts are allowed from this link within the hour." in visible_text(page.text)
        limited = await browser.post(
            "/portal/payment_methods",
            data={
                **form(page.text, "/portal/payment_methods"),
                "number": GOOD,
                "exp_month": "12",
                "exp_year": str(FUTURE_YEAR),
            },
        )
        assert limited.status_code == 429
        assert "Too many card attempts from this link." in visible_text(limited.text)
    assert (await world.get("/v1/payment_methods", customer=customer))["data"] == []


async def test_a_new_card_pays_the_past_due_invoice_at_once(
    api: httpx.AsyncClient, app: Any, services: Services
) -> None:
    world = await world_at(api, services)
    customer, sub, invoice = await past_due(api, world)
    invoice_id, number = invoice["id"], invoice["number"]
    link = await portal_link(api, customer, flow={"type": "payment_method_update"})
    async with visitor(app) as browser:
        landing = await sign_in(browser, link["url"])
        assert landing == "/portal/payment_methods"
        page = await browser.get(landing)
        added = await browser.post(
            landing,
            data={
                **form(page.text, landing),
                "number": GOOD,
                "exp_month": "11",
                "exp_year": str(FUTURE_YEAR),
                "cvc": "123",
            },
        )
        assert added.status_code == 303
        shown = visible_text((await browser.get(added.headers["location"])).text)
        assert (
            f"Your card was added and is now your default. Invoice {number} ($25.00) was paid with it."
            in shown
        )
        assert GOOD not in shown
    assert (await world.get(f"/v1/invoices/{invoice_id}"))["status"] == "paid"
    assert (await world.subscription(sub["id"]))["status"] == "active"


async def test_the_hosted_invoice_page_pays_through_a_session_that_sees_that_invoice_only(
    api: httpx.AsyncClient, app: Any, services: Services
) -> None:
    world = await world_at(api, services)
    customer, invoice = await open_send_invoice(api, world)
    saved = await attach(api, customer)
    other_customer, other_invoice = await open_send_invoice(api, world)
    hosted = path_of(invoice["hosted_invoice_url"])
    async with visitor(app) as browser:
        page = await browser.get(hosted)
        token = hosted.rsplit("/", 1)[1]
        assert f'href="/portal/pay/{token}?locale=en"' in page.text and "Pay this invoice online" in page.text
        entered = await browser.get(f"/portal/pay/{token}", params={"locale": "en"})
        assert (
            entered.status_code == 303
            and entered.headers["location"] == f"/portal/invoices/{invoice['id']}/pay"
        )
        pay = await browser.get(entered.headers["location"])
        words = visible_text(pay.text)
        assert "Visa •••• 4242" not in words and "Save this card" not in words  # no saved cards, nothing kept
        assert "Overview" not in words  # no way into the rest of the portal
        # Everything else of the customer is out of reach of this session.
        assert (await browser.get("/portal/")).headers["location"] == f"/portal/invoices/{invoice['id']}/pay"
        for path in (
            "/portal/payment_methods",
            "/portal/invoices",
            "/portal/billing",
            f"/portal/invoices/{other_invoice['id']}/pay",
        ):
            assert (await browser.get(path)).status_code == 404, path
        fields = form(pay.text, f"/portal/invoices/{invoice['id']}/pay")
        # A saved card cannot be charged from here: only a card the payer types in.
        with_saved = await browser.post(
            f"/portal/invoices/{invoice['id']}/pay", data={**fields, "payment_method": saved}
        )
        assert with_saved.status_code == 400 and "Fill in the card number" in visible_text(with_saved.text)
        assert (await world.get("/v1/payments", invoice=invoice["id"]))["data"] == []
        paid = await browser.post(
            f"/portal/invoices/{invoice['id']}/pay",
            data={
                **form(pay.text, f"/portal/invoices/{invoice['id']}/pay"),
                "payment_method": "new",
                "number": "5555555555554444",
                "exp_month": "10",
                "exp_year": str(FUTURE_YEAR),
            },
        )
        shown = visible_text((await browser.get(paid.headers["location"])).text)
        assert (
            f"Thank you: invoice {invoice['number']} is paid ($25.00 charged to Mastercard •••• 4444)."
            in shown
        )
        assert "Back to the invoice" in shown
    payments = (await world.get("/v1/payments", invoice=invoice["id"]))["data"]
    assert [p["payment_method_details"]["card"]["last4"] for p in payments] == ["4444"]
    assert (await world.get(f"/v1/customers/{customer}"))["default_payment_method"] == saved
    assert (await world.get(f"/v1/invoices/{other_invoice['id']}"))["status"] == "open"
    # Paid: the hosted page offers nothing more to pay, and its pay link only leads back.
    async with visitor(app) as browser:
        assert "Pay this invoice online" not in (await browser.get(hosted)).text
        again = await browser.get(f"/portal/pay/{hosted.rsplit('/', 1)[1]}")
        assert again.status_code == 303 and again.headers["location"] == hosted
    assert other_customer


# --- what keeps a form from doing harm ---------------------------------------------------------------------------


async def test_another_customers_ids_are_not_found_in_every_page_and_form(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient, app: Any, services: Services
) -> None:
    world = await world_at(api, services)
    customer, _, pro, _ = await plans_and_subscription(api, world)
    own_pm = (await world.get(f"/v1/customers/{customer}"))["default_payment_method"]
    # Another customer of the same merchant, with a subscription, an open invoice and a card ...
    eve, eve_invoice = await open_send_invoice(api, world)
    eve_pm = await attach(api, eve, default=False)
    eve_sub = eve_invoice["subscription"]
    # ... and a customer of another merchant.
    stranger = (await other_api.post("/v1/customers", json={"email": "x@example.com"})).json()["id"]
    stranger_pm = (
        await other_api.post(
            "/v1/payment_methods",
            json={"customer": stranger, "card": {"number": GOOD, "exp_month": 1, "exp_year": FUTURE_YEAR}},
        )
    ).json()["id"]
    missing_sub, missing_invoice = "sub_" + "0" * 24, "in_" + "0" * 24
    link = await portal_link(api, customer)
    async with visitor(app) as browser:
        await sign_in(browser, link["url"])
        home = await browser.get("/portal/")
        fields = {**form(home.text, "/portal/logout")}
        for sub_id in (eve_sub, missing_sub, "not-an-id"):
            for path in (
                f"/portal/subscriptions/{sub_id}/change",
                f"/portal/subscriptions/{sub_id}/cancel",
                f"/portal/subscriptions/{sub_id}/change/preview?plan={pro}&quantity=1",
            ):
                assert (await browser.get(path)).status_code == 404, path
            for path, extra in (
                (f"/portal/subscriptions/{sub_id}/change", {"plan": pro, "quantity": "1", "expected": "0"}),
                (f"/portal/subscriptions/{sub_id}/cancel", {"when": "period_end"}),
                (f"/portal/subscriptions/{sub_id}/renew", {}),
            ):
                posted = await browser.post(path, data={**fields, "form_key": secrets_key(), **extra})
                assert posted.status_code == 404, path
        for invoice_id in (eve_invoice["id"], missing_invoice):
            assert (await browser.get(f"/portal/invoices/{invoice_id}/pay")).status_code == 404
            posted = await browser.post(
                f"/portal/invoices/{invoice_id}/pay",
                data={**fields, "form_key": secrets_key(), "payment_method": own_pm},
            )
            assert posted.status_code == 404
        for pm in (eve_pm, stranger_pm, "pm_" + "0" * 24):
            for action in ("default", "remove"):
                posted = await browser.post(
                    f"/portal/payment_methods/{pm}/{action}", data={**fields, "form_key": secrets_key()}
                )
                assert posted.status_code == 404, (pm, action)
        # This customer's invoice, paid with someone else's card: not found, nothing charged.
        _, own_invoice = await open_send_invoice_for(api, world, customer)
        for pm in (eve_pm, stranger_pm):
            posted = await browser.post(
                f"/portal/invoices/{own_invoice['id']}/pay",
                data={**fields, "form_key": secrets_key(), "payment_method": pm},
            )
            assert posted.status_code == 404
        assert (
            await browser.post("/portal/billing/tax_ids/0/remove", data={**fields, "form_key": secrets_key()})
        ).status_code == 404
    # Nothing of anyone changed.
    assert (await world.subscription(eve_sub))["cancel_at_period_end"] is False
    assert (await world.get(f"/v1/invoices/{eve_invoice['id']}"))["status"] == "open"
    assert (await world.get(f"/v1/payment_methods/{eve_pm}"))["customer"] == eve
    assert (await other_api.get(f"/v1/payment_methods/{stranger_pm}")).json()["customer"] == stranger
    assert (await world.get("/v1/payments", invoice=own_invoice["id"]))["data"] == []
    assert (await world.get(f"/v1/customers/{customer}"))["default_payment_method"] == own_pm


def secrets_key() -> str:
    return secrets.token_urlsafe(18)


async def open_send_invoice_for(
    api: httpx.AsyncClient, world: Billing, customer: str
) -> tuple[str, dict[str, Any]]:
    plan = await world.plan(700, name="Extra")
    sub = await world.subscribe(customer, plan)
    return customer, await world.get(f"/v1/invoices/{sub['latest_invoice']}")


async def test_a_form_without_this_logins_csrf_token_changes_nothing(
    api: httpx.AsyncClient, app: Any, services: Services
) -> None:
    world = await world_at(api, services)
    customer, _, _, sub = await plans_and_subscription(api, world)
    path = f"/portal/subscriptions/{sub['id']}/cancel"
    async with visitor(app) as other_browser:
        await sign_in(other_browser, (await portal_link(api, customer))["url"])
        foreign_csrf = form((await other_browser.get(path)).text, path)["csrf"]
    async with visitor(app) as browser:
        await sign_in(browser, (await portal_link(api, customer))["url"])
        fields = form((await browser.get(path)).text, path)
        for csrf in (None, "", "guess", foreign_csrf):
            data = {k: v for k, v in fields.items() if k != "csrf"} | (
                {"csrf": csrf} if csrf is not None else {}
            )
            refused = await browser.post(path, data={**data, "when": "period_end"})
            assert refused.status_code == 403, csrf
            assert "This form is out of date" in visible_text(refused.text)
        assert (await world.subscription(sub["id"]))["cancel_at_period_end"] is False
        # Without a form key the form is refused too (a double submit could not be told apart).
        assert (
            await browser.post(path, data={"csrf": fields["csrf"], "when": "period_end"})
        ).status_code == 403
        assert (await browser.post(path, data={**fields, "when": "period_end"})).status_code == 303
    assert (await world.subscription(sub["id"]))["cancel_at_period_end"] is True


async def test_pages_allow_nothing_from_other_hosts_and_are_never_cached(
    api: httpx.AsyncClient, app: Any, services: Services
) -> None:
    world = await world_at(api, services)
    customer, _, _, sub = await plans_and_subscription(api, world)
    async with visitor(app) as browser:
        await sign_in(browser, (await portal_link(api, customer))["url"])
        for path in (
            "/portal/",
            "/portal/payment_methods",
            "/portal/invoices",
            "/portal/billing",
            f"/portal/subscriptions/{sub['id']}/change",
        ):
            page = await browser.get(path)
            assert page.status_code == 200, path
            csp = page.headers["content-security-policy"]
            assert (
                "default-src 'none'" in csp
                and "frame-ancestors 'none'" in csp
                and "form-action 'self'" in csp
            )
            assert "http" not in csp and "unsafe" not in csp and "script-src" not in csp
            nonce = csp.split("'nonce-")[1].split("'")[0]
            assert f'<style nonce="{nonce}">' in page.text and "<script" not in page.text
            assert page.headers["cache-control"] == "private, no-store"
            assert page.headers["referrer-policy"] == "no-referrer"
            assert page.headers["x-frame-options"] == "DENY"
        css = await browser.get("/portal/static/portal.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


# --- payment methods, billing details, language --------------------------------------------------------------------


async def test_choosing_and_removing_payment_methods(
    api: httpx.AsyncClient, app: Any, services: Services
) -> None:
    world = await world_at(api, services)
    customer, _, _, _ = await plans_and_subscription(api, world)
    first = (await world.get(f"/v1/customers/{customer}"))["default_payment_method"]
    second = await attach(api, customer, "5555555555554444", default=False)
    async with visitor(app) as browser:
        await sign_in(browser, (await portal_link(api, customer))["url"])
        page = await browser.get("/portal/payment_methods")
        # The default card pays a subscription: no remove button, and it cannot be removed before another one
        # is the default.
        assert f"/portal/payment_methods/{first}/remove" not in page.text
        refused = await browser.post(
            f"/portal/payment_methods/{first}/remove",
            data={**form(page.text, f"/portal/payment_methods/{second}/remove"), "form_key": secrets_key()},
        )
        assert refused.status_code == 409
        assert "Make another one the default before you remove it." in visible_text(refused.text)
        made = await browser.post(
            f"/portal/payment_methods/{second}/default",
            data=form(page.text, f"/portal/payment_methods/{second}/default"),
        )
        assert "Your default payment method was changed." in visible_text(
            (await browser.get(made.headers["location"])).text
        )
        page = await browser.get("/portal/payment_methods")
        removed = await browser.post(
            f"/portal/payment_methods/{first}/remove",
            data=form(page.text, f"/portal/payment_methods/{first}/remove"),
        )
        assert "The payment method was removed." in visible_text(
            (await browser.get(removed.headers["location"])).text
        )
    assert (await world.get(f"/v1/customers/{customer}"))["default_payment_method"] == second
    assert [pm["id"] for pm in (await world.get("/v1/payment_methods", customer=customer))["data"]] == [
        second
    ]


async def test_billing_details_are_saved_and_printed_on_later_invoices_only(
    api: httpx.AsyncClient, app: Any, services: Services
) -> None:
    world = await world_at(api, services)
    customer, before = await open_send_invoice(api, world, name="Ada")
    async with visitor(app) as browser:
        await sign_in(browser, (await portal_link(api, customer))["url"])
        page = await browser.get("/portal/billing")
        fields = form(page.text, "/portal/billing")
        refused = await browser.post(
            "/portal/billing", data={**fields, "name": "Ada Ltd", "tax_type": "eu_vat", "tax_value": "12"}
        )
        assert refused.status_code == 400
        assert "That EU VAT number does not look right: it should look like DE123456789." in visible_text(
            refused.text
        )
        no_country = await browser.post("/portal/billing", data={**fields, "line1": "1 Main St"})
        assert no_country.status_code == 400 and "Choose the country" in visible_text(no_country.text)
        saved = await browser.post(
            "/portal/billing",
            data={
                **fields,
                "name": "Ada Ltd",
                "email": "billing@ada.example",
                "line1": "Unter den Linden 1",
                "city": "Berlin",
                "postal_code": "10117",
                "country": "DE",
                "tax_type": "eu_vat",
                "tax_value": "de 123 456 789",
            },
        )
        assert saved.status_code == 303
        shown = visible_text((await browser.get(saved.headers["location"])).text)
        assert "Your billing details were saved." in shown and "EU VAT number DE123456789" in shown
    now = await world.get(f"/v1/customers/{customer}")
    assert now["name"] == "Ada Ltd" and now["email"] == "billing@ada.example"
    assert now["address"] == {
        "line1": "Unter den Linden 1",
        "line2": None,
        "city": "Berlin",
        "state": None,
        "postal_code": "10117",
        "country": "DE",
    }
    assert now["tax_ids"] == [{"type": "eu_vat", "value": "DE123456789"}]
    # The invoice issued before keeps what it was issued to; the next one is issued to the new details.
    async with visitor(app) as browser:
        old_page = visible_text((await browser.get(path_of(before["hosted_invoice_url"]))).text)
        assert "Ada ada@example.com" in old_page and "Berlin" not in old_page
        plan = await world.plan(1200, name="Extra")
        later = await world.get(f"/v1/invoices/{(await world.subscribe(customer, plan))['latest_invoice']}")
        assert later["customer_details"]["address"]["city"] == "Berlin"
        new_page = visible_text((await browser.get(path_of(later["hosted_invoice_url"]))).text)
        assert (
            "Ada Ltd billing@ada.example Unter den Linden 1 Berlin, 10117 Germany EU VAT number: DE123456789"
            in new_page
        )
        chinese = visible_text(
            (await browser.get(path_of(later["hosted_invoice_url"]), params={"locale": "zh-CN"})).text
        )
        assert (
            "付款方 Ada Ltd billing@ada.example 德国 Berlin Unter den Linden 1 10117 欧盟增值税号：DE123456789"
            in chinese
        )


async def test_the_language_is_the_links_then_the_customers_and_the_switcher_changes_it(
    api: httpx.AsyncClient, app: Any, services: Services
) -> None:
    world = await world_at(api, services)
    customer, _, _, _ = await plans_and_subscription(api, world)  # the customer's locale: en
    async with visitor(app, **{"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}) as browser:
        await sign_in(browser, (await portal_link(api, customer))["url"])
        assert (
            "Your subscriptions" in (await browser.get("/portal/")).text
        )  # the customer's, not the browser's
    async with visitor(app, **{"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}) as browser:
        await sign_in(browser, (await portal_link(api, customer, locale="auto"))["url"])
        page = await browser.get("/portal/invoices")
        assert '<html lang="zh-CN">' in page.text and "发票" in page.text  # auto: the browser's
        switched = await browser.post(
            "/portal/locale", data={**form(page.text, "/portal/locale"), "locale": "en"}
        )
        assert switched.status_code == 303 and switched.headers["location"] == "/portal/invoices"
        page = await browser.get("/portal/invoices")
        assert '<html lang="en">' in page.text and "Invoices" in page.text
        # The switch goes back to a page of the portal only.
        away = await browser.post(
            "/portal/locale",
            data={**form(page.text, "/portal/locale"), "locale": "zh-CN", "next": "https://evil.example/"},
        )
        assert away.headers["location"] == "/portal/"
        assert '<html lang="zh-CN">' in (await browser.get("/portal/")).text
    async with visitor(app) as browser:
        await sign_in(browser, (await portal_link(api, customer, locale="zh-CN"))["url"])
        words = visible_text((await browser.get("/portal/")).text)
        assert "您的订阅" in words and "每月 US$10.00" in words and "2027年4月1日" in words


async def test_the_preview_explains_a_change_in_a_trial_and_a_change_of_billing_period(
    api: httpx.AsyncClient, app: Any, services: Services
) -> None:
    world = await world_at(api, services)
    customer = await world.customer(email="ada@example.com")
    await attach(api, customer)
    monthly = await world.plan(1000, name="Monthly", trial_period_days=14, portal_visible=True)
    yearly = await world.plan(10000, "year", name="Yearly", portal_visible=True)
    trial = await world.subscribe(customer, monthly, collection_method="charge_automatically")
    assert trial["status"] == "trialing"
    async with visitor(app) as browser:
        await sign_in(browser, (await portal_link(api, customer))["url"])
        path = f"/portal/subscriptions/{trial['id']}/change/preview"
        in_trial = visible_text((await browser.get(path, params={"plan": monthly, "quantity": "3"})).text)
        assert "Due today $0.00" in in_trial
        assert (
            "You are in your free trial: the new plan applies now, and your first invoice bills it."
            in in_trial
        )
        assert "Next invoice, on Mar 16, 2027 $30.00" in in_trial
    # After the trial: to the yearly plan, a new cycle today, the unused month credited on the same invoice.
    await world.advance(T0 + timedelta(days=20))
    sub = await world.subscription(trial["id"])
    assert sub["status"] == "active"
    at = T0 + timedelta(days=20)
    credit, _ = prorations(sub, at, 1000, 0)
    async with visitor(app) as browser:
        await sign_in(browser, (await portal_link(api, customer))["url"])
        words = visible_text(
            (
                await browser.get(
                    f"/portal/subscriptions/{sub['id']}/change/preview",
                    params={"plan": yearly, "quantity": "1"},
                )
            ).text
        )
        assert "The billing period changes, so a new billing cycle starts today." in words
        assert f"Credit for unused time on Monthly Mar 21 – Apr 16, 2027 {usd(credit)}" in words
        assert "Yearly, first period Mar 21, 2027 – Mar 21, 2028 $100.00" in words
        assert f"Due today {usd(10000 + credit)}" in words
        assert "Next invoice, on Mar 21, 2028 $100.00" in words
    assert (await world.subscription(sub["id"]))["plan"] == monthly
