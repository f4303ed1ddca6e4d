"""Which URLs the engine may POST webhooks to.

Anywhere: an absolute http(s) URL with a host, no credentials, no control characters; and every address the host
resolves to must be one webhooks may reach (SSRF): never link-local (the cloud metadata service at
169.254.169.254), multicast, reserved or unspecified, including when an IPv6 address carries an IPv4 one
(IPv4-mapped, 6to4, NAT64; IPv4-compatible, local-use NAT64 and Teredo addresses are refused outright). In
production also never loopback or private (RFC 1918, unique local fc00::/7). Outside production those two are
allowed, so a developer can point an endpoint at an app on their machine or network, and a name that does not
resolve yet is accepted when saved. The address check runs when the endpoint is saved and again at every
connection (webhooks.transport), because DNS answers change.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
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


# Outside production, webhooks may go to these (a developer's own machine and network).
DEVELOPMENT_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "::1/128", "fc00::/7")
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_TEREDO = ipaddress.IPv6Network("2001::/32")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def _carried_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for: IPv4-mapped, 6to4 (2002::/16) or NAT64 (64:ff9b::/96)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_refusal(address: IPAddress, *, production: bool = True) -> str | None:
    """Why the engine refuses to connect to `address`, or None when webhooks may go there. Outside production,
    loopback and private addresses (DEVELOPMENT_NETWORKS) are allowed."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in _TEREDO:
            return "a Teredo tunnel address (2001::/32), which can lead anywhere"
        if address in _NAT64_LOCAL:
            return "a local-use NAT64 address (64:ff9b:1::/48), which leads into a private network"
        carried = _carried_ipv4(address)
        if carried is not None:
            reason = address_refusal(carried, production=production)
            return None if reason is None else f"{reason} ({carried}, carried in an IPv6 address)"
        if address in _IPV4_COMPATIBLE and not (address.is_loopback or address.is_unspecified):
            return "an IPv4-compatible IPv6 address (::a.b.c.d, deprecated)"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "an unspecified address"
    if not production and any(address in network for network in DEVELOPMENT_NETWORKS):
        return None
    if address.is_loopback:
        return "a loopback address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return None


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


# Answers a host name with its addresses as text, in the resolver's order; raises OSError when it cannot.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    """The operating system's answer (getaddrinfo, in a thread)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def resolve(host: str, port: int, resolver: Resolver = system_resolver) -> list[IPAddress]:
    """Every address `host` resolves to, in the resolver's order."""
    literal = _literal(host)
    if literal is not None:
        return [literal]
    try:
        answers = await resolver(host, port)
    except (OSError, UnicodeError) as exc:
        raise UnsafeUrl(f"The host {host!r} does not resolve ({exc}).") from None
    addresses: list[IPAddress] = []
    for answer in answers:
        address = ipaddress.ip_address(answer.split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeUrl(f"The host {host!r} does not resolve to any address.")
    return addresses


async def reachable_addresses(
    host: str, port: int, *, production: bool = True, resolver: Resolver = system_resolver
) -> list[IPAddress]:
    """The addresses of `host`, every one of them one webhooks may reach; UnsafeUrl if any is not (a name that
    resolves to both an allowed and a refused address is refused: the resolver may hand out either)."""
    addresses = await resolve(host, port, resolver)
    for address in addresses:
        reason = address_refusal(address, production=production)
        if reason is not None:
            where = "public internet addresses" if production else "public, loopback or private addresses"
            raise UnsafeUrl(
                f"The host {host!r} resolves to {address}, {reason}: webhooks are only delivered to {where}."
            )
    return addresses


async def check_endpoint_url(
    url: str, *, production: bool, resolver: Resolver = system_resolver
) -> EndpointUrl:
    """Validate a URL for a webhook endpoint: its shape, and the addresses its host resolves to. Outside production
    a name that does not resolve yet is accepted (it is checked at every connection)."""
    parsed = parse_endpoint_url(url)
    try:
        await reachable_addresses(parsed.host, parsed.port, production=production, resolver=resolver)
    except UnsafeUrl:
        if (
            production
            or _literal(parsed.host) is not None
            or await _resolves(parsed.host, parsed.port, resolver)
        ):
            raise
    return parsed


async def _resolves(host: str, port: int, resolver: Resolver) -> bool:
    try:
        await resolve(host, port, resolver)
    except UnsafeUrl:
        return False
    return True
