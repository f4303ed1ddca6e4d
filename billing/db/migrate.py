"""Running Alembic from code, for `billing migrate`, `billing up` and the test fixtures."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config

import migrations
from billing.db.engine import asyncpg_url


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.set_main_option("sqlalchemy.url", asyncpg_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "heads") -> None:
    """Bring the database to `revision` (every head by default: features developed side by side may add
    migrations on separate branches until a merge revision joins them). Call it outside a running event loop
    (Alembic's env runs its own)."""
    # One INFO line per Alembic plugin at every start says nothing to the person reading `billing up`.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    command.upgrade(alembic_config(database_url), revision)


async def upgrade_async(database_url: str, revision: str = "heads") -> None:
    await asyncio.to_thread(upgrade, database_url, revision)
