"""Coupons through the HTTP API (SPEC §4 coupons) and the redemption rules the subscriptions feature uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from billing.catalog.coupons import ensure_coupon_redeemable, get_coupon, redeem_coupon
from billing.db.engine import transaction
from billing.errors import Conflict
from billing.merchants.service import NewMerchant
from billing.services import Services


async def create(api: httpx.AsyncClient, **fields: object) -> dict:
    response = await api.post("/v1/coupons", json=fields)
    assert response.status_code == 200, response.text
    return response.json()


async def redeem(
    services: Services, merchant: NewMerchant, coupon_id: str, now: datetime | None = None
) -> None:
    async with transaction(services.sessions) as session:
        coupon = await get_coupon(session, merchant.id, coupon_id)
        await redeem_coupon(session, coupon, now or datetime.now(UTC))


async def test_a_percent_off_coupon(api: httpx.AsyncClient) -> None:
    coupon = await create(
        api, name="Launch", percent_off="12.50", duration="repeating", duration_in_periods=3
    )
    assert coupon["id"].startswith("cpn_") and coupon["object"] == "coupon"
    assert (coupon["percent_off"], coupon["amount_off"], coupon["currency"]) == ("12.5", None, None)
    assert (coupon["duration"], coupon["duration_in_periods"]) == ("repeating", 3)
    assert (coupon["times_redeemed"], coupon["valid"], coupon["active"]) == (0, True, True)
    assert (await api.get(f"/v1/coupons/{coupon['id']}")).json() == coupon
    event = (await api.get("/v1/events", params={"object_id": coupon["id"]})).json()["data"][0]
    assert event["type"] == "coupon.created"


async def test_an_amount_off_coupon_carries_its_currency(api: httpx.AsyncClient) -> None:
    coupon = await create(api, amount_off=500, currency="eur", duration="forever")
    assert (coupon["amount_off"], coupon["currency"], coupon["percent_off"]) == (500, "EUR", None)


@pytest.mark.parametrize(
    ("fields", "param", "reason"),
    [
        ({}, "percent_off", "exactly one of percent_off and amount_off"),
        ({"percent_off": 10, "amount_off": 100, "currency": "USD"}, "percent_off", "exactly one"),
        ({"percent_off": 120}, "percent_off", "at most 100; got '120'"),
        ({"percent_off": "0"}, "percent_off", "greater than 0"),
        ({"percent_off": "12.34567"}, "percent_off", "at most 4 decimal places"),
        ({"amount_off": 0, "currency": "USD"}, "amount_off", "at least 1"),
        ({"amount_off": 100}, "currency", "required with amount_off"),
        ({"amount_off": 100, "currency": "ABC"}, "currency", "ISO 4217"),
        ({"percent_off": 10, "currency": "USD"}, "currency", "only used with amount_off"),
        ({"percent_off": 10, "duration": "repeating"}, "duration_in_periods", "at least 1"),
        (
            {"percent_off": 10, "duration": "once", "duration_in_periods": 2},
            "duration_in_periods",
            "only used by repeating",
        ),
        ({"percent_off": 10, "duration": "weekly"}, "duration", "'once', 'repeating', 'forever'"),
        ({"percent_off": 10, "max_redemptions": 0}, "max_redemptions", "at least 1"),
        ({"percent_off": 10, "redeem_by": "2020-01-01T00:00:00Z"}, "redeem_by", "in the future"),
    ],
)
async def test_an_invalid_coupon_is_a_400_naming_the_field(
    api: httpx.AsyncClient, fields: dict, param: str, reason: str
) -> None:
    response = await api.post("/v1/coupons", json=fields)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and reason in error["message"], error


async def test_the_discount_can_change_until_the_first_redemption(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant
) -> None:
    coupon = await create(api, percent_off=10)
    switched = await api.patch(f"/v1/coupons/{coupon['id']}", json={"amount_off": 300, "currency": "USD"})
    assert switched.status_code == 200, switched.text
    assert (switched.json()["percent_off"], switched.json()["amount_off"]) == (None, 300)

    await redeem(services, merchant, coupon["id"])
    refused = await api.patch(f"/v1/coupons/{coupon['id']}", json={"amount_off": 400})
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "coupon_in_use" and error["param"] == "amount_off"
    assert "create a new coupon" in error["message"]
    # Names, limits and metadata still change.
    renamed = await api.patch(
        f"/v1/coupons/{coupon['id']}", json={"name": "Spring", "max_redemptions": 5, "metadata": {"c": "1"}}
    )
    assert renamed.status_code == 200, renamed.text
    body = renamed.json()
    assert (body["name"], body["max_redemptions"], body["times_redeemed"], body["amount_off"]) == (
        "Spring",
        5,
        1,
        300,
    )
    lowered = await api.patch(f"/v1/coupons/{coupon['id']}", json={"max_redemptions": 0})
    assert lowered.status_code == 400 and lowered.json()["error"]["param"] == "max_redemptions"


async def test_an_archived_coupon_cannot_be_redeemed(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant
) -> None:
    coupon = await create(api, percent_off=10)
    archived = (await api.post(f"/v1/coupons/{coupon['id']}/archive")).json()
    assert (archived["active"], archived["valid"]) == (False, False)
    with pytest.raises(Conflict) as refused:
        await redeem(services, merchant, coupon["id"])
    assert refused.value.code == "coupon_archived" and refused.value.param == "coupon"
    await api.post(f"/v1/coupons/{coupon['id']}/unarchive")
    await redeem(services, merchant, coupon["id"])
    assert (await api.get(f"/v1/coupons/{coupon['id']}")).json()["times_redeemed"] == 1
    types = [
        e["type"] for e in (await api.get("/v1/events", params={"object_id": coupon["id"]})).json()["data"]
    ]
    assert types == ["coupon.updated", "coupon.unarchived", "coupon.archived", "coupon.created"]


async def test_max_redemptions_is_never_exceeded(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant
) -> None:
    coupon = await create(api, percent_off=10, max_redemptions=2)
    await redeem(services, merchant, coupon["id"])
    await redeem(services, merchant, coupon["id"])
    with pytest.raises(Conflict) as refused:
        await redeem(services, merchant, coupon["id"])
    assert refused.value.code == "coupon_max_redemptions_reached"
    body = (await api.get(f"/v1/coupons/{coupon['id']}")).json()
    assert (body["times_redeemed"], body["valid"]) == (2, False)


async def test_concurrent_redemptions_of_the_last_one_count_once(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant
) -> None:
    coupon = await create(api, percent_off=10, max_redemptions=1)
    async with services.sessions() as first, services.sessions() as second:
        async with first.begin():
            stale = await get_coupon(second, merchant.id, coupon["id"])  # read before the first commits
            await redeem_coupon(first, await get_coupon(first, merchant.id, coupon["id"]), datetime.now(UTC))
        # The second transaction saw times_redeemed == 0, but the conditional UPDATE sees the committed 1.
        with pytest.raises(Conflict):
            await redeem_coupon(second, stale, datetime.now(UTC))
        await second.rollback()
    assert (await api.get(f"/v1/coupons/{coupon['id']}")).json()["times_redeemed"] == 1


async def test_a_coupon_past_redeem_by_has_expired(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant
) -> None:
    deadline = datetime.now(UTC) + timedelta(days=1)
    coupon = await create(api, percent_off=10, redeem_by=deadline.isoformat())
    async with services.sessions() as session:
        stored = await get_coupon(session, merchant.id, coupon["id"])
        ensure_coupon_redeemable(stored, deadline - timedelta(seconds=1))
        with pytest.raises(Conflict) as refused:
            ensure_coupon_redeemable(stored, deadline)
    assert refused.value.code == "coupon_expired" and refused.value.status == 409
