"""Browsers may call the publishable-key routes from the SaaS app's own origin, never the secret-key routes
(issue #12 item 17): the CORS answers over HTTP, then a real browser tokenizing a card from another origin."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import httpx
import pytest

from billing.api.app import create_app
from billing.config import ConfigError, Settings, load_settings
from billing.merchants.service import NewMerchant
from billing.services import Services
from tests.billing.live import create_merchant, free_port, serve, suite_env
from tests.browser import screenshot
from tests.conftest import Servers

CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2040, "cvc": "123"}
SHOP = "https://shop.example.com"


def _preflight(path: str, origin: str = SHOP, method: str = "POST") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
    }


async def test_the_token_route_answers_a_preflight_from_any_origin_by_default(
    client: httpx.AsyncClient,
) -> None:
    response = await client.options("/v1/tokens", headers=_preflight("/v1/tokens"))
    assert response.status_code == 204, response.text
    assert response.headers["access-control-allow-origin"] == "*"
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = {h.strip() for h in response.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key"} <= allowed
    assert "Origin" in response.headers["vary"]


async def test_a_token_call_from_a_page_can_read_its_answer_errors_included(
    client: httpx.AsyncClient, merchant: NewMerchant
) -> None:
    headers = {"Origin": SHOP, "Authorization": f"Bearer {merchant.publishable_key}"}
    created = await client.post("/v1/tokens", json={"card": CARD}, headers=headers)
    assert created.status_code == 200, created.text
    assert created.json()["id"].startswith("tok_")
    assert created.headers["access-control-allow-origin"] == "*"
    assert "request-id" in created.headers["access-control-expose-headers"]
    refused = await client.post(
        "/v1/tokens", json={"card": {**CARD, "number": "4242424242424241"}}, headers=headers
    )
    assert refused.status_code in (400, 402)
    assert refused.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/v1/customers"), ("POST", "/v1/refunds"), ("GET", "/v1/tokens")]
)
async def test_secret_key_routes_never_allow_a_browser(
    client: httpx.AsyncClient, merchant: NewMerchant, method: str, path: str
) -> None:
    preflight = await client.options(path, headers=_preflight(path, method=method))
    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.status_code == 403
    expected = "cors_method_not_allowed" if path == "/v1/tokens" else "cors_not_allowed"
    assert preflight.json()["error"]["code"] == expected
    # Even if a page sends the request without asking first, the answer is not readable by it.
    called = await client.request(
        method, path, headers={"Origin": SHOP, "Authorization": f"Bearer {merchant.secret_key}"}
    )
    assert "access-control-allow-origin" not in called.headers


async def test_an_origin_not_on_the_list_gets_no_allowance(settings: Settings, services: Services) -> None:
    restricted = create_app(
        replace(services, settings=replace(settings, cors_origins=("https://app.example.com",)))
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=restricted), base_url="http://t"
    ) as client:
        allowed = await client.options(
            "/v1/tokens", headers=_preflight("/v1/tokens", origin="https://app.example.com")
        )
        assert allowed.status_code == 204
        assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
        refused = await client.options("/v1/tokens", headers=_preflight("/v1/tokens"))
        assert refused.status_code == 403
        assert "access-control-allow-origin" not in refused.headers
        assert "BILLING_CORS_ORIGINS" in refused.json()["error"]["message"]


def test_cors_origins_come_from_the_environment() -> None:
    assert load_settings({}).cors_origins == ("*",)
    configured = load_settings({"BILLING_CORS_ORIGINS": "https://app.example.com, http://localhost:3000"})
    assert configured.cors_origins == ("https://app.example.com", "http://localhost:3000")
    for bad in ("https://app.example.com/checkout", "app.example.com", "*, https://a.example.com"):
        with pytest.raises(ConfigError, match="BILLING_CORS_ORIGINS"):
            load_settings({"BILLING_CORS_ORIGINS": bad})


# --- a real browser, a page on another origin, a real `billing serve` -------------------------------------------

PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Checkout</title></head>
<body><h1>Checkout (a page of the SaaS app)</h1><p id="result">not yet</p>
<script>
async function call(url, key, init) {
  try {
    const response = await fetch(url, {
      ...init, headers: {"Authorization": "Bearer " + key, "Content-Type": "application/json"}});
    const text = await response.text();
    document.getElementById("result").textContent = response.status + " " + text;
    return {status: response.status, body: JSON.parse(text), requestId: response.headers.get("request-id")};
  } catch (error) {
    document.getElementById("result").textContent = "blocked: " + error;
    return {blocked: String(error)};
  }
}
</script></body></html>"""


@contextmanager
def _page_server() -> Iterator[int]:
    """A static page on its own port: the SaaS app's origin."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.browser
async def test_a_page_of_an_allowed_origin_tokenizes_in_a_real_browser_and_others_cannot(
    browser: Any, settings: Settings, servers: Servers
) -> None:
    with _page_server() as page_port:
        allowed_origin = f"http://127.0.0.1:{page_port}"
        env = suite_env(settings, servers.redis_url, BILLING_CORS_ORIGINS=allowed_origin)
        merchant = create_merchant(env, "CORS")
        with serve(env) as api:
            context = await browser.new_context()
            try:
                page = await context.new_page()
                await page.goto(allowed_origin + "/checkout")
                body = {
                    "method": "POST",
                    "body": '{"card": {"number": "4242424242424242", "exp_month": 12, '
                    '"exp_year": 2040, "cvc": "123"}}',
                }
                token = await page.evaluate(
                    "([url, key, init]) => call(url, key, init)",
                    [api + "/v1/tokens", merchant["publishable_key"], body],
                )
                assert token.get("status") == 200, token
                assert token["body"]["id"].startswith("tok_")
                assert token["requestId"].startswith("req_")
                await screenshot(page, "cors-tokenized-from-the-app-origin")
                # The secret key is refused by the browser itself: the page never sees an answer.
                secret = await page.evaluate(
                    "([url, key]) => call(url, key, {method: 'GET'})",
                    [api + "/v1/customers", merchant["secret_key"]],
                )
                assert "blocked" in secret, secret

                # The same page served from an origin that is not on the list (localhost is another origin).
                await page.goto(f"http://localhost:{page_port}/checkout")
                elsewhere = await page.evaluate(
                    "([url, key, init]) => call(url, key, init)",
                    [api + "/v1/tokens", merchant["publishable_key"], body],
                )
                assert "blocked" in elsewhere, elsewhere
            finally:
                await context.close()
