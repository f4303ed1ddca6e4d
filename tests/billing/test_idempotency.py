"""Idempotency-Key (SPEC §3): byte-identical replay, mismatch refused, concurrent duplicates serialized."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy import func, select

from billing.customers.models import Customer
from billing.services import Services


def key() -> str:
    return str(uuid.uuid4())


async def count_customers(services: Services, email: str) -> int:
    async with services.sessions() as session:
        return int(
            await session.scalar(select(func.count()).select_from(Customer).where(Customer.email == email))
            or 0
        )


async def test_same_key_and_body_replays_the_first_response_byte_for_byte(
    api: httpx.AsyncClient, services: Services
) -> None:
    k = key()
    first = await api.post(
        "/v1/customers", json={"email": "replay@example.com"}, headers={"Idempotency-Key": k}
    )
    second = await api.post(
        "/v1/customers", json={"email": "replay@example.com"}, headers={"Idempotency-Key": k}
    )
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert second.headers["idempotent-replayed"] == "true"
    assert await count_customers(services, "replay@example.com") == 1


async def test_same_key_with_another_body_is_an_idempotency_error(api: httpx.AsyncClient) -> None:
    k = key()
    await api.post("/v1/customers", json={"email": "one@example.com"}, headers={"Idempotency-Key": k})
    other = await api.post("/v1/customers", json={"email": "two@example.com"}, headers={"Idempotency-Key": k})
    assert other.status_code == 409
    assert other.json()["error"]["type"] == "idempotency_error"


async def test_same_key_on_another_route_is_an_idempotency_error(api: httpx.AsyncClient) -> None:
    k = key()
    await api.post("/v1/customers", json={}, headers={"Idempotency-Key": k})
    other = await api.post("/v1/test_clocks", json={}, headers={"Idempotency-Key": k})
    assert other.status_code == 409
    assert other.json()["error"]["type"] == "idempotency_error"


async def test_keys_are_scoped_per_merchant(api: httpx.AsyncClient, other_api: httpx.AsyncClient) -> None:
    k = key()
    mine = await api.post(
        "/v1/customers", json={"email": "scoped@example.com"}, headers={"Idempotency-Key": k}
    )
    theirs = await other_api.post(
        "/v1/customers", json={"email": "scoped@example.com"}, headers={"Idempotency-Key": k}
    )
    assert mine.status_code == theirs.status_code == 200
    assert mine.json()["id"] != theirs.json()["id"]


async def test_a_client_error_is_replayed_too(api: httpx.AsyncClient) -> None:
    k = key()
    first = await api.post("/v1/customers", json={"timezone": "Nowhere/Land"}, headers={"Idempotency-Key": k})
    second = await api.post(
        "/v1/customers", json={"timezone": "Nowhere/Land"}, headers={"Idempotency-Key": k}
    )
    assert first.status_code == second.status_code == 400
    assert first.content == second.content


async def test_concurrent_duplicates_create_one_object(api: httpx.AsyncClient, services: Services) -> None:
    k = key()
    email = f"race-{k}@example.com"
    responses = await asyncio.gather(
        *[api.post("/v1/customers", json={"email": email}, headers={"Idempotency-Key": k}) for _ in range(8)]
    )
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    assert await count_customers(services, email) == 1


async def test_without_a_key_each_post_creates(api: httpx.AsyncClient, services: Services) -> None:
    email = f"nokey-{key()}@example.com"
    await asyncio.gather(*[api.post("/v1/customers", json={"email": email}) for _ in range(3)])
    assert await count_customers(services, email) == 3


async def test_an_overlong_key_is_refused(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/customers", json={}, headers={"Idempotency-Key": "k" * 256})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "Idempotency-Key"
