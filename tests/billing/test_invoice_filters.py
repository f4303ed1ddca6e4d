"""The API's invoice list filters (SPEC §4 invoices; issue #15 item 2): dates, amounts, currency and number, with
errors that name the bracketed parameter."""

from __future__ import annotations

import httpx
import pytest

from billing.services import Services
from tests.billing.console_helpers import api_customer, api_invoice
from tests.billing.world import run_worker


async def _ids(api: httpx.AsyncClient, **params: object) -> set[str]:
    response = await api.get("/v1/invoices", params={"limit": 100, **params})
    assert response.status_code == 200, response.text
    return {invoice["id"] for invoice in response.json()["data"]}


async def test_total_currency_and_number_filters(api: httpx.AsyncClient) -> None:
    usd = await api_customer(api)
    eur = await api_customer(api, "EUR")
    small = await api_invoice(api, usd, 500)
    large = await api_invoice(api, usd, 50_000)
    euro = await api_invoice(api, eur, 7_000)
    assert await _ids(api, customer=usd, **{"total[gte]": 1000}) == {large["id"]}
    assert await _ids(api, customer=usd, **{"total[lte]": 1000}) == {small["id"]}
    assert await _ids(api, customer=usd, **{"total[gte]": 500, "total[lte]": 50_000}) == {
        small["id"],
        large["id"],
    }
    assert euro["id"] in await _ids(api, currency="EUR")
    assert not (await _ids(api, currency="EUR")) & {small["id"], large["id"]}
    assert await _ids(api, number=large["number"]) == {large["id"]}


async def test_date_filters_take_instants_and_whole_days(api: httpx.AsyncClient, services: Services) -> None:
    clock = (await api.post("/v1/test_clocks", json={"frozen_time": "2027-03-10T12:00:00Z"})).json()["id"]
    cus = await api_customer(api, test_clock=clock)
    march = await api_invoice(api, cus, 1000, collection_method="send_invoice", days_until_due=10)
    advanced = await api.post(
        f"/v1/test_clocks/{clock}/advance", json={"frozen_time": "2027-04-02T08:00:00Z"}
    )
    assert advanced.status_code == 200
    await run_worker(services)
    april = await api_invoice(api, cus, 2000, collection_method="send_invoice", days_until_due=30)
    assert april["created_at"].startswith("2027-04-02")
    assert await _ids(api, customer=cus, **{"created[gte]": "2027-04-01"}) == {april["id"]}
    assert await _ids(api, customer=cus, **{"created[lte]": "2027-03-10"}) == {march["id"]}  # the whole day
    assert await _ids(api, customer=cus, **{"created[lte]": "2027-03-10T11:59:59Z"}) == set()
    assert await _ids(api, customer=cus, **{"due_date[lte]": "2027-03-20"}) == {march["id"]}
    assert await _ids(api, customer=cus, **{"due_date[gte]": "2027-03-21T00:00:00+08:00"}) == {april["id"]}


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("created[gte]", "yesterday"),
        ("created[lte]", "2027-13-01"),
        ("due_date[gte]", "2027-03-01T00:00:00"),  # no offset: ambiguous
        ("total[gte]", "12.50"),
        ("total[lte]", "lots"),
        ("currency", "XYZ"),
        ("status", "late"),
    ],
)
async def test_bad_filter_values_are_refused_naming_the_parameter(
    api: httpx.AsyncClient, param: str, value: str
) -> None:
    response = await api.get("/v1/invoices", params={param: value})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert param in error["message"]


async def test_crossed_bounds_are_refused(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/invoices", params={"total[gte]": 500, "total[lte]": 100})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "total[gte]"


async def test_filters_never_reach_another_merchants_invoices(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient
) -> None:
    theirs = await api_invoice(other_api, await api_customer(other_api), 4242)
    assert await _ids(api, number=theirs["number"]) == set()
    assert theirs["id"] not in await _ids(api, **{"total[gte]": 4242, "total[lte]": 4242})
