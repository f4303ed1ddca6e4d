"""A renewal charged on a test clock whose gateway times out (issue #13, item 7): the payment stays pending, the
invoice's collection looks at it again with backoff (not every clock minute), and once the janitor settles the
payment the invoice's outcome follows at once (hook `payment_settled`), without another clock advance. Through the
API, with the hanging test card on a standalone sandbox gateway reached over HTTP."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from billing.clock import utc_now
from billing.payments.janitor import run_janitor
from billing.scheduler.models import ScheduledTask
from billing.services import Services
from billing.test_clocks.advance import run_due_tasks
from tests.billing.payment_helpers import configure_gateways, sandbox_admin, set_mode, standalone_sandbox
from tests.billing.world import run_worker

pytestmark = pytest.mark.timeout(300)

GOOD = "4242424242424242"
HANGS = "4000002760003184"  # charged, then the answer never comes (the sandbox waits hang_ms)
T0 = datetime(2027, 3, 1, tzinfo=UTC)
RENEWAL = datetime(2027, 4, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    with standalone_sandbox() as url:
        yield url


async def call(api: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    response = await api.request(method, path, json=body)
    assert response.status_code == 200, f"{method} {path}: {response.text}"
    return response.json()


async def collection_tasks(services: Services, invoice_id: str) -> dict[str, int]:
    async with services.sessions() as session:
        rows = await session.execute(
            select(ScheduledTask.status, func.count())
            .where(
                ScheduledTask.kind == "invoice.collect", ScheduledTask.payload["invoice"].astext == invoice_id
            )
            .group_by(ScheduledTask.status)
        )
        return {status: int(count) for status, count in rows}


async def test_a_pending_renewal_is_looked_at_with_backoff_and_paid_once_the_janitor_settles_it(
    api: httpx.AsyncClient, services: Services, sandbox_url: str
) -> None:
    await sandbox_admin(sandbox_url, "/admin/reset", {})
    await set_mode(sandbox_url, "normal", hang_ms=1500)
    await configure_gateways(api, {"id": "slow", "type": "sandbox", "url": sandbox_url, "timeout_ms": 400})
    clock = (await call(api, "POST", "/v1/test_clocks", {"frozen_time": T0.isoformat()}))["id"]
    customer = (await call(api, "POST", "/v1/customers", {"test_clock": clock, "currency": "USD"}))["id"]

    async def make_default(number: str) -> None:
        card = {"number": number, "exp_month": 12, "exp_year": 2040, "cvc": "123"}
        pm = (await call(api, "POST", "/v1/payment_methods", {"customer": customer, "card": card}))["id"]
        await call(api, "PATCH", f"/v1/customers/{customer}", {"default_payment_method": pm})

    await make_default(GOOD)
    plan = await call(
        api,
        "POST",
        "/v1/plans",
        {"code": "p" + secrets.token_hex(4), "name": "Team", "currency": "USD", "amount": 2500},
    )
    sub = await call(api, "POST", "/v1/subscriptions", {"customer": customer, "plan": plan["id"]})
    assert sub["status"] == "active"
    await make_default(HANGS)

    # Twelve hours of clock time past the renewal: its charge timed out, and nobody asked the gateway yet.
    await call(
        api,
        "POST",
        f"/v1/test_clocks/{clock}/advance",
        {"frozen_time": (RENEWAL + timedelta(hours=12)).isoformat()},
    )
    await run_worker(services)
    assert (await call(api, "GET", f"/v1/test_clocks/{clock}"))["status"] == "ready"
    invoice_id = (await call(api, "GET", f"/v1/subscriptions/{sub['id']}"))["latest_invoice"]
    invoice = await call(api, "GET", f"/v1/invoices/{invoice_id}")
    assert (invoice["status"], invoice["billing_reason"]) == ("open", "subscription_cycle")
    payments = (await call(api, "GET", f"/v1/payments?invoice={invoice_id}"))["data"]
    assert [(p["status"], p["amount"]) for p in payments] == [("pending", 2500)]
    # The first charge at the renewal, then looks 1, 3, 7, 15, 31, 63 minutes after it and hourly from then on
    # (123, 183, ... 663 minutes): 16 looks in 12 hours, the 17th (723 minutes) still to come. Looking every
    # clock minute made 720.
    assert await collection_tasks(services, invoice_id) == {"done": 17, "pending": 1}

    # Still pending: a tick changes nothing.
    await run_due_tasks(services)
    assert (await call(api, "GET", f"/v1/invoices/{invoice_id}"))["status"] == "open"

    # The janitor asks the gateway, which took the charge: the payment succeeded, and the invoice's collection runs
    # at the clock's current time on the next tick, without another advance.
    report = await run_janitor(services, now=utc_now() + timedelta(hours=2))
    assert report.payments_settled >= 1
    await run_due_tasks(services)
    invoice = await call(api, "GET", f"/v1/invoices/{invoice_id}")
    assert (invoice["status"], invoice["amount_paid"], invoice["attempt_count"]) == ("paid", 2500, 1)
    clock_now = await call(api, "GET", f"/v1/test_clocks/{clock}")
    assert datetime.fromisoformat(clock_now["frozen_time"]) == RENEWAL + timedelta(hours=12)
    payments = (await call(api, "GET", f"/v1/payments?invoice={invoice_id}"))["data"]
    assert [(p["status"], p["amount"]) for p in payments] == [("succeeded", 2500)]
    assert (await call(api, "GET", f"/v1/subscriptions/{sub['id']}"))["status"] == "active"
    # The look still planned finds the attempt recorded and charges nothing.
    await call(
        api,
        "POST",
        f"/v1/test_clocks/{clock}/advance",
        {"frozen_time": (RENEWAL + timedelta(hours=13)).isoformat()},
    )
    await run_worker(services)
    payments = (await call(api, "GET", f"/v1/payments?invoice={invoice_id}"))["data"]
    assert [(p["status"], p["amount"]) for p in payments] == [("succeeded", 2500)]
    assert (await call(api, "GET", f"/v1/invoices/{invoice_id}"))["attempt_count"] == 1
