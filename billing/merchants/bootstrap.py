"""Creating a merchant from the command line (outside any HTTP request)."""

from __future__ import annotations

from billing.config import Settings
from billing.db.engine import make_engine, make_sessionmaker, transaction
from billing.merchants.service import NewMerchant, create_merchant
from billing.settings.service import default_merchant_settings


async def create_merchant_from_cli(settings: Settings, name: str) -> NewMerchant:
    if not settings.database_url:
        raise ValueError("DATABASE_URL is required")
    engine = make_engine(settings.database_url, null_pool=True)
    try:
        async with transaction(make_sessionmaker(engine)) as session:
            # Outside production a new merchant starts with the in-process sandbox gateway (SPEC §2).
            return await create_merchant(
                session, name, settings=default_merchant_settings(production=settings.is_production)
            )
    finally:
        await engine.dispose()
