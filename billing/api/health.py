"""Liveness and readiness (SPEC §2): /health says the process is up, /ready that PostgreSQL and Redis answer and
that the process is not draining (stopping after SIGTERM: finishing its requests in flight, taking no more), so
a load balancer stops sending it work before it goes."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import msgspec
from litestar import Response, get
from sqlalchemy import text

from billing.services import Services

_draining = False


def start_draining() -> None:
    """From now on /ready answers 503 "draining" in this process (called on SIGTERM)."""
    global _draining
    _draining = True


def stop_draining() -> None:
    global _draining
    _draining = False


def is_draining() -> bool:
    return _draining


class HealthStatus(msgspec.Struct, kw_only=True):
    """Whether this process (and, for /ready, its PostgreSQL and Redis) can serve requests."""

    status: Literal["ok", "draining", "unavailable"]
    checks: dict[str, str] = msgspec.field(default_factory=dict)


@get("/health", security=[], tags=["operations"], summary="Liveness: 200 when the process is up")
async def health() -> HealthStatus:
    return HealthStatus(status="ok")


async def _check(name: str, probe: Any) -> tuple[str, str]:
    try:
        await asyncio.wait_for(probe, timeout=2.0)
        return name, "ok"
    except Exception as exc:  # readiness reports any failure instead of raising it
        return name, f"unavailable: {type(exc).__name__}"


def make_ready_handler(services: Services) -> Any:
    async def ping_db() -> None:
        async with services.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    @get(
        "/ready",
        security=[],
        tags=["operations"],
        summary="Readiness: 200 only when PostgreSQL and Redis answer and the process is not draining, 503 "
        "otherwise",
    )
    async def ready() -> Response[HealthStatus]:
        if _draining:
            return Response(HealthStatus(status="draining"), status_code=503)
        checks = dict(
            await asyncio.gather(_check("postgres", ping_db()), _check("redis", services.redis.ping()))
        )
        ok = all(v == "ok" for v in checks.values())
        return Response(
            HealthStatus(status="ok" if ok else "unavailable", checks=checks), status_code=200 if ok else 503
        )

    return ready
