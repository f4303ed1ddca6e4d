"""A worker SIGKILLed while it runs a job does not leave that job marked "in progress" for arq's hour (issue 16,
review finding): the mark is a lease of billing.worker.lease.JOB_LEASE seconds that only a live worker renews, so
the second worker runs the job again once the lease lapses, and a burst worker sees the queue empty.

The job is the daily usage maintenance cron job, which every worker runs at start-up; the test holds a lock on the
table it prunes, so the first worker is certainly inside the job when it is killed. Real processes: two
`billing worker`s on a database and a Redis prefix of this test's own. About a minute: the 30 s lease is waited
out in real time, after two workers start."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from arq.constants import in_progress_key_prefix
from sqlalchemy import text

from billing.config import Settings
from billing.worker.lease import JOB_LEASE
from billing.worker.settings import build_worker
from tests.billing.locks import backend_pid, wait_until_blocked_by
from tests.billing.processes import Isolated, assert_audit_clean, billing_worker, isolated, wait_for
from tests.conftest import Servers

pytestmark = [pytest.mark.fault, pytest.mark.timeout(300)]

MAINTENANCE = "cron:usage_maintenance_job:"


async def queued(iso: Isolated) -> set[str]:
    return {
        member.decode() if isinstance(member, bytes) else str(member)
        async for member, _ in iso.services.redis.zscan_iter(iso.services.queue_name)
    }


async def marked_in_progress(iso: Isolated) -> set[str]:
    """The queued jobs that a worker has marked as running."""
    return {job for job in await queued(iso) if await iso.services.redis.exists(in_progress_key_prefix + job)}


async def test_a_job_of_a_killed_worker_is_run_again_once_its_lease_lapses(
    settings: Settings, servers: Servers, tmp_path: Path
) -> None:
    first = second = None
    async with isolated(settings, servers.admin_database_url) as iso:
        try:
            async with iso.services.sessions() as holder:
                await holder.execute(text("LOCK TABLE usage_event_keys IN ACCESS EXCLUSIVE MODE"))
                first = billing_worker(iso.env, tmp_path / "first.log")
                await wait_until_blocked_by(iso.services, await backend_pid(holder))
                held = {job for job in await marked_in_progress(iso) if job.startswith(MAINTENANCE)}
                assert len(held) == 1, held
                first.kill()
                killed_at = time.monotonic()
                await holder.rollback()
            second = billing_worker(iso.env, tmp_path / "second.log")

            async def released() -> bool:
                return not held & await queued(iso)

            # Before the lease the mark lived 3,610 s (arq: the longest job timeout + 10 s); the deadline, far
            # below that, shows the second worker did not wait for it.
            await wait_for(released, deadline_s=150, what="the killed worker's job to be run again")
            freed_after = time.monotonic() - killed_at
            assert second.alive(), second.output()
            print(f"job freed {freed_after:.0f} s after the kill (lease {JOB_LEASE:.0f} s)")
        finally:
            for worker in (first, second):
                if worker is not None:
                    worker.stop()
        # With the second worker stopped, a burst worker on the queue ends: nothing is left marked for nobody.
        assert await marked_in_progress(iso) == set()
        await build_worker(iso.services, burst=True, with_cron=False).async_run()
        await assert_audit_clean(iso.env)
