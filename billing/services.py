"""The process-wide dependencies of the service (one engine, one session factory, one Redis pool), built once and
handed to the API, the worker and the tests alike."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import billing.channels.types  # noqa: F401  registers the channels' gateway types (alipay, wechat_pay, unionpay, ecny)
from billing.config import Settings
from billing.db.engine import make_engine, make_sessionmaker, transaction
from billing.gateways.registry import GatewayPool
from billing.gateways.sandbox import in_process_sandbox
from billing.gateways.sandbox_store import RedisStore
from billing.invoices.hosted import public_base_url
from billing.portal.links import install_link_key
from billing.vault.cvc import CvcHolder
from billing.vault.keys import load_keyring
from billing.vault.service import Vault
from billing.worker import codec
from webhooks.endpoints import seal_plaintext_secrets


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: ArqRedis
    # The card vault (its key ring is loaded here, so a production process without BILLING_VAULT_KEYS refuses
    # to start), the HTTP clients of the payment gateways, and the CVC holder.
    vault: Vault = field(init=False)
    gateways: GatewayPool = field(init=False)
    cvc: CvcHolder = field(init=False)

    def __post_init__(self) -> None:
        self.vault = Vault(load_keyring(self.settings), self.sessions)
        prefix = self.settings.redis_prefix
        self.gateways = GatewayPool(
            production=self.settings.is_production,
            in_process_app=in_process_sandbox(self.redis, prefix),
            secrets=self.vault,
            # In-process channel sandboxes keep their ledgers in this engine's Redis, shared by its processes.
            sandbox_store=lambda channel: RedisStore(self.redis, f"{prefix}:sandbox:{channel}"),
            public_url=public_base_url,
            max_concurrent_calls=self.settings.gateway_concurrency,
        )
        self.cvc = CvcHolder(self.redis, self.settings.redis_prefix, self.vault)
        # Portal links are signed with a key from this process's vault, wherever they are made (API, emails).
        install_link_key(self.vault.portal_link_key)

    @property
    def queue_name(self) -> str:
        return f"{self.settings.redis_prefix}:queue"

    async def close(self) -> None:
        await self.gateways.aclose()
        await self.redis.aclose()
        await self.engine.dispose()


def redis_client(redis_url: str, queue_name: str) -> ArqRedis:
    """The process's Redis client (arq's, to enqueue jobs). It connects on first use and again after Redis comes
    back, so a process starts, and goes on, while Redis is down: /ready says so, the worker waits for it."""
    return ArqRedis(
        ConnectionPool.from_url(redis_url, socket_connect_timeout=2, socket_timeout=10),
        job_serializer=codec.serialize,
        job_deserializer=codec.deserialize,
        default_queue_name=queue_name,
    )


async def open_services(settings: Settings, *, pool_size: int = 10, null_pool: bool = False) -> Services:
    database_url, redis_url = settings.require_urls()
    engine = make_engine(database_url, pool_size=pool_size, null_pool=null_pool)
    redis = redis_client(redis_url, f"{settings.redis_prefix}:queue")
    services = Services(settings=settings, engine=engine, sessions=make_sessionmaker(engine), redis=redis)
    # Load the vault's master secret now, on a free pool: loaded lazily, it would need a second connection
    # inside requests that already hold one, and a burst of cold requests could exhaust the pool.
    try:
        await services.vault.request_fingerprint_key()
    except Exception:  # the database may not be migrated or up yet: then the first request loads it
        logging.getLogger("billing").warning("vault secret not loaded at start; it will load on first use")
        return services
    async with transaction(services.sessions) as session:
        sealed = await seal_plaintext_secrets(session, services.vault)
    if sealed:
        logging.getLogger("billing").info("sealed the signing secrets of %d webhook endpoints", sealed)
    return services
