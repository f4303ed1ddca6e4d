"""One HTTP exchange with a gateway or channel, and what its failures mean for money (shared by every adapter).

Which failures are technical (the request certainly did nothing: fail over) and which are unknown (it may have
been processed: ask later) is decided by what reached the other side:
- connect errors and pool timeouts: nothing was sent → TechnicalError;
- 503 (the gateway says it is down): not processed → TechnicalError;
- read/write timeouts, a dropped connection, any other 5xx, our own deadline: the request may have been
  processed → Unknown.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from billing.gateways.base import ConnectionConfig, TechnicalError, Unknown


class Answer(Exception):
    """A failure already classified as an outcome; adapters catch it and return the outcome."""

    def __init__(self, outcome: TechnicalError | Unknown) -> None:
        super().__init__(outcome.detail)
        self.outcome = outcome


class GatewayHttp:
    """The HTTP side of one connection: its client, its timeouts, and the classification of failures."""

    def __init__(self, connection: ConnectionConfig, client: httpx.AsyncClient, *, in_process: bool) -> None:
        self.connection = connection
        self.client = client
        seconds = connection.timeout_ms / 1000
        self.timeout = httpx.Timeout(seconds, connect=min(seconds, 3.0), pool=min(seconds, 3.0))
        # httpx timeouts do not apply to an in-process (ASGI) transport; our own deadline does, always. Over the
        # network it is a backstop just above httpx's own, which classify more precisely.
        self.deadline = seconds if in_process else seconds * 2 + 1

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            async with asyncio.timeout(self.deadline):
                return await self.client.request(method, url, timeout=self.timeout, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise Answer(
                TechnicalError("gateway_unreachable", f"{type(exc).__name__} on {method} {url}")
            ) from None
        except httpx.TimeoutException as exc:
            raise Answer(
                Unknown(f"{type(exc).__name__}: no answer within {self.connection.timeout_ms} ms")
            ) from None
        except TimeoutError:
            raise Answer(Unknown(f"no answer within {self.connection.timeout_ms} ms")) from None
        except httpx.HTTPError as exc:
            raise Answer(Unknown(f"{type(exc).__name__} during {method} {url}")) from None


def server_trouble(response: httpx.Response) -> TechnicalError | Unknown:
    """An answer that is not the operation's: 503 down (technical), other 5xx unknown, 4xx refused (technical)."""
    if response.status_code == 503:
        return TechnicalError("gateway_unavailable", "the gateway answered 503 (down)")
    if response.status_code >= 500:
        return Unknown(f"the gateway answered {response.status_code}")
    return TechnicalError(
        "gateway_request_invalid", f"the gateway refused the request ({response.status_code})"
    )
