"""The per-key bulkhead (issue #12 item 8): one client's burst takes turns, other merchants never wait for it, and
nothing is kept for keys with nothing in progress."""

from __future__ import annotations

import asyncio

from billing.api.bulkhead import Bulkhead


async def test_one_merchant_has_at_most_limit_requests_in_progress_and_others_do_not_wait() -> None:
    bulkhead = Bulkhead(3)
    running: dict[str, int] = {"busy": 0, "other": 0}
    peak: dict[str, int] = {"busy": 0, "other": 0}
    release = asyncio.Event()

    async def request(merchant: str) -> None:
        async with bulkhead.turn(merchant):
            running[merchant] += 1
            peak[merchant] = max(peak[merchant], running[merchant])
            if merchant == "busy":
                await release.wait()
            running[merchant] -= 1

    burst = [asyncio.create_task(request("busy")) for _ in range(20)]
    await asyncio.sleep(0)
    # The busy merchant's 20 requests hold or wait for its 3 turns; another merchant goes straight through: its
    # requests (pure asyncio, no I/O) finish within a few turns of the event loop while the busy ones still wait.
    others = [asyncio.create_task(request("other")) for _ in range(5)]
    for _ in range(10):
        await asyncio.sleep(0)
    assert all(task.done() for task in others)
    assert running["busy"] == 3
    assert peak["other"] >= 1
    release.set()
    await asyncio.gather(*burst)
    assert peak["busy"] == 3
    assert bulkhead.keys() == 0
