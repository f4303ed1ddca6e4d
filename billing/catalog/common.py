"""What every catalog resource shares: its clock, codes, canonical decimals, archiving, and event diffs."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import SYSTEM_CLOCK, Clock
from billing.db.lookup import get_owned
from billing.errors import Conflict, InvalidRequest, not_found
from billing.ids import PREFIXES, is_valid_id
from webhooks.outbox import record_event

#: Catalog objects are merchant-level, not a customer's: they live in real time even when a test-clock
#: customer subscribes to them.
CATALOG_CLOCK: Clock = SYSTEM_CLOCK

_CODE = re.compile(r"[A-Za-z0-9_.:-]{1,100}")

Row = TypeVar("Row")


class Archivable(Protocol):
    merchant_id: str
    archived_at: datetime | None
    updated_at: datetime


def validate_code(code: str, *, param: str = "code") -> str:
    """A code is a key that appears in URLs and usage events: letters, digits and `_ - . :` only."""
    if not _CODE.fullmatch(code):
        raise InvalidRequest(
            f"{param} may contain only letters, digits, '_', '-', '.' and ':' (1 to 100 characters), e.g. "
            f"'api_calls' or 'pro-monthly'; got {code[:120]!r}.",
            param=param,
        )
    return code


def validate_new_code(code: str, *, param: str = "code") -> str:
    """A code for an object that is also found by its code where an id is accepted (plans, meters, features):
    it must not have the shape of an id, so that an id and a code can never be confused."""
    validate_code(code, param=param)
    if any(is_valid_id(code, prefix) for prefix in PREFIXES):
        raise InvalidRequest(
            f"{param} {code!r} has the shape of an object id; codes are accepted wherever an id is, so a code "
            "must not look like one. Choose a code such as 'pro-monthly'.",
            param=param,
        )
    return code


async def get_by_id_or_code(
    session: AsyncSession,
    model: type[Row],
    key: str,
    *,
    merchant_id: str,
    prefix: str,
    kind: str,
    param: str | None = None,
    for_update: bool = False,
) -> Row:
    """The merchant's `model` row whose id is `key` (when `key` has the id's shape) or else whose code is
    `key`; NotFound naming `kind` otherwise. Codes never have an id's shape (`validate_new_code`)."""
    if is_valid_id(key, prefix):
        return await get_owned(
            session,
            model,
            key,
            merchant_id=merchant_id,
            prefix=prefix,
            kind=kind,
            param=param,
            for_update=for_update,
        )
    table: Any = model
    stmt = select(model).where(table.merchant_id == merchant_id, table.code == key)
    if for_update:
        stmt = stmt.with_for_update()
    row = await session.scalar(stmt) if _CODE.fullmatch(key) else None
    if row is None:
        raise not_found(kind, key, param)
    return row


def code_taken(kind: str, code: str, existing_id: str | None, *, archived: bool = False) -> Conflict:
    """The 409 for a duplicate code, naming the object that holds it."""
    owner = f" ({existing_id}{', archived' if archived else ''})" if existing_id else ""
    advice = (
        f"Unarchive that {kind} and update it, or choose another code."
        if archived
        else f"Retrieve or update that {kind} instead, or choose another code."
    )
    return Conflict(
        f"A {kind} with code {code!r} already exists{owner}. {advice}",
        code="resource_already_exists",
        param="code",
    )


async def flush_unique(session: AsyncSession, index_name: str, on_conflict: Callable[[], Exception]) -> None:
    """Flush, turning a lost race on a unique index into the same error as the pre-check."""
    try:
        await session.flush()
    except IntegrityError as exc:
        if index_name in str(exc.orig):
            raise on_conflict() from None
        raise


def decimal_text(value: Decimal) -> str:
    """The canonical text of an exact decimal: no exponent, no trailing zeros ('0.5', '1000', '0')."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def canonical_decimal(value: Decimal) -> Decimal:
    """`value` without trailing zeros ('20.00' -> 20, '12.50' -> 12.5) and without an exponent, so that the
    pure validators count its real decimal places; values too large for any field are returned unchanged
    (the validators refuse them)."""
    if not value.is_finite() or abs(value) >= 10**15:
        return value
    return Decimal(decimal_text(value))


def whole(value: Decimal) -> int | None:
    """`value` as an int when it is a whole number (the API's integer twin of a *_decimal field), else None."""
    return int(value) if value == value.to_integral_value() else None


async def set_archived(
    session: AsyncSession, row: Archivable, archived: bool, *, kind: str, render: Callable[[Any], Any]
) -> None:
    """Archive or unarchive `row` with its `<kind>.archived` / `<kind>.unarchived` event; doing it twice is
    not an error and records nothing."""
    if (row.archived_at is not None) == archived:
        return
    now = CATALOG_CLOCK.now()
    row.archived_at = now if archived else None
    row.updated_at = now
    await session.flush()
    record_event(
        session,
        merchant_id=row.merchant_id,
        event_type=f"{kind}.archived" if archived else f"{kind}.unarchived",
        obj=render(row),
        clock=CATALOG_CLOCK,
    )


def in_use_conflict(
    kind: str, object_id: str, fields: list[str], advice: str, *, used_by: str = "subscriptions"
) -> Conflict:
    """The 409 for a pricing change of an object already in use; `param` is the first field that differs."""
    return Conflict(
        f"{kind.capitalize()} {object_id} is used by {used_by}, so its pricing cannot change "
        f"({', '.join(fields)}); {advice}",
        code=f"{kind.replace(' ', '_')}_in_use",
        param=fields[0],
    )
