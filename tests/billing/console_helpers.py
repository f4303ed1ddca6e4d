"""Helpers for console tests: a console user made with the use case the CLI calls, and a browser-like HTTP client
that logs in through the form (cookies kept, CSRF tokens read from the pages)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psutil
from sqlalchemy import select

from billing.clock import SYSTEM_CLOCK
from billing.config import Settings
from billing.console.models import AuditEntry
from billing.console.users import create_user
from billing.db.engine import transaction
from billing.services import Services
from tests.billing.payment_helpers import free_port, serving

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_FORM_KEY = re.compile(r'name="form_key" value="([^"]+)"')


async def console_user(services: Services, merchant_id: str, email: str, role: str = "finance") -> str:
    """A console user of the merchant; returns the generated password."""
    async with transaction(services.sessions) as session:
        _, password = await create_user(session, merchant_id, email, role, SYSTEM_CLOCK.now())
    return password


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match is not None, "the page has no form with a CSRF token"
    return match.group(1)


def form_key_of(html: str) -> str:
    match = _FORM_KEY.search(html)
    assert match is not None
    return match.group(1)


def web_client(app: Any, **headers: str) -> httpx.AsyncClient:
    """A client that keeps cookies, over https (the console's cookies are Secure outside development)."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 50000)),
        base_url="https://billing.test",
        headers=headers,
        follow_redirects=False,
    )


async def log_in(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    page = await client.get("/console/login")
    assert page.status_code == 200, page.text
    return await client.post(
        "/console/login", data={"email": email, "password": password, "csrf_token": csrf_of(page.text)}
    )


async def logged_in(app: Any, email: str, password: str) -> httpx.AsyncClient:
    client = web_client(app)
    response = await log_in(client, email, password)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/console/invoices"
    return client


async def post_form(client: httpx.AsyncClient, page_path: str, action: str, **fields: str) -> httpx.Response:
    """Post a form of the page at `page_path` as the browser would (with that page's CSRF token and form key)."""
    page = await client.get(page_path)
    assert page.status_code == 200, page.text
    data = {"csrf_token": csrf_of(page.text), **fields}
    key = _FORM_KEY.search(page.text)
    if key is not None:
        data.setdefault("form_key", key.group(1))
    return await client.post(action, data=data)


@contextmanager
def billing_serve(settings: Settings, **env_overrides: str) -> Iterator[tuple[str, psutil.Process]]:
    """A real `billing serve` on a free port against the test database; yields its URL and process."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url or "",
        "REDIS_URL": settings.redis_url or "",
        "BILLING_ENV": "test",
        "BILLING_LOG_LEVEL": "WARNING",
        "BILLING_DATA_DIR": str(settings.data_dir),
        **env_overrides,
    }
    url = f"http://127.0.0.1:{port}"
    with serving(["serve", "--port", str(port)], url, "/health", env, "billing serve") as process:
        yield url, psutil.Process(process.pid)


async def audit_entries(
    services: Services, merchant_id: str, object_id: str | None = None
) -> list[AuditEntry]:
    """The merchant's audit entries in the order they were written (optionally about one object)."""
    stmt = select(AuditEntry).where(AuditEntry.merchant_id == merchant_id).order_by(AuditEntry.seq)
    if object_id is not None:
        stmt = stmt.where(AuditEntry.object_id == object_id)
    async with services.sessions() as session:
        return list((await session.scalars(stmt)).all())


async def api_customer(api: httpx.AsyncClient, currency: str = "USD", **fields: Any) -> str:
    response = await api.post("/v1/customers", json={"currency": currency, **fields})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def api_invoice(
    api: httpx.AsyncClient, customer: str, *amounts: int, finalize: bool = True, **fields: Any
) -> dict[str, Any]:
    """An invoice with one line per amount, finalized unless told not to."""
    lines = [{"description": f"Service {i}", "amount": a} for i, a in enumerate(amounts)]
    response = await api.post("/v1/invoices", json={"customer": customer, "lines": lines, **fields})
    assert response.status_code == 200, response.text
    invoice: dict[str, Any] = response.json()
    if finalize:
        response = await api.post(f"/v1/invoices/{invoice['id']}/finalize")
        assert response.status_code == 200, response.text
        invoice = response.json()
    return invoice
