"""Gateway types (the adapters that exist) and the process's pool of HTTP clients to reach them.

A new payment method type plugs in by registering a `GatewayType`: how to validate a connection's settings, how to
build its adapter, which payment method types it debits, which of its credentials are secret (sealed at rest),
how to get sandbox credentials, its in-process sandbox, and how to answer its notifications. Routing, the
janitor and the stats never name a concrete gateway. The channels of SPEC §8 register theirs in
billing.channels.types.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from billing.errors import InvalidRequest
from billing.gateways.base import (
    ChargeOutcome,
    ChargeRequest,
    ConnectionConfig,
    Gateway,
    RefundOutcome,
    RefundRequest,
    RetrieveOutcome,
    RetrieveRefundOutcome,
    TechnicalError,
)
from billing.gateways.sandbox import SandboxApp
from billing.gateways.sandbox_client import SandboxGateway
from billing.gateways.sandbox_store import MemoryStore, SandboxStore
from webhooks.secret_box import SecretBox

IN_PROCESS_BASE_URL = "http://sandbox.in-process"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]
# (status, content type, body): the answer a channel expects to one of its notifications.
NotifyAnswer = tuple[int, str, bytes]


@dataclass(frozen=True)
class GatewayType:
    name: str
    description: str
    build: Callable[[ConnectionConfig, GatewayPool], Gateway]
    # Raises InvalidRequest (with `param`) when a connection of this type cannot be used in this environment.
    validate: Callable[[ConnectionConfig, bool, str], None]
    # The payment method types its connections debit (routing picks connections by it).
    payment_method_types: frozenset[str] = frozenset({"card"})
    # `credentials` fields it accepts, and which of them are secret (sealed at rest, never shown).
    credential_fields: frozenset[str] = frozenset()
    secret_fields: frozenset[str] = frozenset()
    # (the credentials given in plaintext, the secret fields kept sealed from before, production, param):
    # raises InvalidRequest naming the field.
    check_credentials: Callable[[Mapping[str, str], frozenset[str], bool, str], None] | None = None
    # Outside production, a connection saved without credentials gets a sandbox account from its sandbox.
    provision: Callable[[ConnectionConfig, GatewayPool], Awaitable[dict[str, str]]] | None = None
    # The in-process sandbox of connections with `url: null` (one per type and process).
    in_process_sandbox: Callable[[GatewayPool], ASGIApp] | None = None
    # How to answer a notification: (accepted, why) → NotifyAnswer.
    notification_reply: Callable[[bool, str], NotifyAnswer] | None = None


# Gateway calls in flight at once in one process, by default (BILLING_GATEWAY_CONCURRENCY).
DEFAULT_MAX_CONCURRENT_CALLS = 16


class GatewayPool:
    """One per process: an httpx client per base URL (connection reuse), the adapters built on them, and the bound
    on gateway calls in flight at once in this process: a burst of refunds or charges queues here, holding no
    database connection (callers reach a gateway only outside their transactions), instead of opening hundreds of
    sockets to a gateway that is slow."""

    def __init__(
        self,
        *,
        production: bool = False,
        in_process_app: SandboxApp | None = None,
        secrets: SecretBox | None = None,
        sandbox_store: Callable[[str], SandboxStore] | None = None,
        public_url: Callable[[], str] | None = None,
        max_concurrent_calls: int = DEFAULT_MAX_CONCURRENT_CALLS,
    ) -> None:
        self._clients: dict[str, httpx.AsyncClient] = {}
        # Without one (a pool that only calls gateways by URL), a connection with `url: null` gets a sandbox
        # of its own in memory.
        self.in_process_app = in_process_app or SandboxApp()
        self.production = production
        self.max_concurrent_calls = max_concurrent_calls
        self.call_slots = asyncio.Semaphore(max_concurrent_calls)
        # The most calls seen in flight at once (for tests and benchmarks: the bound holds).
        self.in_flight = 0
        self.peak_in_flight = 0
        # Opens the sealed secret credentials of connections (billing.gateways.credentials).
        self.secrets = secrets
        self._sandbox_store = sandbox_store or (lambda namespace: MemoryStore())
        # Where people (and channels) reach this engine: links to in-process sandbox pages, notify URLs.
        self.public_url = public_url or (lambda: DEFAULT_PUBLIC_URL)
        # The engine's app that receives channel notifications; in-process sandboxes deliver through it. Wired by
        # the composition roots (billing.api.app, billing.worker.settings).
        self.notify_app: ASGIApp | None = None
        self._channel_sandboxes: dict[str, ASGIApp] = {}

    def sandbox_store(self, namespace: str) -> SandboxStore:
        return self._sandbox_store(namespace)

    def channel_sandbox(self, type_name: str) -> ASGIApp:
        """The in-process sandbox of a channel type, made on first use (the same one the engine mounts)."""
        app = self._channel_sandboxes.get(type_name)
        if app is None:
            factory = gateway_type(type_name).in_process_sandbox
            if factory is None:
                raise LookupError(f"gateway type {type_name!r} has no in-process sandbox")
            app = self._channel_sandboxes[type_name] = factory(self)
        return app

    def channel_sandboxes(self) -> dict[str, ASGIApp]:
        """Every registered type's in-process sandbox (for the engine to mount outside production)."""
        return {
            name: self.channel_sandbox(name)
            for name, kind in GATEWAY_TYPES.items()
            if kind.in_process_sandbox
        }

    def in_process_client(self, type_name: str) -> httpx.AsyncClient:
        """A client bound to a channel's in-process sandbox (no network)."""
        key = f"in-process:{type_name}"
        client = self._clients.get(key)
        if client is None:
            transport = httpx.ASGITransport(app=self.channel_sandbox(type_name))
            client = self._clients[key] = httpx.AsyncClient(
                transport=transport, base_url=f"http://{type_name}.in-process"
            )
        return client

    def client(self, base_url: str | None) -> httpx.AsyncClient:
        key = base_url or IN_PROCESS_BASE_URL
        client = self._clients.get(key)
        if client is None:
            if base_url is None:
                client = httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=self.in_process_app),
                    base_url=IN_PROCESS_BASE_URL,
                )
            else:
                client = httpx.AsyncClient(
                    base_url=base_url, limits=httpx.Limits(max_connections=200, max_keepalive_connections=50)
                )
            self._clients[key] = client
        return client

    def gateway(self, connection: ConnectionConfig) -> Gateway:
        """The adapter of `connection`. A connection this environment does not allow (settings are validated when
        written, but a row can be altered behind the API's back) gets an adapter that sends nothing: card numbers
        never go to a sandbox URL in production."""
        try:
            kind = gateway_type(connection.type)
            kind.validate(connection, self.production, "gateways")
        except (LookupError, InvalidRequest) as exc:
            return RefusedGateway(connection, str(exc))
        return kind.build(connection, self)

    @asynccontextmanager
    async def call_slot(self) -> AsyncIterator[None]:
        """One of the process's gateway call slots, for the length of one call (`routing.call_gateway`)."""
        async with self.call_slots:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            try:
                yield
            finally:
                self.in_flight -= 1

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


