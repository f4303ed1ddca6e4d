"""Which URLs webhooks may go to: shape everywhere; addresses everywhere (public only in production, loopback and
private too elsewhere), IPv4 addresses carried in IPv6 ones included (issue #12 item 15)."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from billing.merchants.service import NewMerchant
from webhooks.transport import GuardedBackend, RefusedAddress
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
        ("0.0.0.0", "unspecified"),
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


async def test_loopback_names_are_allowed_outside_production_only() -> None:
    assert (await check_endpoint_url("http://localhost:9/hook", production=False)).host == "localhost"
    with pytest.raises(UnsafeUrl, match="loopback"):
        await check_endpoint_url("http://localhost:9/hook", production=True)
    assert ipaddress.ip_address("127.0.0.1") in await resolve("localhost", 80)


METADATA = "169.254.169.254"
# Each an IPv6 address that leads to the cloud metadata service (or could), with the reason it is refused.
CARRIERS_OF_METADATA = [
    ("2002:a9fe:a9fe::1", "link-local"),  # 6to4, the address of issue #12
    ("2002:a9fe:a9fe:1234:5678::1", "link-local"),
    ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64, well-known prefix
    ("::ffff:a9fe:a9fe", "link-local"),  # IPv4-mapped
    ("::a9fe:a9fe", "IPv4-compatible"),
    ("64:ff9b:1::a9fe:a9fe", "local-use NAT64"),
    ("2001:0:4136:e378:8000:63bf:5601:5601", "Teredo"),  # client 169.254.169.254, obfuscated
]


@pytest.mark.parametrize(("address", "reason"), CARRIERS_OF_METADATA)
@pytest.mark.parametrize("production", [True, False], ids=["production", "development"])
def test_ipv4_carried_in_ipv6_is_judged_as_the_ipv4_address(
    address: str, reason: str, production: bool
) -> None:
    refusal = address_refusal(ipaddress.ip_address(address), production=production)
    assert refusal is not None and reason in refusal


@pytest.mark.parametrize(
    "address",
    [
        "2002:5db8:d70e::1",  # 6to4 of 93.184.215.14
        "64:ff9b::5db8:d70e",  # NAT64 of 93.184.215.14 (an IPv6-only network reaching a public IPv4 host)
        "::ffff:93.184.215.14",
    ],
)
def test_ipv6_carrying_a_public_ipv4_address_is_allowed(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "::1", "10.1.2.3", "172.20.0.5", "192.168.1.10", "fd12:3456::1", "2002:c0a8:0101::1"],
)
def test_outside_production_loopback_and_private_hosts_are_allowed(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address), production=False) is None
    assert address_refusal(ipaddress.ip_address(address), production=True) is not None


@pytest.mark.parametrize(
    "address", [METADATA, "fe80::1", "224.0.0.1", "0.0.0.0", "::", "100.64.0.1", "240.0.0.1", "ff02::1"]
)
def test_outside_production_the_rest_stays_refused(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address), production=False) is not None


@pytest.mark.parametrize("host", ["[2002:a9fe:a9fe::1]", "169.254.169.254", "[64:ff9b::a9fe:a9fe]"])
async def test_an_endpoint_aimed_at_the_metadata_service_is_refused_outside_production_too(
    api: httpx.AsyncClient, host: str
) -> None:
    response = await api.post(
        "/v1/webhook_endpoints", json={"url": f"http://{host}/latest/meta-data", "enabled_events": ["*"]}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("url_invalid", "url")
    assert "link-local" in error["message"]


async def test_an_endpoint_on_the_developers_machine_is_accepted_outside_production(
    api: httpx.AsyncClient, merchant: NewMerchant
) -> None:
    response = await api.post(
        "/v1/webhook_endpoints", json={"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"]}
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("production", [True, False], ids=["production", "development"])
async def test_every_connection_is_guarded_outside_production_too(production: bool) -> None:
    backend = GuardedBackend(production=production)
    with pytest.raises(RefusedAddress, match="link-local"):
        await backend.connect_tcp("2002:a9fe:a9fe::1", 80, timeout=1)
    with pytest.raises(RefusedAddress, match="link-local"):
        await backend.connect_tcp(METADATA, 80, timeout=1)


async def test_a_name_that_does_not_resolve_is_refused_in_production() -> None:
    with pytest.raises(UnsafeUrl, match="does not resolve"):
        await check_endpoint_url("https://no-such-host.invalid/hook", production=True)
