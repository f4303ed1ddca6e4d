"""Tax rates through the HTTP API (SPEC §4 tax_rates): percentage frozen once in use, archive, events."""

from __future__ import annotations

import httpx
import pytest

from billing.catalog.tax_rates import ensure_tax_rate_usable, get_tax_rate, mark_tax_rate_in_use
from billing.db.engine import transaction
from billing.errors import Conflict
from billing.merchants.service import NewMerchant
from billing.services import Services


async def create(api: httpx.AsyncClient, **fields: object) -> dict:
    body = {"display_name": "VAT", "percentage": "20", **fields}
    response = await api.post("/v1/tax_rates", json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def test_create_retrieve_and_list(api: httpx.AsyncClient) -> None:
    vat = await create(api, percentage="20.00", inclusive=True, description="UK standard rate")
    assert vat["id"].startswith("txr_") and vat["object"] == "tax_rate"
    assert (vat["percentage"], vat["inclusive"], vat["display_name"]) == ("20", True, "VAT")
    assert (vat["active"], vat["in_use"]) == (True, False)
    assert (await api.get(f"/v1/tax_rates/{vat['id']}")).json() == vat
    sales = await create(api, display_name="Sales tax", percentage=8.875)
    assert sales["percentage"] == "8.875" and sales["inclusive"] is False
    listed = (await api.get("/v1/tax_rates", params={"limit": 2})).json()["data"]
    assert [r["id"] for r in listed] == [sales["id"], vat["id"]]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"percentage": "-1"}, "between 0 and 100"),
        ({"percentage": "100.5"}, "between 0 and 100"),
        ({"percentage": "7.12345"}, "at most 4 decimal places"),
        ({"percentage": "NaN"}, "decimal number"),
    ],
)
async def test_an_invalid_percentage_is_a_400(api: httpx.AsyncClient, fields: dict, reason: str) -> None:
    response = await api.post("/v1/tax_rates", json={"display_name": "T", **fields})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "percentage" and reason in error["message"], error


async def test_percentage_changes_until_in_use_then_409(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant
) -> None:
    rate = await create(api)
    changed = await api.patch(f"/v1/tax_rates/{rate['id']}", json={"percentage": "21"})
    assert changed.status_code == 200 and changed.json()["percentage"] == "21"
    async with transaction(services.sessions) as session:
        await mark_tax_rate_in_use(session, await get_tax_rate(session, merchant.id, rate["id"]))
    refused = await api.patch(f"/v1/tax_rates/{rate['id']}", json={"inclusive": True})
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "tax_rate_in_use" and error["param"] == "inclusive"
    renamed = await api.patch(
        f"/v1/tax_rates/{rate['id']}",
        json={"display_name": "TVA", "percentage": "21.000", "metadata": {"fr": "1"}},
    )
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["display_name"], renamed.json()["in_use"]) == ("TVA", True)
    types = [
        e["type"] for e in (await api.get("/v1/events", params={"object_id": rate["id"]})).json()["data"]
    ]
    assert types == ["tax_rate.updated", "tax_rate.updated", "tax_rate.updated", "tax_rate.created"]


async def test_an_archived_tax_rate_cannot_be_added_to_new_subscriptions(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant
) -> None:
    rate = await create(api)
    assert (await api.post(f"/v1/tax_rates/{rate['id']}/archive")).json()["active"] is False
    inactive = (await api.get("/v1/tax_rates", params={"active": "false"})).json()["data"]
    assert [r["id"] for r in inactive] == [rate["id"]]
    async with services.sessions() as session:
        stored = await get_tax_rate(session, merchant.id, rate["id"])
        with pytest.raises(Conflict) as refused:
            ensure_tax_rate_usable(stored)
    assert refused.value.code == "tax_rate_archived" and refused.value.status == 409
    assert (await api.post(f"/v1/tax_rates/{rate['id']}/unarchive")).json()["active"] is True
    types = [
        e["type"] for e in (await api.get("/v1/events", params={"object_id": rate["id"]})).json()["data"]
    ]
    assert types == ["tax_rate.unarchived", "tax_rate.archived", "tax_rate.created"]
