"""What a /v1 handler knows about its request: the merchant, and the one transaction it runs in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
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
    # `async with ctx.committed():` commits what the handler did so far and runs the block outside the
    # request's transaction (see ApiMiddleware): only for use cases that must record their intent before an
    # external call, such as charging a card.
    committed: Callable[[], AbstractAsyncContextManager[None]] | None = None
    # The body of the 202 ("outcome not known yet") that an earlier request with this Idempotency-Key answered.
    # A route that answers 202 uses it to answer a retry with the outcome of what it started then, and never
    # starts it a second time.
    earlier_pending: bytes | None = None
    # The address the request came from (the TCP peer; no proxy header is trusted), for the risk check's IP rules.
    client_ip: str | None = None


def provide_context(request: Request) -> RequestContext:  # type: ignore[type-arg]
    context = request.scope.get(SCOPE_KEY)
    if not isinstance(context, RequestContext):
        raise RuntimeError("a /v1 route was reached without the API middleware")
    return context
