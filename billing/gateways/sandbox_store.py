"""Where a sandbox keeps what a real processor or channel keeps in its own database: documents by kind and key,
in memory for a standalone sandbox, in Redis (under the engine's key prefix) for the in-process ones, so that the
API and worker processes of one engine share one sandbox, as they would share one real channel.

Writes are "add if absent" (a processor commits a request once per idempotency key; two racing requests get the
first one's record) or "put" (a state change of a record: an agreement signed, a slow trade that completed).
Counters move atomically, so concurrent refunds from several processes can never refund more than was charged.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec
from redis.asyncio import Redis

Document = dict[str, Any]


class SandboxStore(Protocol):
    async def get(self, kind: str, key: str) -> Document | None: ...

    async def add(self, kind: str, key: str, document: Document) -> Document:
        """Store `document` unless `key` already holds one; returns what the key holds."""
        ...

    async def put(self, kind: str, key: str, document: Document) -> None: ...

    async def all(self, kind: str) -> list[Document]: ...

    async def increment(self, kind: str, key: str, by: int) -> int:
        """Add `by` to the counter `kind/key` and return its new value."""
        ...

    async def clear(self, keep: tuple[str, ...] = ()) -> None:
        """Forget everything but the kinds in `keep` (counters included)."""
        ...


class MemoryStore:
    def __init__(self) -> None:
        self._documents: dict[str, dict[str, Document]] = {}
        self._counters: dict[str, int] = {}

    async def get(self, kind: str, key: str) -> Document | None:
        found = self._documents.get(kind, {}).get(key)
        return dict(found) if found is not None else None

    async def add(self, kind: str, key: str, document: Document) -> Document:
        return dict(self._documents.setdefault(kind, {}).setdefault(key, dict(document)))

    async def put(self, kind: str, key: str, document: Document) -> None:
        self._documents.setdefault(kind, {})[key] = dict(document)

    async def all(self, kind: str) -> list[Document]:
        return [dict(d) for d in self._documents.get(kind, {}).values()]

    async def increment(self, kind: str, key: str, by: int) -> int:
        name = f"{kind}:{key}"
        self._counters[name] = self._counters.get(name, 0) + by
        return self._counters[name]

    async def clear(self, keep: tuple[str, ...] = ()) -> None:
        self._documents = {kind: docs for kind, docs in self._documents.items() if kind in keep}
        self._counters.clear()


class RedisStore:
    """One Redis hash per kind (`<prefix>:<kind>`), JSON documents as values; counters in `<prefix>:counters`."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        # redis-py types its hash commands as "awaitable or not" (one class for sync and async clients).
        self._redis: Any = redis
        self._prefix = prefix

    def _hash(self, kind: str) -> str:
        return f"{self._prefix}:{kind}"

    async def get(self, kind: str, key: str) -> Document | None:
        raw = await self._redis.hget(self._hash(kind), key)
        return None if raw is None else dict(msgspec.json.decode(raw))

    async def add(self, kind: str, key: str, document: Document) -> Document:
        if await self._redis.hsetnx(self._hash(kind), key, msgspec.json.encode(document)):
            return dict(document)
        held = await self.get(kind, key)
        assert held is not None
        return held

    async def put(self, kind: str, key: str, document: Document) -> None:
        await self._redis.hset(self._hash(kind), key, msgspec.json.encode(document))

    async def all(self, kind: str) -> list[Document]:
        return [dict(msgspec.json.decode(raw)) for raw in await self._redis.hvals(self._hash(kind))]

    async def increment(self, kind: str, key: str, by: int) -> int:
        return int(await self._redis.hincrby(self._hash("counters"), f"{kind}:{key}", by))

    async def clear(self, keep: tuple[str, ...] = ()) -> None:
        kept = {self._hash(kind) for kind in keep}
        keys = [
            key
            async for key in self._redis.scan_iter(match=f"{self._prefix}:*")
            if (key.decode() if isinstance(key, bytes) else key) not in kept
        ]
        if keys:
            await self._redis.delete(*keys)