class RefusedGateway:
    """Answers every call with a TechnicalError, without sending anything anywhere."""

    def __init__(self, connection: ConnectionConfig, reason: str) -> None:
        self.connection = connection
        self._refusal = TechnicalError("gateway_refused", reason)

    async def charge(self, request: ChargeRequest) -> ChargeOutcome:
        return self._refusal

    async def retrieve(self, idempotency_key: str) -> RetrieveOutcome:
        return self._refusal

    async def refund(self, request: RefundRequest) -> RefundOutcome:
        return self._refusal

    async def retrieve_refund(self, idempotency_key: str, charge_key: str) -> RetrieveRefundOutcome:
        return self._refusal


def serves(connection: ConnectionConfig, payment_method_type: str) -> bool:
    """Whether a connection's gateway type debits payment methods of `payment_method_type`."""
    kind = GATEWAY_TYPES.get(connection.type)
    return kind is not None and payment_method_type in kind.payment_method_types


def _validate_sandbox(connection: ConnectionConfig, production: bool, param: str) -> None:
    if production:
        raise InvalidRequest(
            "The sandbox gateway is not available when BILLING_ENV=production. Configure a real gateway.",
            code="sandbox_disabled",
            param=f"{param}.type",
        )
    if connection.url is not None:
        parts = urlsplit(connection.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidRequest(
                "url must be an http(s) URL of a sandbox gateway, e.g. http://127.0.0.1:9100, or null for the "
                "in-process sandbox.",
                param=f"{param}.url",
            )


def _build_sandbox(connection: ConnectionConfig, pool: GatewayPool) -> Gateway:
    return SandboxGateway(connection, pool.client(connection.url), in_process=connection.url is None)


GATEWAY_TYPES: dict[str, GatewayType] = {}


def register_gateway_type(gateway: GatewayType) -> None:
    if gateway.name in GATEWAY_TYPES and GATEWAY_TYPES[gateway.name] is not gateway:
        raise ValueError(f"gateway type {gateway.name!r} is already registered")
    GATEWAY_TYPES[gateway.name] = gateway


def gateway_type(name: str) -> GatewayType:
    try:
        return GATEWAY_TYPES[name]
    except KeyError:
        raise LookupError(f"no gateway type {name!r} is registered") from None


register_gateway_type(
    GatewayType(
        name="sandbox",
        description="The built-in sandbox card processor (test cards decide outcomes); not in production.",
        build=_build_sandbox,
        validate=_validate_sandbox,
    )
)
