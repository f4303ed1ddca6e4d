"""Links people follow (hosted invoice, PDF, portal, emails) point where the server really listens when
BILLING_PUBLIC_URL is not set (issue #12 item 16): real `billing serve --port P` and `billing up --port P`."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import asyncpg
import httpx
import pytest

from billing.config import Settings
from billing.db.engine import asyncpg_url
from billing.runtime.listen import bind_socket, listening_url
from tests.billing.live import billing_up, create_merchant, free_port, serve, suite_env
from tests.conftest import Servers

GOOD = "4242424242424242"
DECLINES = "4000000000000341"  # attaches; every charge is declined card_declined (soft)


def _client(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _opens_on(link: str, origin: str) -> None:
    """The link answers on that server: a page, or (a portal link, single use) a redirect that stays on it. The
    redirect is not followed: outside development the portal's cookie is Secure, which a browser sends to
    http://127.0.0.1 and httpx does not."""
    page = httpx.get(link, timeout=60)
    assert page.status_code in (200, 303), (link, page.status_code)
    if page.status_code == 303:
        target = urljoin(link, page.headers["location"])
        assert target.startswith(origin + "/portal/"), (link, target)


def _customer_with_card(api: httpx.Client, number: str, **fields: Any) -> str:
    customer = _ok(
        api.post("/v1/customers", json={"email": "links@example.com", "currency": "USD", **fields})
    )
    card = {"number": number, "exp_month": 12, "exp_year": 2040, "cvc": "123"}
    pm = _ok(api.post("/v1/payment_methods", json={"customer": customer["id"], "card": card}))
    _ok(api.patch(f"/v1/customers/{customer['id']}", json={"default_payment_method": pm["id"]}))
    return str(customer["id"])


@pytest.fixture
def live(settings: Settings, servers: Servers) -> tuple[dict[str, str], dict[str, str]]:
    """The environment of a `billing serve` on the suite's database, and a merchant made with the CLI."""
    env = suite_env(settings, servers.redis_url)
    return env, create_merchant(env, "Links")


def test_serve_links_hosted_pdf_portal_and_email_to_the_port_it_listens_on(
    settings: Settings, live: tuple[dict[str, str], dict[str, str]]
) -> None:
    env, merchant = live
    port = free_port()
    assert port != 8000
    with serve(env, port=port) as url:
        assert url == f"http://127.0.0.1:{port}"
        api = _client(url, merchant["secret_key"])
        customer = _customer_with_card(api, DECLINES)
        invoice = _ok(
            api.post(
                "/v1/invoices", json={"customer": customer, "lines": [{"description": "x", "amount": 900}]}
            )
        )
        invoice = _ok(api.post(f"/v1/invoices/{invoice['id']}/finalize"))
        assert invoice["hosted_invoice_url"].startswith(f"{url}/i/")
        assert invoice["invoice_pdf"] == invoice["hosted_invoice_url"] + "/pdf"
        page = httpx.get(invoice["hosted_invoice_url"], timeout=60)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        pdf = httpx.get(invoice["invoice_pdf"], timeout=60)
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")

        portal = _ok(api.post("/v1/portal_sessions", json={"customer": customer}))
        assert portal["url"].startswith(f"{url}/portal/")
        _opens_on(portal["url"], url)

        # A declined charge queues the failed-payment email, written by this API process.
        assert api.post(f"/v1/invoices/{invoice['id']}/pay", json={}).status_code == 402
    bodies = asyncio.run(_email_bodies(settings.database_url, customer))
    assert len(bodies) == 1
    links = re.findall(r"https?://[^\s)>\"]+", bodies[0])
    assert links and all(link.startswith(f"{url}/") for link in links), links


async def _email_bodies(database_url: str, customer: str) -> list[str]:
    """The text of the emails queued for a customer, as the worker will send them."""
    connection = await asyncpg.connect(asyncpg_url(database_url).replace("+asyncpg", ""))
    try:
        rows = await connection.fetch("SELECT text_body FROM email_messages WHERE customer_id = $1", customer)
    finally:
        await connection.close()
    return [str(row["text_body"]) for row in rows]


