"""Which URLs the engine may POST webhooks to.

Anywhere: an absolute http(s) URL with a host, no credentials, no control characters. In production also: every
address the host resolves to must be public, so a merchant cannot aim our workers at the cloud metadata service,
our own PostgreSQL, or anything else on our private network (SSRF). The address check runs when the endpoint is
saved and again at every connection (webhooks.transport), because DNS answers change.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeUrl(ValueError):
    """The URL is not one the engine will deliver to; the message says why, for a person to act on."""


@dataclass(frozen=True)
class EndpointUrl:
    url: str
    scheme: str
    host: str
    port: int


def parse_endpoint_url(url: str) -> EndpointUrl:
    """Check the shape of a webhook URL (no network access) and return its parts."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in url):
        raise UnsafeUrl("The URL contains spaces or control characters; percent-encode them.")
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname
    except ValueError as exc:
        raise UnsafeUrl(f"The URL cannot be parsed ({exc}).") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl("The URL must start with https:// (or http://), e.g. https://example.com/webhooks.")
    if not host:
        raise UnsafeUrl("The URL has no host; use a full URL such as https://example.com/webhooks.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl(
            "Put no credentials in the URL: they would be stored and shown in clear. Authenticate our requests "
            "by verifying their webhook-signature header instead."
        )
    try:
        host.encode("idna")
    except UnicodeError:
        raise UnsafeUrl(f"The host {host!r} is not a valid domain name.") from None
    return EndpointUrl(
        url=url, scheme=parts.scheme, host=host, port=port or (443 if parts.scheme == "https" else 80)
    )


def address_refusal(address: IPAddress) -> str | None:
    """Why the engine refuses to connect to `address` in production, or None when it is a public address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or address.is_unspecified or not address.is_global:
        return "a reserved address"
    return None


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (getaddrinfo, in a thread), in the resolver's order."""
    literal = _literal(host)
    if literal is not None:
        return [literal]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeUrl(f"The host {host!r} does not resolve ({exc}).") from None
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeUrl(f"The host {host!r} does not resolve to any address.")
    return addresses


async def public_addresses(host: str, port: int) -> list[IPAddress]:
    """The addresses of `host`, all of them public; UnsafeUrl if any is not (a name that resolves to both a
    public and a private address is refused: the resolver may hand out either)."""
    addresses = await resolve(host, port)
    for address in addresses:
        reason = address_refusal(address)
        if reason is not None:
            raise UnsafeUrl(
                f"The host {host!r} resolves to {address}, {reason}: webhooks are only delivered to public "
                "internet addresses."
            )
    return addresses


async def check_endpoint_url(url: str, *, production: bool) -> EndpointUrl:
    """Validate a URL for a webhook endpoint; in production, resolve it and refuse non-public addresses."""
    parsed = parse_endpoint_url(url)
    if production:
        await public_addresses(parsed.host, parsed.port)
    return parsed
