"""The conventions every /v1 route shares (SPEC §3): auth, errors, validation, lists, limits, OpenAPI."""

from __future__ import annotations

import httpx
import pytest

from billing.merchants.service import NewMerchant


async def test_missing_key_is_an_authentication_error(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/customers")
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == "authentication_error"
    assert "Bearer" in error["message"]


@pytest.mark.parametrize("header", ["Bearer sk_wrong", "Basic abc", "Bearer", "sk_only", "Bearer nope"])
async def test_bad_keys_are_refused(client: httpx.AsyncClient, header: str) -> None:
    response = await client.get("/v1/customers", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


async def test_publishable_key_cannot_read_customers(
    client: httpx.AsyncClient, merchant: NewMerchant
) -> None:
    response = await client.get(
        "/v1/customers", headers={"Authorization": f"Bearer {merchant.publishable_key}"}
    )
    assert response.status_code == 403
    assert "POST /v1/tokens" in response.json()["error"]["message"]


async def test_unknown_route_is_a_not_found_error(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/nothing_here")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"


async def test_wrong_method_is_an_invalid_request(api: httpx.AsyncClient) -> None:
    response = await api.put("/v1/customers")
    assert response.status_code == 405
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_unknown_field_is_named(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/customers", json={"emial": "a@example.com"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "emial"


async def test_wrong_type_is_named(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/customers", json={"name": 42})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "name"


async def test_nested_wrong_type_is_named_with_its_path(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/customers", json={"metadata": {"a": 1}})
    assert response.status_code == 400
    assert response.json()["error"]["param"].startswith("metadata")


async def test_malformed_json_is_an_invalid_request(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/customers", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_a_body_that_is_not_an_object_is_refused(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/customers", json=[1, 2])
    assert response.status_code == 400


async def test_huge_body_is_refused_before_reading_it_all(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/customers", content=b"{" + b" " * 2_000_000 + b"}", headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


async def test_malformed_id_is_a_not_found(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/customers/cus_%27;drop%20table")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"starting_after": "garbage"}, "starting_after"),
        ({"starting_after": "cus_000000000000000000000000"}, "starting_after"),
    ],
)
async def test_bad_list_parameters_name_the_parameter(
    api: httpx.AsyncClient, params: dict, param: str
) -> None:
    response = await api.get("/v1/customers", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


async def test_lists_page_newest_first_without_gaps_or_repeats(api: httpx.AsyncClient) -> None:
    created = [(await api.post("/v1/customers", json={"name": f"c{i}"})).json()["id"] for i in range(7)]
    seen: list[str] = []
    starting_after = None
    pages = 0
    while True:
        params = {"limit": 3} | ({"starting_after": starting_after} if starting_after else {})
        body = (await api.get("/v1/customers", params=params)).json()
        assert body["object"] == "list" and body["url"] == "/v1/customers"
        seen += [c["id"] for c in body["data"]]
        pages += 1
        if not body["has_more"]:
            break
        starting_after = body["data"][-1]["id"]
    assert seen[:7] == list(reversed(created))
    assert len(seen) == len(set(seen))
    assert pages >= 3


async def test_metadata_limits_follow_stripe(api: httpx.AsyncClient) -> None:
    too_many = {f"k{i}": "v" for i in range(51)}
    assert (await api.post("/v1/customers", json={"metadata": too_many})).status_code == 400
    long_key = await api.post("/v1/customers", json={"metadata": {"k" * 41: "v"}})
    assert long_key.status_code == 400
    long_value = await api.post("/v1/customers", json={"metadata": {"k": "v" * 501}})
    assert long_value.status_code == 400
    assert long_value.json()["error"]["param"] == "metadata[k]"
    brackets = await api.post("/v1/customers", json={"metadata": {"a[b]": "v"}})
    assert brackets.status_code == 400
    ok = await api.post("/v1/customers", json={"metadata": {f"k{i}": "v" * 500 for i in range(50)}})
    assert ok.status_code == 200


async def test_every_response_carries_a_request_id(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/customers")
    assert response.headers["request-id"].startswith("req_")


async def test_health_and_ready(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).status_code == 200
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok"}


async def test_openapi_describes_every_route_with_schemas_and_bearer_auth(client: httpx.AsyncClient) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    assert document["components"]["securitySchemes"]["BearerAuth"]["scheme"] == "bearer"
    paths = document["paths"]
    for path in [
        "/v1/customers",
        "/v1/customers/{customer_id}",
        "/v1/events",
        "/v1/events/{event_id}",
        "/v1/test_clocks",
        "/v1/test_clocks/{test_clock_id}",
        "/v1/test_clocks/{test_clock_id}/advance",
        "/health",
        "/ready",
    ]:
        assert path in paths, path
    create = paths["/v1/customers"]["post"]
    assert "requestBody" in create
    assert "$ref" in str(create["responses"]["200"])
    assert "400" in create["responses"]
    schemas = document["components"]["schemas"]
    assert any("Customer" in name for name in schemas)


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/v1/customers", {"json": {"name": "a\u0000b"}}),
        ("POST", "/v1/customers", {"json": {"metadata": {"k\u0000": "v"}}}),
        ("GET", "/v1/events", {"params": {"object_id": "\u0000"}}),
        ("GET", "/v1/customers", {"params": {"email": "a\u0000@example.com"}}),
    ],
)
async def test_nul_characters_are_refused_in_any_field(
    api: httpx.AsyncClient, method: str, path: str, kwargs: dict
) -> None:
    response = await api.request(method, path, **kwargs)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "nul_character"


async def test_a_missing_required_field_is_named(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/plans", json={"code": "x", "name": "X"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("parameter_missing", "currency")


async def test_an_unknown_nested_field_is_named_with_its_path(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/plans",
        json={
            "code": "x",
            "name": "X",
            "currency": "USD",
            "charges": [{"meter": "m", "model": "per_unit", "bogus": 1}],
        },
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "charges[0].bogus"
