"""Rate limits (SPEC §3, issue 16 item 5): per API key and per client IP, GCRA buckets in Redis, one round trip.

Every /v1 request spends one unit of its client IP's bucket and, when it carries a key, one of that key's
bucket (keyed by the key's digest, known without the database, so a flood never reaches the pool). Usage
ingestion routes spend from a separate, larger per-key bucket, so a merchant's meter traffic never starves its
other calls. A request is let through only when every bucket it spends from has room, and then spends from all
of them; the check and the spending are one Lua script, atomic in Redis, shared by every API process.

GCRA (the generic cell rate algorithm) keeps one number per bucket: the theoretical arrival time (TAT) of the
next request at the sustained rate. A request may arrive up to `burst` intervals ahead of it. Times are Redis's
own clock in microseconds, so API processes with skewed clocks agree.

If Redis does not answer (refused, or no answer within half a second), requests are let through (fail open) and a warning is logged at most once a minute:
Redis holds only queued work and these counters (SPEC §2), and an outage of it must not stop the API.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from billing.errors import RateLimited

logger = logging.getLogger("billing.rate_limit")

# KEYS: one bucket key each. ARGV: for each key, its interval between requests (µs) and burst tolerance (µs).
# Returns {allowed (1/0), retry_after_µs, remaining, reset_µs} for the tightest bucket.
_GCRA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local new_tats = {}
local retry_after = 0
local remaining = nil
local reset = 0
for i, key in ipairs(KEYS) do
    local interval = tonumber(ARGV[2 * i - 1])
    local tolerance = tonumber(ARGV[2 * i])
    local tat = tonumber(redis.call('GET', key) or now)
    if tat < now then tat = now end
    local new_tat = tat + interval
    local allow_at = new_tat - tolerance
    if allow_at > now then
        retry_after = math.max(retry_after, allow_at - now)
    end
    new_tats[i] = new_tat
    local left = math.floor((now + tolerance - new_tat) / interval)
    if remaining == nil or left < remaining then
        remaining = left
        reset = new_tat - now
    end
end
if retry_after > 0 then
    return {0, retry_after, 0, retry_after}
end
for i, key in ipairs(KEYS) do
    redis.call('SET', key, new_tats[i], 'PX', math.ceil((new_tats[i] - now) / 1000) + 1)
end
return {1, 0, remaining, reset}
"""

_OUTAGE_LOG_INTERVAL_S = 60.0
# A Redis that accepts connections but does not answer (paused, overloaded) must not hold every request for the
# client's 10 s socket timeout: past this, the request goes through as in an outage.
_CHECK_TIMEOUT_S = 0.5


@dataclass(frozen=True)
class Budget:
    """A sustained rate and the burst allowed above it (requests at once after a quiet spell)."""

    per_second: int
    burst: int

    def describe(self) -> str:
        return f"{self.per_second} requests per second with bursts of {self.burst}"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    # Seconds until the tightest bucket is full again (allowed), or until a request would pass (refused).
    reset_s: float

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The RateLimit-* fields of the IETF draft (and Retry-After when refused), in whole seconds."""
        reset = str(max(1, math.ceil(self.reset_s))).encode()
        fields = [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(max(0, self.remaining)).encode()),
            (b"ratelimit-reset", reset),
        ]
        if not self.allowed:
            fields.append((b"retry-after", reset))
        return fields


@dataclass(frozen=True)
class Bucket:
    name: str
    budget: Budget
    # Who the bucket counts, for the error message: "this API key", "your IP address".
    whose: str


class RateLimiter:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._script = redis.register_script(_GCRA)
        self._prefix = prefix
        self._last_outage_log = -math.inf

    async def check(self, buckets: list[Bucket]) -> Decision | None:
        """Spend one request from every bucket if all have room (allowed), else spend nothing (refused); None
        when Redis did not answer (let the request through)."""
        keys = [f"{self._prefix}:ratelimit:{bucket.name}" for bucket in buckets]
        arguments: list[int] = []
        for bucket in buckets:
            interval = 1_000_000 // bucket.budget.per_second
            arguments += [interval, interval * bucket.budget.burst]
        try:
            allowed, retry_after_us, remaining, reset_us = await asyncio.wait_for(
                self._script(keys=keys, args=arguments), _CHECK_TIMEOUT_S
            )
        except (RedisError, OSError, TimeoutError) as error:
            now = time.monotonic()
            if now - self._last_outage_log >= _OUTAGE_LOG_INTERVAL_S:
                self._last_outage_log = now
                logger.warning(
                    "rate limits are off while Redis does not answer (%s); requests go through", error
                )
            return None
        tightest = min(buckets, key=lambda bucket: bucket.budget.burst)
        if allowed:
            return Decision(True, tightest.budget.burst, int(remaining), int(reset_us) / 1e6)
        return Decision(False, tightest.budget.burst, 0, int(retry_after_us) / 1e6)


def refusal(buckets: list[Bucket], decision: Decision) -> RateLimited:
    """The 429 a refused request gets: which limits apply and when to try again."""
    limits = "; ".join(f"{bucket.whose}: {bucket.budget.describe()}" for bucket in buckets)
    wait = max(1, math.ceil(decision.reset_s))
    return RateLimited(
        f"Too many requests ({limits}). Retry after {wait} second(s), as the Retry-After header says, and "
        "spread your requests out. 请求过多，请在 Retry-After 标头所示的秒数后重试。",
        code="rate_limited",
    )
