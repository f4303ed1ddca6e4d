"""What reaches the job queue's Redis can never run code in a worker: jobs and results are MessagePack, not pickle
(issue #12 item 14)."""

from __future__ import annotations

import pickle
import secrets
import time
from pathlib import Path
from typing import Any

import msgspec
from arq.constants import job_key_prefix, result_key_prefix

from billing.services import Services
from billing.worker import codec
from tests.billing.world import run_worker


class _Payload:
    """A pickle that, when unpickled, creates a file: what an attacker who can write to Redis would plant."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


async def test_jobs_go_to_redis_as_messagepack_and_their_results_come_back(services: Services) -> None:
    job_id = f"codec-{secrets.token_hex(4)}"
    job = await services.redis.enqueue_job(
        "advance_test_clock_job", "clk_doesnotexist", _job_id=job_id, _queue_name=services.queue_name
    )
    assert job is not None
    stored = await services.redis.get(job_key_prefix + job_id)
    decoded = msgspec.msgpack.decode(stored)
    assert (decoded["f"], decoded["a"]) == ("advance_test_clock_job", ["clk_doesnotexist"])

    await run_worker(services)
    result = msgspec.msgpack.decode(await services.redis.get(result_key_prefix + job_id))
    assert (result["s"], result["r"]) == (True, "missing")


async def test_a_pickled_job_planted_in_redis_is_refused_and_never_run(
    services: Services, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    job_id = f"planted-{secrets.token_hex(4)}"
    planted = pickle.dumps(
        {
            "t": 1,
            "f": "advance_test_clock_job",
            "a": [_Payload(marker)],
            "k": {},
            "et": int(time.time() * 1000),
        }
    )
    await services.redis.set(job_key_prefix + job_id, planted)
    await services.redis.zadd(services.queue_name, {job_id: int(time.time() * 1000)})

    await run_worker(services)

    assert not marker.exists(), "unpickling the planted job ran its code"
    # The worker recorded the job as failed (in MessagePack, with the reason as text) and went on.
    result = codec.deserialize(await services.redis.get(result_key_prefix + job_id))
    assert result["s"] is False
    assert "deserializ" in str(result["r"])


def test_an_exception_result_is_stored_as_its_text() -> None:
    encoded = codec.serialize({"r": ValueError("no such clock"), "s": False})
    assert codec.deserialize(encoded) == {"r": "ValueError: no such clock", "s": False}
