"""The merchant's logo, fetched from `settings.branding.logo_url` by the engine and served from its own address
(`/portal/logo`, `/i/<token>/logo`) and drawn into PDFs, so customers' browsers load nothing from other hosts
(the portal's Content-Security-Policy names none) and the merchant's host never sees who reads an invoice.

Only https, no redirects, at most 512 KB, and only PNG, JPEG, GIF or WebP whose first bytes say so (no SVG: it
can carry script). Outside development and test, hosts that resolve to loopback, private or link-local
addresses are refused. Each process keeps a logo for an hour (a failed fetch for five minutes).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

log = logging.getLogger("billing.logo")

MAX_BYTES = 512 * 1024
TIMEOUT_SECONDS = 5.0
KEEP_SECONDS = 3600.0
KEEP_FAILURE_SECONDS = 300.0
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


@dataclass(frozen=True)
class Logo:
    content: bytes
    media_type: str


def sniff(content: bytes) -> str | None:
    """The image type the bytes start with, among those we serve."""
    for signature, media_type in _SIGNATURES:
        if content.startswith(signature):
            return media_type
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    return None


_cache: dict[str, tuple[float, Logo | None]] = {}
_locks: dict[str, asyncio.Lock] = {}


async def _public_host(host: str) -> bool:
    infos = await asyncio.get_running_loop().getaddrinfo(host, 443, type=socket.SOCK_STREAM)
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if address.is_private or address.is_loopback or address.is_link_local or address.is_reserved:
            return False
    return bool(infos)


async def _fetch(url: str, *, allow_private: bool) -> Logo | None:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        return None
    if not allow_private and not await _public_host(parts.hostname):
        log.warning("logo %s refused: its host is not a public address", url)
        return None
    accept = {"Accept": "image/png,image/jpeg,image/gif,image/webp"}
    async with (
        httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False) as client,
        client.stream("GET", url, headers=accept) as response,
    ):
        if response.status_code != 200:
            log.warning("logo %s answered %s", url, response.status_code)
            return None
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > MAX_BYTES:
                log.warning("logo %s is larger than %d bytes", url, MAX_BYTES)
                return None
            chunks.append(chunk)
    content = b"".join(chunks)
    media_type = sniff(content)
    if media_type is None:
        log.warning("logo %s is not a PNG, JPEG, GIF or WebP image", url)
        return None
    return Logo(content, media_type)


async def load_logo(url: str | None, *, allow_private: bool | None = None) -> Logo | None:
    """The logo at `url`, from this process's cache or fetched now; None when there is none to show.
    Private addresses are allowed outside production (BILLING_ENV) unless `allow_private` says otherwise."""
    if not url:
        return None
    if allow_private is None:
        allow_private = os.environ.get("BILLING_ENV", "development").strip().lower() != "production"
    now = time.monotonic()
    cached = _cache.get(url)
    if cached is not None and cached[0] > now:
        return cached[1]
    lock = _locks.setdefault(url, asyncio.Lock())
    async with lock:
        cached = _cache.get(url)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            logo = await _fetch(url, allow_private=allow_private)
        except (httpx.HTTPError, OSError, ValueError) as exc:
            log.warning("logo %s could not be fetched: %s", url, exc)
            logo = None
        keep = KEEP_SECONDS if logo is not None else KEEP_FAILURE_SECONDS
        _cache[url] = (time.monotonic() + keep, logo)
        return logo
