"""One client cannot take a process's database pool from the others (issue #12 item 8).

Each /v1 request holds at most one pooled connection at a time, but a burst from one client (fifty refunds at
once) still queues fifty requests at the pool, and every other merchant's request queues behind them. The
bulkhead lets at most `limit` requests made with one API key be in progress in a process at once; the others wait
for a turn first thing, before the key is looked up, before their body is read, holding no connection, so the
pool (20) always has room for other merchants. It is keyed by the key's digest, known without the database
(SPEC §3 counts rate limits per key too).

No deadlock: a request waits for a turn only while it holds nothing; whatever another request with the same key
may wait for (a row lock, an Idempotency-Key, a credit note's refund) is held by a request that has its turn and
is making progress.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Bulkhead:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        # key → its semaphore and how many requests use it (dropped at zero: nothing kept for idle keys).
        self._turns: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}

    @asynccontextmanager
    async def turn(self, key: str) -> AsyncIterator[None]:
        """Wait until fewer than `limit` requests with `key` are in progress, and be one of them."""
        entry = self._turns.get(key)
        if entry is None:
            entry = self._turns[key] = (asyncio.Semaphore(self.limit), [0])
        semaphore, users = entry
        users[0] += 1
        try:
            async with semaphore:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._turns[key]

    def keys(self) -> int:
        """How many keys have a request in progress or waiting."""
        return len(self._turns)
