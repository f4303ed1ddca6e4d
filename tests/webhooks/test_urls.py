"""Which URLs webhooks may go to: shape everywhere, public addresses only in production."""

from __future__ import annotations

import ipaddress

import pytest

from webhooks.urls import UnsafeUrl, address_refusal, check_endpoint_url, parse_endpoint_url, resolve


def test_a_url_is_split_into_scheme_host_and_port() -> None:
    parsed = parse_endpoint_url("https://hooks.example.com/billing?x=1")
    assert (parsed.scheme, parsed.host, parsed.port) == ("https", "hooks.example.com", 443)
    assert parse_endpoint_url("http://example.com:8080/").port == 8080


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fd00::1", "private"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "private"),
        ("100.64.0.1", "reserved"),
        ("240.0.0.1", "private"),
    ],
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    refusal = address_refusal(ipaddress.ip_address(address))
    assert refusal is not None and reason in refusal


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is None


async def test_names_are_resolved_in_production_only() -> None:
    assert (await check_endpoint_url("http://localhost:9/hook", production=False)).host == "localhost"
    with pytest.raises(UnsafeUrl, match="loopback"):
        await check_endpoint_url("http://localhost:9/hook", production=True)
    assert ipaddress.ip_address("127.0.0.1") in await resolve("localhost", 80)


async def test_a_name_that_does_not_resolve_is_refused_in_production() -> None:
    with pytest.raises(UnsafeUrl, match="does not resolve"):
        await check_endpoint_url("https://no-such-host.invalid/hook", production=True)
