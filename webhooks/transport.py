"""The HTTP client that delivers webhooks.

Its connections go through `GuardedBackend`, which resolves the host itself, refuses the connection unless every
address is one webhooks may reach (webhooks.urls: public only in production; loopback and private too elsewhere),
and then connects to the address it checked. Checking
and connecting on the same answer closes the DNS-rebinding gap that a "resolve, check, then let the client resolve
again" sequence leaves open. TLS still verifies the certificate against the URL's host name.
"""

from __future__ import annotations

import typing

import httpcore
import httpx

from webhooks.urls import Resolver, UnsafeUrl, reachable_addresses, system_resolver


class RefusedAddress(httpcore.ConnectError):
    """The endpoint's host resolves to an address webhooks may not reach."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, *, production: bool = True, resolver: Resolver = system_resolver) -> None:
        self._inner = httpcore.AnyIOBackend()
        self.production = production
        self.resolver = resolver

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await reachable_addresses(
                host, port, production=self.production, resolver=self.resolver
            )
        except UnsafeUrl as exc:
            raise RefusedAddress(str(exc)) from None
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise RefusedAddress("webhooks are not delivered over unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, limits: httpx.Limits, *, production: bool, resolver: Resolver) -> None:
        super().__init__(limits=limits, trust_env=False)
        # httpx does not take a network backend; its pool is rebuilt with the same settings plus ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(production=production, resolver=resolver),
        )


def make_client(
    *, production: bool, max_connections: int = 100, resolver: Resolver = system_resolver
) -> httpx.AsyncClient:
    """A client for webhook deliveries: no redirects followed (a 3xx is a failure, and following it could lead
    anywhere), no proxy or netrc from the environment, and the address guard on every connection (with the
    development allowance for loopback and private addresses outside production). Timeouts are applied per attempt
    by the caller. `resolver` answers host names (the operating system's unless a test or a deployment with its
    own DNS gives another)."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    transport = _GuardedTransport(limits, production=production, resolver=resolver)
    return httpx.AsyncClient(
        transport=transport,
        follow_redirects=False,
        trust_env=False,
        headers={"user-agent": "billing-engine-webhooks/1", "content-type": "application/json"},
    )
