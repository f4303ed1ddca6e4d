"""The card security code (CVC) until the first authorization, and never after (PCI DSS 3.3.1.2).

It is never written to a table. It waits in Redis, sealed under the card's own data key (so a Redis dump alone
reveals nothing), for at most 15 minutes; the first charge of the card takes it with GETDEL and sends it to the
gateway; after that it exists nowhere. Losing Redis only means the first charge goes without a CVC, which is how
every later (merchant-initiated, recurring) charge goes anyway.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from arq.connections import ArqRedis

from billing.vault.models import VaultEntry
from billing.vault.service import Vault

log = logging.getLogger("billing.vault")

CVC_TTL = timedelta(minutes=15)
_PURPOSE = b"cvc"


class CvcHolder:
    def __init__(self, redis: ArqRedis, prefix: str, vault: Vault) -> None:
        self._redis = redis
        self._prefix = prefix
        self._vault = vault

    def key(self, entry_id: str) -> str:
        return f"{self._prefix}:vault:cvc:{entry_id}"

    async def hold(self, entry: VaultEntry, cvc: str) -> None:
        sealed = self._vault.seal_for_entry(entry, cvc.encode(), _PURPOSE)
        try:
            await self._redis.set(self.key(entry.id), sealed, px=int(CVC_TTL.total_seconds() * 1000))
        except Exception:
            log.warning(
                "could not hold the CVC of vault entry %s; its first charge goes without one", entry.id
            )

    async def take(self, entry: VaultEntry) -> str | None:
        """The CVC if it is still held, removed in the same step (only one authorization ever gets it)."""
        try:
            sealed = await self._redis.getdel(self.key(entry.id))
        except Exception:
            log.warning("could not read the CVC of vault entry %s; charging without it", entry.id)
            return None
        if sealed is None:
            return None
        return self._vault.open_for_entry(entry, bytes(sealed), _PURPOSE).decode()

    async def discard(self, entry_id: str) -> None:
        try:
            await self._redis.delete(self.key(entry_id))
        except Exception:
            log.warning("could not discard the CVC of vault entry %s; it expires on its own", entry_id)
