"""Hostile request text (issue #12 items 12 and 13): deeply nested JSON and invalid UTF-8 are 400s that say what to
fix, never a 500 with a traceback; and an unauthenticated request is refused before its body is read."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.api.request_text import MAX_JSON_DEPTH, json_depth
from billing.merchants.service import NewMerchant

JSON_HEADERS = {"content-type": "application/json"}


def _reference_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_reference_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_reference_depth(v) for v in value), default=0)
    return 0


# Strings full of the characters a byte scanner could mistake for structure.
_tricky_text = st.text(
    alphabet=st.sampled_from(["[", "]", "{", "}", '"', "\\", "a", "é", "\n", "ñ"]), max_size=8
)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | _tricky_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_tricky_text, children, max_size=4),
    max_leaves=30,
)


@given(_json_values)
def test_json_depth_matches_the_nesting_of_the_decoded_value(value: Any) -> None:
    assert json_depth(msgspec.json.encode(value)) == _reference_depth(value)


def test_json_depth_worked_examples() -> None:
    assert json_depth(b'{"a": 1}') == 1
    assert json_depth(b'{"a": [1, {"b": []}]}') == 4
    assert json_depth(b'{"a": "[[[[{{{{"}') == 1
    assert json_depth(b'{"a": "\\"[[["}') == 1
    # An escaped backslash ends right before the closing quote; an escaped backslash then an escaped quote.
    assert json_depth(b'{"a": "\\\\", "b": [[]]}') == 3
    assert json_depth(b'{"a": "\\\\\\"[[", "b": [[]]}') == 3
    assert json_depth(b'{"a": "\\u005b\\n{{"}') == 1
    assert json_depth(b"12") == 0


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 5000 + b"]" * 5000,
        b'{"metadata":' * 1500 + b"{}" + b"}" * 1500,
        # A NUL inside a deep body: the NUL scan must not recurse either.
        b'{"name":"a\\u0000","x":' + b"[" * 3000 + b"]" * 3000 + b"}",
    ],
    ids=["deep-array", "deep-object", "deep-with-nul"],
)
async def test_deeply_nested_json_is_a_400_that_says_why(
    api: httpx.AsyncClient, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        response = await api.post("/v1/customers", content=body, headers=JSON_HEADERS)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "body_too_deep"
    assert str(MAX_JSON_DEPTH) in error["message"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "no traceback is logged"


async def test_nesting_at_the_limit_reaches_the_route(api: httpx.AsyncClient) -> None:
    inner = b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1)
    response = await api.post("/v1/customers", content=b'{"name": ' + inner + b"}", headers=JSON_HEADERS)
    # The route's own validation answers (name is a string), not the depth guard.
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "name"


@pytest.mark.parametrize(
    "body", [b'{"email": "\xff\xfe@example.com"}', b'{"name": "\xc3"}', b'{"na\xffme": "x"}'], ids=str
)
async def test_invalid_utf8_in_the_body_is_a_400(
    api: httpx.AsyncClient, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        response = await api.post("/v1/customers", content=body, headers=JSON_HEADERS)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "body_invalid_utf8"
    assert "UTF-8" in response.json()["error"]["message"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_invalid_utf8_in_the_query_is_a_400(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/customers?email=%FF%FE")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "query_invalid_utf8"


async def _post_counting_body_reads(app: Any, headers: dict[str, str]) -> tuple[httpx.Response, int]:
    """POST a customer through `app`, counting how often the app asked for the request's body."""
    body_reads = 0

    async def counting(scope: Any, receive: Any, send: Any) -> None:
        async def counted() -> Any:
            nonlocal body_reads
            body_reads += 1
            return await receive()

        await app(scope, counted, send)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=counting), base_url="http://t") as client:
        response = await client.post(
            "/v1/customers", content=b'{"email": "read@example.com"}', headers={**JSON_HEADERS, **headers}
        )
    return response, body_reads


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer sk_not_a_real_key_000000000000"}, {"Authorization": "Basic abc"}],
    ids=["no-key", "unknown-key", "not-bearer"],
)
async def test_an_unauthenticated_request_is_refused_before_its_body_is_read(
    app: Any, headers: dict[str, str]
) -> None:
    response, body_reads = await _post_counting_body_reads(app, headers)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert body_reads == 0


async def test_a_publishable_key_is_refused_before_the_body_is_read(app: Any, merchant: NewMerchant) -> None:
    response, body_reads = await _post_counting_body_reads(
        app, {"Authorization": f"Bearer {merchant.publishable_key}"}
    )
    assert response.status_code == 403
    assert body_reads == 0


async def test_an_authenticated_request_still_gets_its_body(app: Any, merchant: NewMerchant) -> None:
    response, body_reads = await _post_counting_body_reads(
        app, {"Authorization": f"Bearer {merchant.secret_key}"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["email"] == "read@example.com"
    assert body_reads >= 1
