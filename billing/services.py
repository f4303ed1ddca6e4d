"""The process-wide dependencies of the service (one engine, one session factory, one Redis pool), built once and
handed to the API, the worker and the tests alike."""

from __future__ import annotations

from dataclasses import dataclass

from arq.connections import ArqRedis, RedisSettings, create_pool
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from billing.config import Settings
from billing.db.engine import make_engine, make_sessionmaker


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: ArqRedis

    @property
    def queue_name(self) -> str:
        return f"{self.settings.redis_prefix}:queue"

    async def close(self) -> None:
        await self.redis.aclose()
        await self.engine.dispose()


async def open_services(settings: Settings, *, pool_size: int = 10, null_pool: bool = False) -> Services:
    database_url, redis_url = settings.require_urls()
    engine = make_engine(database_url, pool_size=pool_size, null_pool=null_pool)
    redis = await create_pool(
        RedisSettings.from_dsn(redis_url), default_queue_name=f"{settings.redis_prefix}:queue"
    )
    return Services(settings=settings, engine=engine, sessions=make_sessionmaker(engine), redis=redis)
