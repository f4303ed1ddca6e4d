"""KEK rotation without downtime: re-wrap every data key (and the vault secret) under the active KEK.

Procedure (docs/security.md): put the new key first in BILLING_VAULT_KEYS on every process, old ones after it
(rolling restart: every process can now unwrap both, and wraps new cards under the new one); run
`billing vault rotate`; when it reports nothing left under the old ids, remove them from the variable.

Only the small wrapped data keys change: card ciphertexts are untouched, so a rotation costs one AES-GCM unwrap and
wrap per card. Rows are taken in batches with `FOR UPDATE SKIP LOCKED`, each batch its own short transaction, so
API and worker processes keep reading and writing cards while it runs, and several rotations may run at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import billing.db.models  # noqa: F401 - the whole schema, so foreign keys resolve
from billing.clock import utc_now
from billing.config import ConfigError, Settings
from billing.db.engine import make_engine, make_sessionmaker, transaction
from billing.vault.keys import KeyRing, load_keyring
from billing.vault.models import VaultEntry, VaultSecret
from billing.vault.service import dek_aad, secret_aad


@dataclass
class RotationReport:
    active_kek: str
    rewrapped_entries: int = 0
    rewrapped_secrets: int = 0
    # Rows still under other KEKs (locked by another transaction on every pass): run the command again.
    remaining: dict[str, int] = field(default_factory=dict)


async def _rewrap_secrets(session: AsyncSession, keyring: KeyRing) -> int:
    rows = (
        await session.scalars(
            select(VaultSecret)
            .where(VaultSecret.kek_id != keyring.active_id)
            .with_for_update(skip_locked=True)
        )
    ).all()
    for row in rows:
        aad = secret_aad(row.name)
        row.kek_id, row.wrapped = keyring.wrap(keyring.unwrap(row.kek_id, row.wrapped, aad), aad)
        row.rewrapped_at = utc_now()
    return len(rows)


async def _rewrap_batch(session: AsyncSession, keyring: KeyRing, batch_size: int) -> int:
    rows = (
        await session.scalars(
            select(VaultEntry)
            .where(VaultEntry.kek_id != keyring.active_id)
            .order_by(VaultEntry.id)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )
    ).all()
    for row in rows:
        aad = dek_aad(row.id)
        row.kek_id, row.wrapped_key = keyring.wrap(keyring.unwrap(row.kek_id, row.wrapped_key, aad), aad)
        row.rewrapped_at = utc_now()
    return len(rows)


async def remaining_by_kek(session: AsyncSession, active_id: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for model in (VaultEntry, VaultSecret):
        rows = await session.execute(
            select(model.kek_id, func.count()).where(model.kek_id != active_id).group_by(model.kek_id)
        )
        for kek_id, count in rows:
            counts[kek_id] = counts.get(kek_id, 0) + int(count)
    return counts


async def rotate(
    sessions: async_sessionmaker[AsyncSession],
    keyring: KeyRing,
    *,
    batch_size: int = 500,
    passes: int = 5,
    pause_seconds: float = 0.5,
) -> RotationReport:
    """Re-wrap everything not under the active KEK; returns counts and whatever is left (locked rows)."""
    report = RotationReport(active_kek=keyring.active_id)
    for attempt in range(passes):
        async with transaction(sessions) as session:
            report.rewrapped_secrets += await _rewrap_secrets(session, keyring)
        while True:
            async with transaction(sessions) as session:
                done = await _rewrap_batch(session, keyring, batch_size)
            report.rewrapped_entries += done
            if done < batch_size:
                break
        async with sessions() as session:
            report.remaining = await remaining_by_kek(session, keyring.active_id)
        if not report.remaining:
            break
        if attempt + 1 < passes:
            await asyncio.sleep(pause_seconds)
    return report


async def rotate_with_settings(settings: Settings, *, batch_size: int = 500) -> RotationReport:
    """`billing vault rotate`: open the database, rotate, close."""
    if not settings.database_url:
        raise ConfigError("DATABASE_URL is not set: point it at the PostgreSQL whose vault you rotate.")
    keyring = load_keyring(settings)
    engine = make_engine(settings.database_url, null_pool=True)
    try:
        return await rotate(make_sessionmaker(engine), keyring, batch_size=batch_size)
    finally:
        await engine.dispose()
