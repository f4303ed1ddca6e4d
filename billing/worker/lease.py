"""A short in-progress lease for every job, renewed while the job runs.

arq marks a job it starts "in progress" in Redis for as long as its longest job timeout allows (here an hour and
ten seconds), and no worker starts a job so marked. A worker killed mid-job (SIGKILL, the OOM killer, a lost host)
never clears its marks: its jobs, cron ticks included, stay queued and untouched until the marks expire, and
every burst worker meanwhile sees a queue that never empties.

`LeasingWorker` marks a job for `JOB_LEASE` only and renews the marks of the jobs it runs every
`LEASE_RENEWAL`: a live worker keeps its jobs however long they take, and a dead one's jobs are free again at most
`JOB_LEASE` after it died, for the next worker to run again (jobs are idempotent, SPEC §2). A job that blocks its
worker's event loop past the lease may be started a second time meanwhile; every job is written to be safe run
twice, as arq is at-least-once anyway.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from arq.constants import in_progress_key_prefix

from billing.worker.reconnect import REDIS_OUTAGE, ReconnectingWorker

log = logging.getLogger("billing.worker")

JOB_LEASE = 30.0
LEASE_RENEWAL = 10.0


class LeasingWorker(ReconnectingWorker):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        # arq sets each started job's in-progress marker for this long (see start_jobs).
        self.in_progress_timeout_s = JOB_LEASE

    async def main(self) -> None:
        renewal = asyncio.create_task(self._renew_leases())
        try:
            await super().main()
        finally:
            renewal.cancel()
            with suppress(asyncio.CancelledError):
                await renewal

    def running_job_ids(self) -> list[str]:
        return [job_id for job_id, task in self.tasks.items() if not task.done()]

    async def renew_leases(self) -> None:
        """Push back the in-progress markers of the jobs this worker runs (a marker that is gone, because the job
        just ended or Redis was restarted, stays gone: PEXPIRE creates nothing)."""
        running = self.running_job_ids()
        if not running:
            return
        async with self.pool.pipeline(transaction=False) as pipe:
            for job_id in running:
                pipe.pexpire(in_progress_key_prefix + job_id, int(JOB_LEASE * 1000))
            await pipe.execute()

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(LEASE_RENEWAL)
            try:
                await self.renew_leases()
            except REDIS_OUTAGE as exc:
                # The poll loop reports the outage; the marks went with Redis if it restarted.
                log.debug("could not renew job leases: %s", exc)
