"""Coupon use cases: one function each, in the caller's transaction, the event staged inside it.

A coupon's discount (percent_off or amount_off, duration) is validated by `plans.discounts.validate_coupon`.
It can change until the coupon is first redeemed; after that a different discount is a new coupon, so that
subscriptions already discounted keep the terms they were given. `redeem_coupon` is how the subscriptions
feature redeems one: it checks `ensure_coupon_redeemable` and counts the redemption atomically, so two
concurrent redemptions can never exceed `max_redemptions`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog import schemas
from billing.catalog.common import (
    CATALOG_CLOCK,
    canonical_decimal,
    decimal_text,
    set_archived,
)
from billing.catalog.models import Coupon
from billing.catalog.schemas import CouponCreate, CouponUpdate
from billing.db.lookup import active_filter, get_owned, list_owned
from billing.db.pagination import Page, PageRequest
from billing.errors import Conflict, InvalidRequest
from billing.ids import new_id
from billing.metadata import merge_metadata, validate_metadata
from plans import discounts
from plans.discounts import CouponDuration
from plans.errors import parse_choice
from plans.money import validate_currency
from webhooks.outbox import previous_attributes, record_event

#: The discount terms: frozen once the coupon has been redeemed.
DISCOUNT_FIELDS = ("percent_off", "amount_off", "currency", "duration", "duration_in_periods")


def _is_valid(coupon: Coupon, now: datetime) -> bool:
    return (
        coupon.archived_at is None
        and (coupon.redeem_by is None or now < coupon.redeem_by)
        and (coupon.max_redemptions is None or coupon.times_redeemed < coupon.max_redemptions)
    )


def render_coupon(coupon: Coupon) -> schemas.Coupon:
    return schemas.Coupon(
        id=coupon.id,
        created_at=coupon.created_at,
        name=coupon.name,
        percent_off=None if coupon.percent_off is None else decimal_text(coupon.percent_off),
        amount_off=coupon.amount_off,
        currency=coupon.currency,
        duration=CouponDuration(coupon.duration),
        duration_in_periods=coupon.duration_in_periods,
        max_redemptions=coupon.max_redemptions,
        redeem_by=coupon.redeem_by,
        times_redeemed=coupon.times_redeemed,
        valid=_is_valid(coupon, CATALOG_CLOCK.now()),
        active=coupon.archived_at is None,
        metadata=coupon.metadata_,
    )


def pure_coupon(coupon: Coupon) -> discounts.Coupon:
    """The coupon as `plans.discounts` computes with it (`apply_discount`, `coupon_applies`)."""
    return discounts.Coupon(
        duration=CouponDuration(coupon.duration),
        percent_off=coupon.percent_off,
        amount_off=coupon.amount_off,
        currency=coupon.currency,
        duration_in_periods=coupon.duration_in_periods,
    )


def _validate_discount(
    percent_off: Decimal | None,
    amount_off: int | None,
    currency: str | None,
    duration: str,
    duration_in_periods: int | None,
) -> discounts.Coupon:
    validated = discounts.validate_coupon(
        discounts.Coupon(
            duration=parse_choice(CouponDuration, duration, param="duration"),
            percent_off=None if percent_off is None else canonical_decimal(percent_off),
            amount_off=amount_off,
            currency=currency,
            duration_in_periods=duration_in_periods,
        )
    )
    if validated.currency is None:
        return validated
    return discounts.Coupon(
        duration=validated.duration,
        percent_off=validated.percent_off,
        amount_off=validated.amount_off,
        currency=validate_currency(validated.currency),
        duration_in_periods=validated.duration_in_periods,
    )


def _validate_max_redemptions(value: int | None, times_redeemed: int = 0) -> int | None:
    if value is None:
        return None
    floor = max(1, times_redeemed)
    if value < floor:
        reason = f" (it has been redeemed {times_redeemed} times already)" if times_redeemed else ""
        raise InvalidRequest(
            f"max_redemptions must be at least {floor}{reason}, or null for no limit; got {value}.",
            param="max_redemptions",
        )
    return value


def _validate_redeem_by(value: datetime | None, now: datetime) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise InvalidRequest(
            "redeem_by must carry a time zone (RFC 3339 in UTC), e.g. '2027-12-31T23:59:59Z'.",
            param="redeem_by",
        )
    if value <= now:
        raise InvalidRequest(
            f"redeem_by must be in the future (it is the last moment the coupon can be redeemed); got "
            f"{value.isoformat()}. Archive the coupon to stop redemptions now.",
            param="redeem_by",
        )
    return value


async def create_coupon(session: AsyncSession, merchant_id: str, params: CouponCreate) -> Coupon:
    discount = _validate_discount(
        params.percent_off, params.amount_off, params.currency, params.duration, params.duration_in_periods
    )
    now = CATALOG_CLOCK.now()
    coupon = Coupon(
        id=new_id("cpn"),
        merchant_id=merchant_id,
        name=params.name,
        percent_off=discount.percent_off,
        amount_off=discount.amount_off,
        currency=discount.currency,
        duration=discount.duration.value,
        duration_in_periods=discount.duration_in_periods,
        max_redemptions=_validate_max_redemptions(params.max_redemptions),
        redeem_by=_validate_redeem_by(params.redeem_by, now),
        times_redeemed=0,
        metadata_=validate_metadata(params.metadata),
        created_at=now,
        updated_at=now,
    )
    session.add(coupon)
    await session.flush()
    record_event(
        session,
        merchant_id=merchant_id,
        event_type="coupon.created",
        obj=render_coupon(coupon),
        clock=CATALOG_CLOCK,
    )
    return coupon


async def get_coupon(
    session: AsyncSession,
    merchant_id: str,
    coupon_id: str,
    *,
    param: str | None = None,
    for_update: bool = False,
) -> Coupon:
    """The merchant's coupon with that id, archived or not; NotFound for another merchant's or an unknown id."""
    return await get_owned(
        session,
        Coupon,
        coupon_id,
        merchant_id=merchant_id,
        prefix="cpn",
        kind="coupon",
        param=param,
        for_update=for_update,
    )


async def list_coupons(
    session: AsyncSession, merchant_id: str, page: PageRequest, *, active: bool | None = None
) -> Page[Coupon]:
    filters = (active_filter(Coupon.archived_at, active),)
    return await list_owned(session, Coupon, merchant_id, filters, page, prefix="cpn")


def _new_discount(coupon: Coupon, params: CouponUpdate) -> discounts.Coupon:
    """The discount after `params`. Sending one of percent_off / amount_off replaces the other."""
    percent_off, amount_off, currency = coupon.percent_off, coupon.amount_off, coupon.currency
    if params.percent_off is not msgspec.UNSET:
        percent_off = params.percent_off
        if params.percent_off is not None and params.amount_off is msgspec.UNSET:
            amount_off = None
            currency = None if params.currency is msgspec.UNSET else params.currency
    if params.amount_off is not msgspec.UNSET:
        amount_off = params.amount_off
        if params.amount_off is not None and params.percent_off is msgspec.UNSET:
            percent_off = None
    if params.currency is not msgspec.UNSET:
        currency = params.currency
    duration = coupon.duration if params.duration is msgspec.UNSET else params.duration
    periods = coupon.duration_in_periods
    if params.duration_in_periods is not msgspec.UNSET:
        periods = params.duration_in_periods
    elif params.duration is not msgspec.UNSET and params.duration != "repeating":
        periods = None
    return _validate_discount(percent_off, amount_off, currency, duration, periods)


async def update_coupon(
    session: AsyncSession, merchant_id: str, coupon_id: str, params: CouponUpdate
) -> Coupon:
    """name, metadata, max_redemptions and redeem_by always change; the discount only until first redeemed."""
    coupon = await get_coupon(session, merchant_id, coupon_id, for_update=True)
    before = msgspec.to_builtins(render_coupon(coupon))
    now = CATALOG_CLOCK.now()
    discount = _new_discount(coupon, params)
    new_terms: dict[str, Any] = {
        "percent_off": discount.percent_off,
        "amount_off": discount.amount_off,
        "currency": discount.currency,
        "duration": discount.duration.value,
        "duration_in_periods": discount.duration_in_periods,
    }
    changed = [name for name in DISCOUNT_FIELDS if getattr(coupon, name) != new_terms[name]]
    if changed and coupon.times_redeemed > 0:
        raise Conflict(
            f"Coupon {coupon.id} has been redeemed {coupon.times_redeemed} times, so its discount cannot "
            f"change ({', '.join(changed)}); create a new coupon with the new discount, and archive this one "
            "to stop new redemptions.",
            code="coupon_in_use",
            param=changed[0],
        )
    changes: dict[str, Any] = dict(new_terms)
    if params.name is not msgspec.UNSET:
        changes["name"] = params.name
    if params.max_redemptions is not msgspec.UNSET:
        changes["max_redemptions"] = _validate_max_redemptions(params.max_redemptions, coupon.times_redeemed)
    if params.redeem_by is not msgspec.UNSET:
        changes["redeem_by"] = _validate_redeem_by(params.redeem_by, now)
    if params.metadata is not msgspec.UNSET:
        changes["metadata_"] = merge_metadata(coupon.metadata_, params.metadata)
    for name, value in changes.items():
        setattr(coupon, name, value)
    after = render_coupon(coupon)
    if previous := previous_attributes(before, after):
        coupon.updated_at = now
        await session.flush()
        record_event(
            session,
            merchant_id=merchant_id,
            event_type="coupon.updated",
            obj=after,
            clock=CATALOG_CLOCK,
            previous_attributes=previous,
        )
    return coupon


async def set_coupon_archived(
    session: AsyncSession, merchant_id: str, coupon_id: str, archived: bool
) -> Coupon:
    """Archive a coupon (no new redemptions; discounts already given go on) or make it redeemable again."""
    coupon = await get_coupon(session, merchant_id, coupon_id, for_update=True)
    await set_archived(session, coupon, archived, kind="coupon", render=render_coupon)
    return coupon


def ensure_coupon_redeemable(coupon: Coupon, now: datetime) -> None:
    """Raise 409 unless `coupon` can be redeemed at `now`: not archived, before redeem_by, redemptions left."""
    if coupon.archived_at is not None:
        raise Conflict(
            f"Coupon {coupon.id} is archived and can no longer be redeemed. Use an active coupon, or "
            f"unarchive this one with POST /v1/coupons/{coupon.id}/unarchive.",
            code="coupon_archived",
            param="coupon",
        )
    if coupon.redeem_by is not None and now >= coupon.redeem_by:
        raise Conflict(
            f"Coupon {coupon.id} could be redeemed until {coupon.redeem_by.isoformat()} and has expired. Use "
            "another coupon, or extend its redeem_by.",
            code="coupon_expired",
            param="coupon",
        )
    if coupon.max_redemptions is not None and coupon.times_redeemed >= coupon.max_redemptions:
        raise Conflict(
            f"Coupon {coupon.id} has been redeemed the maximum of {coupon.max_redemptions} times. Use another "
            "coupon, or raise its max_redemptions.",
            code="coupon_max_redemptions_reached",
            param="coupon",
        )


async def redeem_coupon(session: AsyncSession, coupon: Coupon, now: datetime) -> Coupon:
    """Count one redemption of `coupon` at `now`, or raise 409 (see `ensure_coupon_redeemable`).

    The count is one conditional UPDATE, so concurrent redemptions serialize on the row and the last one past
    `max_redemptions` is refused rather than counted.
    """
    ensure_coupon_redeemable(coupon, now)
    counted = await session.scalar(
        update(Coupon)
        .where(
            Coupon.id == coupon.id,
            Coupon.archived_at.is_(None),
            (Coupon.max_redemptions.is_(None)) | (Coupon.times_redeemed < Coupon.max_redemptions),
        )
        .values(times_redeemed=Coupon.times_redeemed + 1)
        .returning(Coupon.times_redeemed)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(coupon)
    if counted is None:
        ensure_coupon_redeemable(coupon, now)
        raise Conflict(
            f"Coupon {coupon.id} can no longer be redeemed.", code="coupon_invalid", param="coupon"
        )
    # times_redeemed (and perhaps valid) changed: a state change like any other.
    record_event(
        session,
        merchant_id=coupon.merchant_id,
        event_type="coupon.updated",
        obj=render_coupon(coupon),
        clock=CATALOG_CLOCK,
        previous_attributes={"times_redeemed": counted - 1},
    )
    return coupon
