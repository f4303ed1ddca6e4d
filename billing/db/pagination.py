"""Cursor lists (SPEC §3): newest first by insertion order, `starting_after` an id of the same list."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from billing.errors import InvalidRequest
from billing.ids import is_valid_id

Row = TypeVar("Row")


class Listable(Protocol):
    id: InstrumentedAttribute[str]
    seq: InstrumentedAttribute[int]
    merchant_id: InstrumentedAttribute[str]


@dataclass(frozen=True)
class Page(Generic[Row]):
    rows: list[Row]
    has_more: bool


@dataclass(frozen=True)
class PageRequest:
    """Which page a caller asked for: at most `limit` objects after (older than) `starting_after`."""

    limit: int = 10
    starting_after: str | None = None


async def paginate(
    session: AsyncSession,
    stmt: Select[Any],
    model: Any,
    *,
    merchant_id: str,
    id_prefix: str,
    limit: int,
    starting_after: str | None,
) -> Page[Row]:
    """Run `stmt` (already filtered to the merchant) as one page; limit + 1 rows tell whether more exist."""
    if starting_after is not None:
        if not is_valid_id(starting_after, id_prefix):
            raise InvalidRequest(
                f"starting_after must be an id of this list ({id_prefix}_...), not {starting_after[:60]!r}: pass the "
                "id of the last object of the previous page.",
                param="starting_after",
            )
        cursor_seq = await session.scalar(
            select(model.seq).where(model.id == starting_after, model.merchant_id == merchant_id)
        )
        if cursor_seq is None:
            raise InvalidRequest(
                f"starting_after {starting_after!r} is not an object of this list; pass the id of the last object "
                "of the previous page.",
                code="resource_missing",
                param="starting_after",
            )
        stmt = stmt.where(model.seq < cursor_seq)
    rows: list[Row] = list((await session.scalars(stmt.order_by(model.seq.desc()).limit(limit + 1))).all())
    return Page(rows=rows[:limit], has_more=len(rows) > limit)
