"""A test-clock world for HTTP tests: one clock, helpers to create customers, plans and subscriptions, and to
advance time with a real worker in burst mode."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import httpx

from billing.services import Services
from billing.worker.settings import build_worker

T0 = datetime(2027, 1, 31, 10, 0, tzinfo=UTC)


async def run_worker(services: Services) -> None:
    worker = build_worker(services, burst=True, with_cron=False)
    try:
        await worker.main()
    finally:
        await worker.close()


class Billing:
    """A test-clock world: one clock, helpers to create things and to advance time."""

    def __init__(self, api: httpx.AsyncClient, services: Services) -> None:
        self.api = api
        self.services = services
        self.clock = ""

    async def post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.api.post(path, json=body or {})
        assert response.status_code == 200, response.text
        return response.json()

    async def get(self, path: str, **params: Any) -> dict[str, Any]:
        response = await self.api.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    async def start(self, at: datetime = T0) -> None:
        self.clock = (await self.post("/v1/test_clocks", {"frozen_time": at.isoformat()}))["id"]

    async def customer(self, **fields: Any) -> str:
        return (await self.post("/v1/customers", {"test_clock": self.clock, **fields}))["id"]

    async def plan(self, amount: int, interval: str = "month", count: int = 1, **fields: Any) -> str:
        body = {
            "code": "p" + secrets.token_hex(4),
            "name": fields.pop("name", "Pro"),
            "currency": "USD",
            "interval": interval,
            "interval_count": count,
            "amount": amount,
            **fields,
        }
        return (await self.post("/v1/plans", body))["id"]

    async def subscribe(self, customer: str, plan: str, **fields: Any) -> dict[str, Any]:
        body = {
            "customer": customer,
            "plan": plan,
            "collection_method": "send_invoice",
            "days_until_due": 7,
            **fields,
        }
        return await self.post("/v1/subscriptions", body)

    async def advance(self, to: datetime) -> None:
        advanced = await self.post(f"/v1/test_clocks/{self.clock}/advance", {"frozen_time": to.isoformat()})
        assert advanced["status"] == "advancing"
        await run_worker(self.services)
        assert (await self.get(f"/v1/test_clocks/{self.clock}"))["status"] == "ready"

    async def invoices(self, subscription: str) -> list[dict[str, Any]]:
        return list(reversed((await self.get("/v1/invoices", subscription=subscription, limit=100))["data"]))

    async def subscription(self, subscription: str) -> dict[str, Any]:
        return await self.get(f"/v1/subscriptions/{subscription}")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)
