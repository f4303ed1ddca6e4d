"""Fixtures: real PostgreSQL and Redis for every test run.

DATABASE_URL / REDIS_URL point at servers when set; otherwise embedded ones are started for the run. Each run
makes its own database and Redis key prefix, so two runs on one machine never collide.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from hypothesis import settings as hypothesis_settings

from billing.config import Settings
from billing.db.engine import asyncpg_url, transaction
from billing.db.migrate import upgrade
from billing.merchants.service import NewMerchant, create_merchant
from billing.services import Services, open_services
from billing.vault.keys import generate_key_line
from billing.vault.redact import install_pan_redaction

# In CI every property test runs with a fixed seed: a new counterexample is found and fixed locally, and never
# turns a submission red at random. Local runs keep exploring new examples.
# No deadline anywhere: a property's examples run beside other processes on a shared machine, and a slow example
# is not a wrong one (no timed assertions in tests).
hypothesis_settings.register_profile("ci", derandomize=True, database=None, deadline=None)
hypothesis_settings.register_profile("local", deadline=None)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "local")

# Real-browser fixtures (`browser`) for the pages of SPEC §10.
pytest_plugins = ["tests.browser"]

RUN_ID = secrets.token_hex(4)
# Test logs get the same card-number masking as every process (billing.logs.configure_logging).
install_pan_redaction()
# One vault key for the whole run, inherited by the processes tests start: every process sharing a database
# must hold the keys that wrap its card data keys.
os.environ.setdefault("BILLING_VAULT_KEYS", generate_key_line("test"))
# The suite sends many requests with one key or none from one address, in and out of process; the production
# rate limits would refuse some. tests/billing/test_rate_limits.py checks the limits with small ones of its own.
for _limit in ("BILLING_RATE_LIMIT_PER_KEY", "BILLING_RATE_LIMIT_USAGE_PER_KEY", "BILLING_RATE_LIMIT_PER_IP"):
    os.environ.setdefault(_limit, "100000")


THROWAWAY_CLUSTER = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


@dataclass(frozen=True)
class Servers:
    admin_database_url: str
    redis_url: str


def with_database(url: str, name: str) -> str:
    """The same server URL naming another database."""
    base, _, query = url.partition("?")
    head, _, _ = base.rpartition("/")
    return f"{head}/{name}" + (f"?{query}" if query else "")


def _asyncpg_dsn(url: str) -> str:
    return asyncpg_url(url).replace("postgresql+asyncpg://", "postgresql://", 1)


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    database_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    started: list[Any] = []
    folder = Path(tempfile.mkdtemp(prefix="billing-test-"))
    try:
        if not database_url:
            from billing.runtime.embedded import EmbeddedPostgres

            # A throwaway cluster: durability buys nothing here and every commit's fsync costs the suite minutes.
            postgres = EmbeddedPostgres.start(folder, settings=THROWAWAY_CLUSTER)
            started.append(postgres)
            database_url = postgres.admin_url("postgres")
        if not redis_url:
            from billing.runtime.embedded import EmbeddedRedis

            redis = EmbeddedRedis.start(folder)
            started.append(redis)
            redis_url = redis.url
        yield Servers(admin_database_url=database_url, redis_url=redis_url)
    finally:
        for server in reversed(started):
            server.stop()


def run_admin_sql(admin_database_url: str, sql: str) -> None:
    """Run one statement (CREATE / DROP DATABASE) on the `postgres` database of the server of the URL."""
    import asyncio

    async def run() -> None:
        connection = await asyncpg.connect(_asyncpg_dsn(with_database(admin_database_url, "postgres")))
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(run())


@pytest.fixture(scope="session")
def database_url(servers: Servers) -> Iterator[str]:
    """A fresh database for this run, migrated to head, dropped at the end."""
    name = f"billing_test_{RUN_ID}"
    run_admin_sql(servers.admin_database_url, f'CREATE DATABASE "{name}"')
    url = with_database(servers.admin_database_url, name)
    upgrade(url)
    yield url
    run_admin_sql(servers.admin_database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def settings(database_url: str, servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=servers.redis_url,
        data_dir=tmp_path_factory.mktemp("data"),
        env="test",
        redis_prefix=f"billing-test-{RUN_ID}",
        vault_keys=os.environ["BILLING_VAULT_KEYS"],
        # Generous rate limits, as for the processes the suite starts (above).
        rate_limit_per_key=(100_000, 200_000),
        rate_limit_usage_per_key=(100_000, 200_000),
        rate_limit_per_ip=(100_000, 200_000),
    )


@pytest.fixture(scope="session")
async def services(settings: Settings) -> AsyncIterator[Services]:
    services = await open_services(settings, pool_size=20)
    yield services
    keys = [key async for key in services.redis.scan_iter(match=f"{settings.redis_prefix}*")]
    if keys:
        await services.redis.delete(*keys)
    await services.close()


@pytest.fixture(scope="session")
def app(services: Services) -> Any:
    from billing.api.app import create_app

    return create_app(services)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://billing.test"
    ) as client:
        yield client


async def _new_merchant(services: Services, name: str) -> NewMerchant:
    async with transaction(services.sessions) as session:
        return await create_merchant(session, name)


@pytest.fixture
async def merchant(services: Services) -> NewMerchant:
    return await _new_merchant(services, "Merchant A")


@pytest.fixture
async def other_merchant(services: Services) -> NewMerchant:
    return await _new_merchant(services, "Merchant B")


@pytest.fixture
async def api(app: Any, merchant: NewMerchant) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client authenticated as merchant A."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://billing.test",
        headers={"Authorization": f"Bearer {merchant.secret_key}"},
    ) as client:
        yield client


@pytest.fixture
async def other_api(app: Any, other_merchant: NewMerchant) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client authenticated as merchant B."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://billing.test",
        headers={"Authorization": f"Bearer {other_merchant.secret_key}"},
    ) as client:
        yield client
