"""Helpers for the portal tests: a visitor (a browser-like HTTP client with its own cookie jar), links opened
as a customer opens them, and the hidden fields of the forms a page rendered."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import urlsplit

import httpx


def visitor(app: Any, **headers: str) -> httpx.AsyncClient:
    """A browser of one person: its own cookies; https, so the Secure cookie is kept (as a browser does)."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://billing.test", headers=headers
    )


async def portal_link(api: httpx.AsyncClient, customer: str, **fields: Any) -> dict[str, Any]:
    created = await api.post("/v1/portal_sessions", json={"customer": customer, **fields})
    assert created.status_code == 200, created.text
    session: dict[str, Any] = created.json()
    return session


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def sign_in(client: httpx.AsyncClient, url: str) -> str:
    """Open a link as its customer does; the page it lands on (a path without the token)."""
    opened = await client.get(path_of(url))
    assert opened.status_code == 303, opened.text
    location = opened.headers["location"]
    assert "/portal/s/" not in location
    return location


def form(page: str, action: str) -> dict[str, str]:
    """The hidden fields of the POST form that posts to `action` on `page`."""
    for match in re.finditer(
        r'<form\b[^>]*\bmethod="post"[^>]*\baction="([^"]+)"[^>]*>(.*?)</form>', page, re.S
    ):
        if html.unescape(match.group(1)) == action:
            return {
                html.unescape(name): html.unescape(value)
                for name, value in re.findall(
                    r'<input type="hidden" name="([^"]+)" value="([^"]*)">', match.group(2)
                )
            }
    raise AssertionError(f"no form posting to {action} on the page:\n{page}")


def visible_text(page: str) -> str:
    """The page's words as a person reads them (tags out, entities decoded, spaces collapsed)."""
    body = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", page, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())
