"""Customers through the HTTP API: the first full resource (SPEC §4)."""

from __future__ import annotations

import httpx


async def create(api: httpx.AsyncClient, **fields: object) -> dict:
    response = await api.post("/v1/customers", json=fields)
    assert response.status_code == 200, response.text
    return response.json()


async def test_create_returns_the_customer_with_a_prefixed_id(api: httpx.AsyncClient) -> None:
    body = await create(
        api,
        email="li.lei@example.com",
        name="李雷",
        currency="cny",
        timezone="Asia/Shanghai",
        locale="zh-CN",
        external_id="u-1",
        metadata={"plan": "pro"},
    )
    assert body["id"].startswith("cus_") and len(body["id"]) == 28
    assert body["object"] == "customer"
    assert body["currency"] == "CNY"
    assert body["timezone"] == "Asia/Shanghai"
    assert body["name"] == "李雷"
    assert body["balance"] == 0
    assert body["metadata"] == {"plan": "pro"}
    assert body["created_at"].endswith("Z")
    assert body["test_clock"] is None


async def test_retrieve_answers_what_create_returned(api: httpx.AsyncClient) -> None:
    created = await create(api, email="a@example.com")
    fetched = await api.get(f"/v1/customers/{created['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == created


async def test_update_changes_only_the_fields_sent_and_merges_metadata(api: httpx.AsyncClient) -> None:
    created = await create(api, email="a@example.com", name="Ann", metadata={"a": "1", "b": "2"})
    response = await api.patch(
        f"/v1/customers/{created['id']}", json={"name": None, "metadata": {"a": "", "c": "3"}}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] is None
    assert body["email"] == "a@example.com"
    assert body["metadata"] == {"b": "2", "c": "3"}


async def test_delete_hides_the_customer_and_frees_its_external_id(api: httpx.AsyncClient) -> None:
    created = await create(api, external_id="reused")
    deleted = await api.delete(f"/v1/customers/{created['id']}")
    assert deleted.json() == {"id": created["id"], "object": "customer", "deleted": True}
    assert (await api.get(f"/v1/customers/{created['id']}")).status_code == 404
    again = await create(api, external_id="reused")
    assert again["id"] != created["id"]


async def test_external_id_is_unique_per_merchant(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient
) -> None:
    first = await create(api, external_id="same")
    duplicate = await api.post("/v1/customers", json={"external_id": "same"})
    assert duplicate.status_code == 409
    error = duplicate.json()["error"]
    assert error["type"] == "conflict" and error["param"] == "external_id"
    assert first["id"] in error["message"]
    # Another merchant may use the same external id.
    assert (await other_api.post("/v1/customers", json={"external_id": "same"})).status_code == 200


async def test_updating_to_a_taken_external_id_is_a_conflict(api: httpx.AsyncClient) -> None:
    await create(api, external_id="taken")
    other = await create(api, external_id="free")
    response = await api.patch(f"/v1/customers/{other['id']}", json={"external_id": "taken"})
    assert response.status_code == 409
    assert (await api.get(f"/v1/customers/{other['id']}")).json()["external_id"] == "free"


async def test_list_filters_by_external_id_and_email(api: httpx.AsyncClient) -> None:
    wanted = await create(api, external_id="find-me", email="find@example.com")
    await create(api, external_id="not-me", email="other@example.com")
    by_external = (await api.get("/v1/customers", params={"external_id": "find-me"})).json()
    assert [c["id"] for c in by_external["data"]] == [wanted["id"]]
    by_email = (await api.get("/v1/customers", params={"email": "find@example.com"})).json()
    assert [c["id"] for c in by_email["data"]] == [wanted["id"]]


async def test_unknown_timezone_names_the_field(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/customers", json={"timezone": "Mars/Olympus_Mons"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "timezone"
    assert "IANA" in error["message"]


async def test_unknown_currency_names_the_field(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/customers", json={"currency": "XYZ"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "currency"


async def test_invalid_email_is_rejected(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/customers", json={"email": "not an email"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "email"


async def test_events_record_create_update_and_delete(api: httpx.AsyncClient) -> None:
    created = await create(api, name="Before")
    await api.patch(f"/v1/customers/{created['id']}", json={"name": "After"})
    await api.delete(f"/v1/customers/{created['id']}")
    events = (await api.get("/v1/events", params={"object_id": created["id"]})).json()["data"]
    assert [e["type"] for e in events] == ["customer.deleted", "customer.updated", "customer.created"]
    updated = events[1]
    assert updated["data"]["object"]["name"] == "After"
    assert updated["data"]["previous_attributes"] == {"name": "Before"}
    assert events[2]["data"]["object"] == created


async def test_an_update_that_changes_nothing_records_no_event(api: httpx.AsyncClient) -> None:
    created = await create(api, name="Same")
    await api.patch(f"/v1/customers/{created['id']}", json={"name": "Same"})
    events = (await api.get("/v1/events", params={"object_id": created["id"]})).json()["data"]
    assert [e["type"] for e in events] == ["customer.created"]
