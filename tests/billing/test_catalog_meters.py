"""Meters through the HTTP API (SPEC §4 meters): create, retrieve, list, update, archive, events."""

from __future__ import annotations

import httpx
import pytest


async def create(api: httpx.AsyncClient, **fields: object) -> dict:
    body = {"code": "api_calls", "name": "API calls", "aggregation": "count", **fields}
    response = await api.post("/v1/meters", json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def events_of(api: httpx.AsyncClient, object_id: str) -> list[dict]:
    return (await api.get("/v1/events", params={"object_id": object_id, "limit": 100})).json()["data"]


async def test_create_returns_the_meter_and_records_meter_created(api: httpx.AsyncClient) -> None:
    meter = await create(
        api, code="active_users", aggregation="unique_count", property="user_id", metadata={"team": "growth"}
    )
    assert meter["id"].startswith("mtr_") and meter["object"] == "meter"
    assert (meter["code"], meter["aggregation"], meter["property"]) == (
        "active_users",
        "unique_count",
        "user_id",
    )
    assert meter["active"] is True and meter["in_use"] is False
    assert meter["metadata"] == {"team": "growth"}
    assert (await api.get(f"/v1/meters/{meter['id']}")).json() == meter
    [event] = await events_of(api, meter["id"])
    assert event["type"] == "meter.created" and event["data"]["object"] == meter


@pytest.mark.parametrize(
    ("fields", "param", "reason"),
    [
        ({"aggregation": "mean"}, "aggregation", "'count', 'sum', 'max', 'last', 'unique_count', 'avg'"),
        ({"aggregation": "unique_count"}, "property", "required for a unique_count meter"),
        ({"aggregation": "sum", "property": "bytes"}, "property", "only used by unique_count"),
        ({"code": "api calls!"}, "code", "letters, digits"),
        ({"code": ""}, "code", "must not be empty"),
        ({"metadata": {"k": "v" * 501}}, "metadata[k]", "500"),
    ],
)
async def test_an_invalid_meter_is_a_400_naming_the_field(
    api: httpx.AsyncClient, fields: dict, param: str, reason: str
) -> None:
    response = await api.post("/v1/meters", json={"code": "m", "name": "M", "aggregation": "count", **fields})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and reason in error["message"], error


async def test_meter_codes_are_unique_per_merchant_even_when_archived(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient
) -> None:
    first = await create(api, code="storage")
    await api.post(f"/v1/meters/{first['id']}/archive")
    duplicate = await api.post("/v1/meters", json={"code": "storage", "name": "again", "aggregation": "sum"})
    assert duplicate.status_code == 409
    error = duplicate.json()["error"]
    assert error["type"] == "conflict" and error["param"] == "code"
    assert first["id"] in error["message"] and "archived" in error["message"]
    assert (
        await other_api.post("/v1/meters", json={"code": "storage", "name": "s", "aggregation": "sum"})
    ).status_code == 200


async def test_update_changes_names_and_aggregation_while_not_in_use(api: httpx.AsyncClient) -> None:
    meter = await create(api, metadata={"a": "1"})
    response = await api.patch(
        f"/v1/meters/{meter['id']}",
        json={
            "name": "Calls",
            "aggregation": "unique_count",
            "property": "ip",
            "metadata": {"a": "", "b": "2"},
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["aggregation"], body["property"], body["metadata"]) == (
        "Calls",
        "unique_count",
        "ip",
        {"b": "2"},
    )
    updated = [e for e in await events_of(api, meter["id"]) if e["type"] == "meter.updated"]
    assert updated[0]["data"]["previous_attributes"] == {
        "name": "API calls",
        "aggregation": "count",
        "property": None,
        "metadata": {"a": "1"},
    }


async def test_an_update_that_changes_nothing_records_no_event(api: httpx.AsyncClient) -> None:
    meter = await create(api)
    response = await api.patch(
        f"/v1/meters/{meter['id']}", json={"name": meter["name"], "aggregation": "count"}
    )
    assert response.status_code == 200
    assert [e["type"] for e in await events_of(api, meter["id"])] == ["meter.created"]


async def test_a_meter_code_never_changes(api: httpx.AsyncClient) -> None:
    meter = await create(api)
    same = await api.patch(f"/v1/meters/{meter['id']}", json={"code": "api_calls"})
    assert same.status_code == 200
    response = await api.patch(f"/v1/meters/{meter['id']}", json={"code": "calls_v2"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "code" and error["code"] == "parameter_immutable"
    assert "Create a new meter" in error["message"]


async def test_archive_and_unarchive_with_events_and_list_filters(api: httpx.AsyncClient) -> None:
    kept = await create(api, code="kept")
    retired = await create(api, code="retired")
    archived = await api.post(f"/v1/meters/{retired['id']}/archive")
    assert archived.status_code == 200 and archived.json()["active"] is False
    active_ids = [
        m["id"] for m in (await api.get("/v1/meters", params={"active": "true", "limit": 100})).json()["data"]
    ]
    assert kept["id"] in active_ids and retired["id"] not in active_ids
    by_code = (await api.get("/v1/meters", params={"code": "retired"})).json()["data"]
    assert [m["id"] for m in by_code] == [retired["id"]]
    assert (await api.post(f"/v1/meters/{retired['id']}/unarchive")).json()["active"] is True
    assert [e["type"] for e in await events_of(api, retired["id"])] == [
        "meter.unarchived",
        "meter.archived",
        "meter.created",
    ]


async def test_an_unknown_meter_id_is_404(api: httpx.AsyncClient) -> None:
    for path in ("/v1/meters/mtr_000000000000000000000000", "/v1/meters/plan_000000000000000000000000"):
        response = await api.get(path)
        assert response.status_code == 404 and response.json()["error"]["type"] == "not_found"
