"""Tax rate use cases: one function each, in the caller's transaction, the event staged inside it.

A rate (percentage, inclusive or exclusive) is validated by `plans.taxes.validate_tax_rate`. Its percentage
and inclusiveness can change until it is in use (`mark_tax_rate_in_use`, for the subscriptions and invoices
features); after that a new rate is a new object, so that invoices keep the rate they were taxed at. Archived
rates cannot be added to new subscriptions (`ensure_tax_rate_usable`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog import schemas
from billing.catalog.common import (
    CATALOG_CLOCK,
    canonical_decimal,
    decimal_text,
    in_use_conflict,
    set_archived,
)
from billing.catalog.models import TaxRate
from billing.catalog.schemas import TaxRateCreate, TaxRateUpdate
from billing.db.lookup import active_filter, get_owned, list_owned
from billing.db.pagination import Page, PageRequest
from billing.errors import Conflict, not_found
from billing.ids import new_id
from billing.metadata import merge_metadata, validate_metadata
from plans import taxes
from webhooks.outbox import previous_attributes, record_event


def render_tax_rate(rate: TaxRate) -> schemas.TaxRate:
    return schemas.TaxRate(
        id=rate.id,
        created_at=rate.created_at,
        display_name=rate.display_name,
        description=rate.description,
        percentage=decimal_text(rate.percentage),
        inclusive=rate.inclusive,
        active=rate.archived_at is None,
        in_use=rate.in_use_since is not None,
        metadata=rate.metadata_,
    )


def pure_tax_rate(rate: TaxRate) -> taxes.TaxRate:
    """The rate as `plans.taxes` and `plans.totals` compute with it."""
    return taxes.TaxRate(percentage=rate.percentage, inclusive=rate.inclusive, display_name=rate.display_name)


def _validate(percentage: Decimal, inclusive: bool) -> Decimal:
    # "20.00" and "20" are one rate: canonical before the 4-decimal check counts the places.
    percentage = canonical_decimal(percentage)
    taxes.validate_tax_rate(taxes.TaxRate(percentage=percentage, inclusive=inclusive))
    return percentage


async def create_tax_rate(session: AsyncSession, merchant_id: str, params: TaxRateCreate) -> TaxRate:
    percentage = _validate(params.percentage, params.inclusive)
    now = CATALOG_CLOCK.now()
    rate = TaxRate(
        id=new_id("txr"),
        merchant_id=merchant_id,
        display_name=params.display_name,
        description=params.description,
        percentage=percentage,
        inclusive=params.inclusive,
        metadata_=validate_metadata(params.metadata),
        created_at=now,
        updated_at=now,
    )
    session.add(rate)
    await session.flush()
    record_event(
        session,
        merchant_id=merchant_id,
        event_type="tax_rate.created",
        obj=render_tax_rate(rate),
        clock=CATALOG_CLOCK,
    )
    return rate


async def get_tax_rate(
    session: AsyncSession,
    merchant_id: str,
    tax_rate_id: str,
    *,
    param: str | None = None,
    for_update: bool = False,
) -> TaxRate:
    """The merchant's tax rate with that id, archived or not; NotFound for another merchant's or an unknown id."""
    return await get_owned(
        session,
        TaxRate,
        tax_rate_id,
        merchant_id=merchant_id,
        prefix="txr",
        kind="tax rate",
        param=param,
        for_update=for_update,
    )


async def list_tax_rates(
    session: AsyncSession, merchant_id: str, page: PageRequest, *, active: bool | None = None
) -> Page[TaxRate]:
    filters = (active_filter(TaxRate.archived_at, active),)
    return await list_owned(session, TaxRate, merchant_id, filters, page, prefix="txr")


async def update_tax_rate(
    session: AsyncSession, merchant_id: str, tax_rate_id: str, params: TaxRateUpdate
) -> TaxRate:
    """display_name, description and metadata always change; percentage and inclusive only while not in use."""
    rate = await get_tax_rate(session, merchant_id, tax_rate_id, for_update=True)
    before = msgspec.to_builtins(render_tax_rate(rate))
    percentage = rate.percentage if params.percentage is msgspec.UNSET else params.percentage
    inclusive = rate.inclusive if params.inclusive is msgspec.UNSET else params.inclusive
    percentage = _validate(percentage, inclusive)
    changed = [
        name
        for name, old, new in (
            ("percentage", rate.percentage, percentage),
            ("inclusive", rate.inclusive, inclusive),
        )
        if old != new
    ]
    if changed and rate.in_use_since is not None:
        raise in_use_conflict(
            "tax rate",
            rate.id,
            changed,
            "create a new tax rate, use it on new subscriptions, and archive this one.",
            used_by="subscriptions or invoices",
        )
    changes: dict[str, Any] = {}
    if changed:
        changes.update(percentage=percentage, inclusive=inclusive)
    for name in ("display_name", "description"):
        value = getattr(params, name)
        if value is not msgspec.UNSET:
            changes[name] = value
    if params.metadata is not msgspec.UNSET:
        changes["metadata_"] = merge_metadata(rate.metadata_, params.metadata)
    for name, value in changes.items():
        setattr(rate, name, value)
    after = render_tax_rate(rate)
    if previous := previous_attributes(before, after):
        rate.updated_at = CATALOG_CLOCK.now()
        await session.flush()
        record_event(
            session,
            merchant_id=merchant_id,
            event_type="tax_rate.updated",
            obj=after,
            clock=CATALOG_CLOCK,
            previous_attributes=previous,
        )
    return rate


async def set_tax_rate_archived(
    session: AsyncSession, merchant_id: str, tax_rate_id: str, archived: bool
) -> TaxRate:
    """Archive a tax rate (not added to new subscriptions; existing ones keep it) or make it usable again."""
    rate = await get_tax_rate(session, merchant_id, tax_rate_id, for_update=True)
    await set_archived(session, rate, archived, kind="tax_rate", render=render_tax_rate)
    return rate


async def mark_tax_rate_in_use(session: AsyncSession, rate: TaxRate) -> TaxRate:
    """Freeze the rate's percentage and inclusiveness: a subscription or invoice now applies it.

    Locks and reloads the row, so a concurrent `update_tax_rate` either committed first or answers 409.
    """
    locked = await session.scalar(
        select(TaxRate)
        .where(TaxRate.id == rate.id, TaxRate.merchant_id == rate.merchant_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if locked is None:
        raise not_found("tax rate", rate.id, "tax_rates")
    if locked.in_use_since is None:
        locked.in_use_since = CATALOG_CLOCK.now()
        await session.flush()
        record_event(
            session,
            merchant_id=locked.merchant_id,
            event_type="tax_rate.updated",
            obj=render_tax_rate(locked),
            clock=CATALOG_CLOCK,
            previous_attributes={"in_use": False},
        )
    return locked


def ensure_tax_rate_usable(rate: TaxRate, *, param: str = "tax_rates") -> None:
    """Raise 409 if `rate` may not be added to a new subscription (it is archived)."""
    if rate.archived_at is not None:
        raise Conflict(
            f"Tax rate {rate.id} ({rate.display_name}, {decimal_text(rate.percentage)}%) is archived, so it "
            "cannot be added to new subscriptions. Use an active tax rate, or unarchive this one with "
            f"POST /v1/tax_rates/{rate.id}/unarchive.",
            code="tax_rate_archived",
            param=param,
        )
