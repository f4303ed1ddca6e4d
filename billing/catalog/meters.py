"""Meter use cases: one function each, in the caller's transaction, the event staged inside it.

A meter says how usage events add up to a quantity (SPEC §4 meters). Plans charge for meters by code, so the
code never changes; aggregation and property are the meter's "pricing" and freeze once a subscription uses a
plan that charges for it (`mark_meters_in_use`, called by `billing.catalog.plans.mark_plan_in_use`).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog import schemas
from billing.catalog.common import (
    CATALOG_CLOCK,
    code_taken,
    flush_unique,
    get_by_id_or_code,
    in_use_conflict,
    set_archived,
    validate_new_code,
)
from billing.catalog.models import Aggregation, Meter
from billing.catalog.schemas import MeterCreate, MeterUpdate
from billing.db.lookup import active_filter, equals, list_owned
from billing.db.pagination import Page, PageRequest
from billing.errors import InvalidRequest
from billing.ids import new_id
from billing.metadata import merge_metadata, validate_metadata
from plans.errors import CatalogError, parse_choice
from webhooks.outbox import previous_attributes, record_event

_UNIQUE_CODE = "uq_meters_merchant_code"


def render_meter(meter: Meter) -> schemas.Meter:
    return schemas.Meter(
        id=meter.id,
        created_at=meter.created_at,
        code=meter.code,
        name=meter.name,
        description=meter.description,
        aggregation=Aggregation(meter.aggregation),
        property=meter.property,
        active=meter.archived_at is None,
        in_use=meter.in_use_since is not None,
        metadata=meter.metadata_,
    )


def validate_aggregation(aggregation: str, property_: str | None) -> tuple[Aggregation, str | None]:
    """unique_count counts distinct properties[property], so it needs one; the others aggregate `value`."""
    unit = parse_choice(Aggregation, aggregation, param="aggregation")
    if unit is Aggregation.UNIQUE_COUNT and property_ is None:
        raise CatalogError(
            "property is required for a unique_count meter: the key of the usage event's properties whose "
            "distinct values are counted, e.g. 'user_id'",
            param="property",
            code="parameter_missing",
        )
    if unit is not Aggregation.UNIQUE_COUNT and property_ is not None:
        raise CatalogError(
            f"property is only used by unique_count meters; a {unit} meter aggregates the event's value "
            "(remove property, or send null)",
            param="property",
            code="parameter_not_allowed",
        )
    return unit, property_


async def _code_owner(session: AsyncSession, merchant_id: str, code: str) -> Meter | None:
    return await session.scalar(select(Meter).where(Meter.merchant_id == merchant_id, Meter.code == code))


async def create_meter(session: AsyncSession, merchant_id: str, params: MeterCreate) -> Meter:
    code = validate_new_code(params.code)
    aggregation, property_ = validate_aggregation(params.aggregation, params.property)
    if (owner := await _code_owner(session, merchant_id, code)) is not None:
        raise code_taken("meter", code, owner.id, archived=owner.archived_at is not None)
    now = CATALOG_CLOCK.now()
    meter = Meter(
        id=new_id("mtr"),
        merchant_id=merchant_id,
        code=code,
        name=params.name,
        description=params.description,
        aggregation=aggregation.value,
        property=property_,
        metadata_=validate_metadata(params.metadata),
        created_at=now,
        updated_at=now,
    )
    session.add(meter)
    await flush_unique(session, _UNIQUE_CODE, lambda: code_taken("meter", code, None))
    record_event(
        session,
        merchant_id=merchant_id,
        event_type="meter.created",
        obj=render_meter(meter),
        clock=CATALOG_CLOCK,
    )
    return meter


async def get_meter(
    session: AsyncSession, merchant_id: str, meter_id: str, *, for_update: bool = False
) -> Meter:
    """The merchant's meter with that id or code, archived or not; NotFound for another merchant's or an
    unknown one."""
    return await get_by_id_or_code(
        session,
        Meter,
        meter_id,
        merchant_id=merchant_id,
        prefix="mtr",
        kind="meter",
        for_update=for_update,
    )


async def meters_by_code(
    session: AsyncSession, merchant_id: str, codes: Collection[str], *, lock: bool = False
) -> dict[str, Meter]:
    """The merchant's meters with these codes. `lock` takes a share lock, so that a meter cannot be archived
    or change its aggregation while the caller's transaction builds a plan on it."""
    if not codes:
        return {}
    stmt = select(Meter).where(Meter.merchant_id == merchant_id, Meter.code.in_(sorted(set(codes))))
    if lock:
        stmt = stmt.with_for_update(read=True)
    return {meter.code: meter for meter in await session.scalars(stmt)}