def _eml_files(folder: Path) -> list[email.message.EmailMessage]:
    found = []
    for path in sorted(folder.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        found.append(message)
    return found


def test_up_links_emails_the_worker_writes_to_the_port_it_listens_on(
    tmp_path: Path, servers: Servers
) -> None:
    data_dir = tmp_path / "data"
    with billing_up(
        data_dir, admin_database_url=servers.admin_database_url, redis_url=servers.redis_url
    ) as up:
        api = _client(up.api, up.value("secret key:"))
        clock = _ok(api.post("/v1/test_clocks", json={"frozen_time": "2027-01-15T00:00:00Z"}))
        customer = _customer_with_card(api, GOOD, test_clock=clock["id"])
        plan = _ok(
            api.post(
                "/v1/plans",
                json={
                    "code": "links",
                    "name": "Links",
                    "currency": "USD",
                    "interval": "month",
                    "amount": 1500,
                },
            )
        )
        sub = _ok(api.post("/v1/subscriptions", json={"customer": customer, "plan": plan["id"]}))
        assert sub["status"] == "active"
        # From now on the card declines: the renewal the worker runs on Feb 15 fails and emails the customer.
        card = {"number": DECLINES, "exp_month": 12, "exp_year": 2040, "cvc": "123"}
        pm = _ok(api.post("/v1/payment_methods", json={"customer": customer, "card": card}))
        _ok(api.patch(f"/v1/customers/{customer}", json={"default_payment_method": pm["id"]}))
        _ok(api.post(f"/v1/test_clocks/{clock['id']}/advance", json={"frozen_time": "2027-02-15T12:00:00Z"}))
        folder = data_dir / "outbox-mail"
        deadline = time.monotonic() + 180
        while not (folder.exists() and _eml_files(folder)) and time.monotonic() < deadline:
            time.sleep(0.5)
        messages = _eml_files(folder)
        assert len(messages) == 1, [m["Subject"] for m in messages]
        body = messages[0].get_body(preferencelist=("plain",))
        assert body is not None
        links = re.findall(r"https?://[^\s)>\"]+", body.get_content())
        assert links and all(link.startswith(f"{up.api}/") for link in links), links
        assert any("/portal/" in link for link in links)
        for link in links:
            _opens_on(link, up.api)
        # The banner says where links point.
        assert f"Links:    {up.api}" in "\n".join(up.printed)


def test_a_wildcard_address_links_to_loopback_and_a_configured_url_wins(
    live: tuple[dict[str, str], dict[str, str]],
) -> None:
    env, merchant = live
    port = free_port()
    with serve(env, host="0.0.0.0", port=port) as url:
        api = _client(url, merchant["secret_key"])
        customer = _ok(api.post("/v1/customers", json={"email": "w@example.com"}))["id"]
        portal = _ok(api.post("/v1/portal_sessions", json={"customer": customer}))
        assert portal["url"].startswith(f"http://127.0.0.1:{port}/portal/")
    with serve({**env, "BILLING_PUBLIC_URL": "https://billing.example.com/"}) as url:
        api = _client(url, merchant["secret_key"])
        portal = _ok(api.post("/v1/portal_sessions", json={"customer": customer}))
        assert portal["url"].startswith("https://billing.example.com/portal/")


def test_listening_urls() -> None:
    assert listening_url("127.0.0.1", 9000) == "http://127.0.0.1:9000"
    assert listening_url("0.0.0.0", 9000) == "http://127.0.0.1:9000"
    assert listening_url("::", 9000) == "http://[::1]:9000"
    assert listening_url("::1", 9000) == "http://[::1]:9000"
    assert listening_url("192.0.2.7", 80) == "http://192.0.2.7:80"
    assert listening_url("billing.internal", 8080) == "http://billing.internal:8080"
    with bind_socket("127.0.0.1", 0) as sock:
        assert sock.getsockname()[1] > 0
