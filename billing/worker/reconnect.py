"""A worker that outlives Redis: when Redis goes away (a restart, a failover, a network cut) it keeps trying, with
backoff, instead of exiting; when Redis is back it goes on. Nothing is lost meanwhile: Redis only carries triggers,
and the tick, the sweeper and the janitor find the work again in PostgreSQL (SPEC §2).

arq's own loop ends the process at the first Redis error, and can leave a job slot taken by a job it never started
(the slot is counted before the job's Redis round trip); `ReconnectingWorker` gives such slots back.
"""

from __future__ import annotations

import asyncio
import logging
import random

from arq.worker import Worker
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger("billing.worker")

# What "Redis is unavailable" looks like from redis-py (and the OS, when a connection is refused or reset).
REDIS_OUTAGE = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError, OSError)


class Backoff:
    """0.25 s doubling to 10 s, with ±20 % jitter so workers do not reconnect in step."""

    def __init__(self, first: float = 0.25, cap: float = 10.0) -> None:
        self.first = first
        self.cap = cap
        self.failures = 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.first * 2**self.failures)
        self.failures += 1
        return float(delay * random.uniform(0.8, 1.2))

    def reset(self) -> None:
        self.failures = 0


class ReconnectingWorker(Worker):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.redis_backoff = Backoff()
        self.redis_down_since: float | None = None

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except REDIS_OUTAGE as exc:
            await self._wait_for_redis(exc)
            return
        if self.redis_down_since is not None:
            log.warning(
                "Redis is back after %.1f s; picking jobs up again",
                asyncio.get_running_loop().time() - self.redis_down_since,
            )
            self.redis_down_since = None
            self.redis_backoff.reset()

    async def _wait_for_redis(self, exc: BaseException) -> None:
        if self.redis_down_since is None:
            self.redis_down_since = asyncio.get_running_loop().time()
            log.warning("Redis is unavailable (%s: %s); retrying with backoff", type(exc).__name__, exc)
        self._give_back_unstarted_slots()
        await asyncio.sleep(self.redis_backoff.next_delay())

    def _give_back_unstarted_slots(self) -> None:
        """Count the job slots again from the jobs really running: a job whose start failed on Redis took one."""
        running = sum(not task.done() for task in self.tasks.values())
        self.job_counter = running
        # Running jobs release a slot on this semaphore when they end (arq's done callback reads `self.sem`).
        self.sem = asyncio.Semaphore(self.max_jobs + 1 - running)  # type: ignore[assignment]
