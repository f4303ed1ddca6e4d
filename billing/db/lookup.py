"""The one way to fetch an object by the id a merchant sent: check the id's shape, scope it to the merchant,
optionally lock it, and answer NotFound the same way whether it is unknown or another merchant's."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.errors import not_found
from billing.ids import is_valid_id

Row = TypeVar("Row")


async def get_owned(
    session: AsyncSession,
    model: type[Row],
    object_id: str,
    *,
    merchant_id: str,
    prefix: str,
    kind: str,
    param: str | None = None,
    for_update: bool = False,
    where: tuple[ColumnElement[bool], ...] = (),
) -> Row:
    """The merchant's `model` row with that id (and matching `where`), or NotFound naming `kind`."""
    if not is_valid_id(object_id, prefix):
        raise not_found(kind, object_id, param)
    table: Any = model
    stmt = select(model).where(table.id == object_id, table.merchant_id == merchant_id, *where)
    if for_update:
        stmt = stmt.with_for_update()
    row = await session.scalar(stmt)
    if row is None:
        raise not_found(kind, object_id, param)
    return row


async def lock_again(session: AsyncSession, model: type[Row], object_id: str) -> Row:
    """The row with that id, locked FOR UPDATE and read afresh (whatever the session held of it is replaced):
    for a use case that let go of its transaction (a gateway call) and must see the row as it is now."""
    table: Any = model
    row = await session.scalar(
        select(model).where(table.id == object_id).with_for_update().execution_options(populate_existing=True)
    )
    assert row is not None, f"{object_id} vanished"
    return row
