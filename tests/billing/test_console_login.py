"""Console login (SPEC §10; issue #15 item 1): the login form, the session cookie, CSRF on every form, lockout
after five wrong passwords, logout, roles, and the audit entries they leave."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from billing.clock import SYSTEM_CLOCK
from billing.console.models import AuditEntry, ConsoleSession, ConsoleUser
from billing.console.users import LOCKOUT_DURATION, LOCKOUT_THRESHOLD, after_failed_login
from billing.merchants.models import ApiKey
from billing.merchants.service import NewMerchant
from billing.services import Services
from tests.billing.console_helpers import (
    audit_entries,
    console_user,
    csrf_of,
    log_in,
    logged_in,
    post_form,
    web_client,
)


async def _audit(services: Services, merchant_id: str) -> list[AuditEntry]:
    return await audit_entries(services, merchant_id)


async def test_login_sets_a_hardened_session_cookie_stored_hashed(
    app: Any, services: Services, merchant: NewMerchant
) -> None:
    password = await console_user(services, merchant.id, "Ana@Example.com")
    client = web_client(app)
    page = await client.get("/console/login")
    assert page.status_code == 200
    assert 'name="email"' in page.text and 'name="password"' in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    response = await client.post(
        "/console/login",
        data={"email": "ana@example.com", "password": password, "csrf_token": csrf_of(page.text)},
    )
    assert response.status_code == 303
    cookie = next(
        v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith("billing_console=")
    )
    token = cookie.split(";")[0].split("=", 1)[1]
    lowered = cookie.lower()
    assert (
        "httponly" in lowered
        and "samesite=lax" in lowered
        and "secure" in lowered
        and "path=/console" in lowered
    )
    async with services.sessions() as session:
        stored = (await session.scalars(select(ConsoleSession.token_hash))).all()
    assert token not in stored and len(token) == 43
    listing = await client.get("/console/invoices")
    assert listing.status_code == 200
    assert "ana@example.com" in listing.text
    entries = await _audit(services, merchant.id)
    assert [e.action for e in entries] == ["login.succeeded"]
    assert entries[0].actor == "ana@example.com" and entries[0].ip == "203.0.113.7"


async def test_pages_need_a_session(app: Any) -> None:
    client = web_client(app)
    for path in (
        "/console/invoices",
        "/console/reports/mrr",
        "/console/keys",
        "/console/audit",
        "/console/exports/invoices.csv",
    ):
        response = await client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/console/login")
    forged = web_client(app)
    forged.cookies.set("billing_console", "x" * 43, domain="billing.test", path="/console")
    assert (await forged.get("/console/invoices")).status_code == 303


async def test_wrong_passwords_lock_the_account_for_fifteen_minutes(
    app: Any, services: Services, merchant: NewMerchant
) -> None:
    password = await console_user(services, merchant.id, "bo@example.com")
    client = web_client(app)
    for attempt in range(1, LOCKOUT_THRESHOLD):
        response = await log_in(client, "bo@example.com", f"wrong-{attempt}")
        assert response.status_code == 401
        assert "Wrong email or password." in response.text
    locked = await log_in(client, "bo@example.com", "wrong-again")
    assert locked.status_code == 429
    assert "locked until" in locked.text
    # Even the right password is refused while the lock lasts.
    assert (await log_in(client, "bo@example.com", password)).status_code == 429
    async with services.sessions() as session:
        user = await session.scalar(select(ConsoleUser).where(ConsoleUser.email == "bo@example.com"))
    assert user is not None and user.locked_until is not None
    assert user.failed_logins == LOCKOUT_THRESHOLD
    assert timedelta(minutes=14) < user.locked_until - SYSTEM_CLOCK.now() <= LOCKOUT_DURATION
    # Once the lock has passed, the right password logs in and the count starts again.
    async with services.sessions() as session, session.begin():
        await session.execute(
            update(ConsoleUser)
            .where(ConsoleUser.id == user.id)
            .values(locked_until=SYSTEM_CLOCK.now() - timedelta(seconds=1))
        )
    assert (await log_in(client, "bo@example.com", password)).status_code == 303
    actions = [e.action for e in await _audit(services, merchant.id)]
    assert actions == ["login.failed"] * (LOCKOUT_THRESHOLD - 1) + [
        "login.locked",
        "login.refused_locked",
        "login.succeeded",
    ]


def test_the_lockout_rule() -> None:
    now = SYSTEM_CLOCK.now()
    state = after_failed_login(0, None, now)
    assert (state.failed_logins, state.locked_until) == (1, None)
    state = after_failed_login(LOCKOUT_THRESHOLD - 1, None, now)
    assert state.locked_until == now + LOCKOUT_DURATION
    # A failure after an expired lock counts from one again.
    state = after_failed_login(LOCKOUT_THRESHOLD, now - timedelta(seconds=1), now)
    assert (state.failed_logins, state.locked_until) == (1, None)


async def test_unknown_emails_and_forged_login_forms_are_refused(app: Any) -> None:
    client = web_client(app)
    assert (await log_in(client, "nobody@example.com", "whatever")).status_code == 401
    await client.get("/console/login")
    no_token = await client.post("/console/login", data={"email": "a@example.com", "password": "x"})
    assert no_token.status_code == 403
    wrong = await client.post(
        "/console/login", data={"email": "a@example.com", "password": "x", "csrf_token": "forged"}
    )
    assert wrong.status_code == 403
    assert "out of date" in wrong.text


async def test_csrf_missing_or_wrong_changes_nothing(
    app: Any, services: Services, merchant: NewMerchant, api: httpx.AsyncClient
) -> None:
    customer = (await api.post("/v1/customers", json={"currency": "USD", "email": "c@example.com"})).json()[
        "id"
    ]
    invoice = (
        await api.post(
            "/v1/invoices", json={"customer": customer, "lines": [{"description": "x", "amount": 900}]}
        )
    ).json()["id"]
    await api.post(f"/v1/invoices/{invoice}/finalize")
    client = await logged_in(
        app, "cf@example.com", await console_user(services, merchant.id, "cf@example.com")
    )
    missing = await client.post(f"/console/invoices/{invoice}/void", data={})
    assert missing.status_code == 403
    wrong = await client.post(f"/console/invoices/{invoice}/void", data={"csrf_token": "not-the-token"})
    assert wrong.status_code == 403
    assert "security token" in wrong.text
    assert (await api.get(f"/v1/invoices/{invoice}")).json()["status"] == "open"
    logout_forged = await client.post("/console/logout", data={"csrf_token": "nope"})
    assert logout_forged.status_code == 403
    assert (await client.get("/console/invoices")).status_code == 200


async def test_logout_ends_the_session(app: Any, services: Services, merchant: NewMerchant) -> None:
    client = await logged_in(
        app, "lo@example.com", await console_user(services, merchant.id, "lo@example.com")
    )
    cookie = client.cookies.get("billing_console")
    response = await post_form(client, "/console/invoices", "/console/logout")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login?logged_out=1"
    replay = web_client(app)
    replay.cookies.set("billing_console", cookie or "", domain="billing.test", path="/console")
    assert (await replay.get("/console/invoices")).status_code == 303
    assert "logout" in [e.action for e in await _audit(services, merchant.id)]


async def test_finance_users_cannot_touch_keys_or_settings(
    app: Any, services: Services, merchant: NewMerchant
) -> None:
    client = await logged_in(
        app, "fin@example.com", await console_user(services, merchant.id, "fin@example.com")
    )
    listing = await client.get("/console/invoices")
    assert "/console/keys" not in listing.text and "/console/settings" not in listing.text
    csrf = csrf_of(listing.text)
    assert (await client.get("/console/keys")).status_code == 403
    assert (await client.get("/console/settings")).status_code == 403
    assert (
        await client.post("/console/keys", data={"csrf_token": csrf, "kind": "secret"})
    ).status_code == 403
    settings = await client.post(
        "/console/settings", data={"csrf_token": csrf, "retry_schedule_days": "2", "final_action": "unpaid"}
    )
    assert settings.status_code == 403
    async with services.sessions() as session:
        count = len((await session.scalars(select(ApiKey).where(ApiKey.merchant_id == merchant.id))).all())
    assert count == 2  # the merchant's two original keys, nothing created


async def test_an_admin_changes_settings_with_an_audit_entry(
    app: Any, services: Services, merchant: NewMerchant, api: httpx.AsyncClient
) -> None:
    client = await logged_in(
        app, "adm@example.com", await console_user(services, merchant.id, "adm@example.com", "admin")
    )
    response = await post_form(
        client, "/console/settings", "/console/settings", retry_schedule_days="2, 4, 9", final_action="unpaid"
    )
    assert response.status_code == 303
    dunning = (await api.get("/v1/settings")).json()["dunning"]
    assert dunning == {"retry_schedule_days": [2, 4, 9], "final_action": "unpaid", "smart_retries": False}
    bad = await post_form(
        client, "/console/settings", "/console/settings", retry_schedule_days="9, 2", final_action="cancel"
    )
    assert bad.status_code == 400
    assert (await api.get("/v1/settings")).json()["dunning"]["retry_schedule_days"] == [2, 4, 9]
    entry = [e for e in await _audit(services, merchant.id) if e.action == "settings.updated"]
    assert len(entry) == 1
    assert entry[0].before is not None and entry[0].before["dunning"]["retry_schedule_days"] == [1, 3, 5, 7]
    assert entry[0].after is not None and entry[0].after["dunning"]["final_action"] == "unpaid"


async def test_the_language_follows_the_switcher_then_accept_language(
    app: Any, services: Services, merchant: NewMerchant
) -> None:
    password = await console_user(services, merchant.id, "zh@example.com")
    client = web_client(app, **{"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    page = await client.get("/console/login")
    assert "登录财务控制台" in page.text and 'lang="zh-CN"' in page.text
    await client.post(
        "/console/login",
        data={"email": "zh@example.com", "password": password, "csrf_token": csrf_of(page.text)},
    )
    assert "发票" in (await client.get("/console/invoices")).text
    switched = await post_form(
        client, "/console/invoices", "/console/locale", locale="en", next="/console/invoices"
    )
    assert switched.status_code == 303
    page = await client.get("/console/invoices")
    assert 'lang="en"' in page.text and "Invoices" in page.text