async def list_meters(
    session: AsyncSession,
    merchant_id: str,
    page: PageRequest,
    *,
    active: bool | None = None,
    code: str | None = None,
) -> Page[Meter]:
    filters = (active_filter(Meter.archived_at, active), equals(Meter.code, code))
    return await list_owned(session, Meter, merchant_id, filters, page, prefix="mtr")


async def update_meter(session: AsyncSession, merchant_id: str, meter_id: str, params: MeterUpdate) -> Meter:
    """name, description and metadata always change; aggregation and property only while not in use (409)."""
    meter = await get_meter(session, merchant_id, meter_id, for_update=True)
    before = msgspec.to_builtins(render_meter(meter))
    if params.code is not msgspec.UNSET and params.code != meter.code:
        raise InvalidRequest(
            f"A meter's code cannot change: plans and usage events refer to meter {meter.id} as "
            f"{meter.code!r}. Create a new meter with code {params.code[:100]!r} instead.",
            code="parameter_immutable",
            param="code",
        )
    aggregation = meter.aggregation if params.aggregation is msgspec.UNSET else params.aggregation
    property_ = meter.property if params.property is msgspec.UNSET else params.property
    if params.aggregation is not msgspec.UNSET or params.property is not msgspec.UNSET:
        unit, property_ = validate_aggregation(aggregation, property_)
        aggregation = unit.value
    changed = [
        name
        for name, old, new in (
            ("aggregation", meter.aggregation, aggregation),
            ("property", meter.property, property_),
        )
        if old != new
    ]
    if changed and meter.in_use_since is not None:
        raise in_use_conflict(
            "meter",
            meter.id,
            changed,
            "create a new meter with the new aggregation, and a new plan that charges for it (move "
            "subscriptions to that plan with change).",
        )
    changes: dict[str, Any] = {"aggregation": aggregation, "property": property_}
    for name in ("name", "description"):
        value = getattr(params, name)
        if value is not msgspec.UNSET:
            changes[name] = value
    if params.metadata is not msgspec.UNSET:
        changes["metadata_"] = merge_metadata(meter.metadata_, params.metadata)
    for name, value in changes.items():
        setattr(meter, name, value)
    after = render_meter(meter)
    if previous := previous_attributes(before, after):
        meter.updated_at = CATALOG_CLOCK.now()
        await session.flush()
        record_event(
            session,
            merchant_id=merchant_id,
            event_type="meter.updated",
            obj=after,
            clock=CATALOG_CLOCK,
            previous_attributes=previous,
        )
    return meter


async def set_meter_archived(session: AsyncSession, merchant_id: str, meter_id: str, archived: bool) -> Meter:
    """Archive (new plans may no longer charge for it; plans that do keep billing it) or unarchive a meter."""
    meter = await get_meter(session, merchant_id, meter_id, for_update=True)
    await set_archived(session, meter, archived, kind="meter", render=render_meter)
    return meter


async def mark_meters_in_use(session: AsyncSession, merchant_id: str, codes: Collection[str]) -> list[Meter]:
    """Freeze the aggregation of these meters: a subscription now bills them. Returns the meters newly marked.

    Takes the meters' row locks, so it waits for (or makes wait) a concurrent `update_meter`: either the update
    commits first and the subscription bills the new aggregation, or the update sees the mark and answers 409.
    """
    if not codes:
        return []
    meters = list(
        await session.scalars(
            select(Meter)
            .where(
                Meter.merchant_id == merchant_id,
                Meter.code.in_(sorted(set(codes))),
                Meter.in_use_since.is_(None),
            )
            .order_by(Meter.code)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )
    now = CATALOG_CLOCK.now()
    for meter in meters:
        if meter.in_use_since is not None:
            continue
        meter.in_use_since = now
        record_event(
            session,
            merchant_id=merchant_id,
            event_type="meter.updated",
            obj=render_meter(meter),
            clock=CATALOG_CLOCK,
            previous_attributes={"in_use": False},
        )
    await session.flush()
    return meters
