"""DNS rebinding (issue 19 item 5): a name whose answer changes between the check and the connection. The
guard in webhooks.transport resolves once per connection, checks every address, and connects to the address it
checked, so a name that passed when the endpoint was saved but points at a refused address when a delivery
connects is refused, and a name that turns bad after the check cannot redirect a connection already checked.

The resolver here is a small stand-in for DNS whose answers the test scripts; everything else (the guarded
client, the TCP connection, the receiving HTTP server) is real."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.webhooks.receiver import Receiver
from webhooks.transport import make_client
from webhooks.urls import check_endpoint_url

PUBLIC = "93.184.215.14"
METADATA = "169.254.169.254"


class ScriptedDns:
    """Answers `name` with the next address of its script (the last one forever after) and counts the asks."""

    def __init__(self, name: str, *answers: str) -> None:
        self.name, self.answers, self.asked = name, list(answers), 0

    async def __call__(self, host: str, port: int) -> list[str]:
        if host != self.name:
            raise OSError(f"{host} is not in this test's DNS")
        answer = self.answers[min(self.asked, len(self.answers) - 1)]
        self.asked += 1
        return [answer]


async def test_a_name_that_rebinds_to_the_metadata_address_after_it_was_saved_is_refused_at_connect() -> None:
    dns = ScriptedDns("hooks.rebind.test", PUBLIC, METADATA)
    saved = await check_endpoint_url("https://hooks.rebind.test/hook", production=True, resolver=dns)
    assert saved.host == "hooks.rebind.test"
    async with make_client(production=True, resolver=dns) as client:
        with pytest.raises(
            httpx.ConnectError, match=re.escape("resolves to 169.254.169.254, a link-local address")
        ):
            await client.post("https://hooks.rebind.test/hook", content=b"{}")
    # The delivery asked the resolver itself, once, instead of trusting the answer checked when saved.
    assert dns.asked == 2


@pytest.mark.parametrize("production", [True, False], ids=["production", "development"])
async def test_a_private_answer_at_connect_time_is_refused_in_production_only(
    receiver: Receiver, production: bool
) -> None:
    dns = ScriptedDns("app.rebind.test", PUBLIC, "127.0.0.1")
    await check_endpoint_url("http://app.rebind.test/hooks", production=True, resolver=dns)
    url = receiver.url().replace("127.0.0.1", "app.rebind.test")
    async with make_client(production=production, resolver=dns) as client:
        if production:
            with pytest.raises(httpx.ConnectError, match=re.escape("127.0.0.1, a loopback address")):
                await client.post(url, content=b"{}")
            assert receiver.requests == []
        else:
            assert (await client.post(url, content=b"{}")).status_code == 200
            assert len(receiver.requests) == 1


async def test_the_connection_goes_to_the_address_that_was_checked_not_to_a_second_answer(
    receiver: Receiver,
) -> None:
    """The first answer (loopback, allowed outside production) is checked and connected to; had the client
    resolved again, it would have got the metadata address. One ask per connection, and the request lands."""
    dns = ScriptedDns("dev.rebind.test", "127.0.0.1", METADATA)
    async with make_client(production=False, resolver=dns) as client:
        response = await client.post(receiver.url().replace("127.0.0.1", "dev.rebind.test"), content=b"{}")
    assert response.status_code == 200
    assert dns.asked == 1
    [received] = receiver.requests
    assert received.headers["host"].startswith("dev.rebind.test")
