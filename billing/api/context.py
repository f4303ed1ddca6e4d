"""What a /v1 handler knows about its request: the merchant, and the one transaction it runs in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from litestar import Request
from sqlalchemy.ext.asyncio import AsyncSession

from billing.services import Services

SCOPE_KEY = "billing.request"


@dataclass
class RequestContext:
    session: AsyncSession
    merchant_id: str
    key_kind: str
    services: Services
    # Run after the transaction commits, e.g. enqueueing a job that must see the committed rows. If Redis is
    # down at that moment nothing is lost: the sweeper finds the work in PostgreSQL.
    after_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


def provide_context(request: Request) -> RequestContext:  # type: ignore[type-arg]
    context = request.scope.get(SCOPE_KEY)
    if not isinstance(context, RequestContext):
        raise RuntimeError("a /v1 route was reached without the API middleware")
    return context
