"""The one way to fetch an object by the id a merchant sent: check the id's shape, scope it to the merchant,
optionally lock it, and answer NotFound the same way whether it is unknown or another merchant's; and the one way
to list a merchant's objects of a kind, filtered, as a cursor page."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.base import ExecutableOption

from billing.db.pagination import Page, PageRequest, paginate
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
    options: tuple[ExecutableOption, ...] = (),
) -> Row:
    """The merchant's `model` row with that id (and matching `where`), or NotFound naming `kind`; `options` are
    loader options (what to load with it)."""
    if not is_valid_id(object_id, prefix):
        raise not_found(kind, object_id, param)
    table: Any = model
    stmt = (
        select(model).where(table.id == object_id, table.merchant_id == merchant_id, *where).options(*options)
    )
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


# A filter of a list: a condition, or None where the caller did not ask for it.
Filter = ColumnElement[bool] | None


def equals(column: QueryableAttribute[Any], value: object) -> Filter:
    """`column == value`, or no filter when the value was not given (None)."""
    return None if value is None else column == value


def active_filter(archived_at: QueryableAttribute[Any], active: bool | None) -> Filter:
    """The `active` filter of an archivable object: true, only those not archived; false, only archived ones."""
    if active is None:
        return None
    return archived_at.is_(None) if active else archived_at.is_not(None)


async def list_owned(
    session: AsyncSession,
    model: type[Row],
    merchant_id: str,
    filters: Iterable[Filter],
    page: PageRequest,
    *,
    prefix: str,
    options: tuple[ExecutableOption, ...] = (),
) -> Page[Row]:
    """One page of the merchant's `model` rows matching every given filter, newest first (ids `prefix`_...),
    loaded with `options`."""
    table: Any = model
    conditions = [condition for condition in filters if condition is not None]
    return await paginate(
        session,
        select(model).where(table.merchant_id == merchant_id, *conditions).options(*options),
        model,
        merchant_id=merchant_id,
        id_prefix=prefix,
        limit=page.limit,
        starting_after=page.starting_after,
    )
