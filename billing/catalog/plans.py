"""Plan use cases: one function each, in the caller's transaction, the event staged inside it.

A plan bills `amount` per unit in advance each interval, and its charges (usage of a meter priced by a model)
in arrears (SPEC §4 plans). Every price, tier and interval is validated by the pure `plans` package, with the
API's parameter paths (``charges[0].tiers[2].up_to``). Once a subscription uses a plan (`mark_plan_in_use`,
called by the subscriptions feature in the transaction that first subscribes to it) its pricing is frozen: a
change is a new plan, so that what existing subscribers pay never moves under them. An archived plan takes no
new subscriptions (`ensure_plan_subscribable`).

Charges are stored as JSONB in a canonical form (`stored_charge`): every unit price as the exact decimal text
of `plans.pricing` (``"0.25"``, ``"1000"``), so two spellings of one price compare equal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog import schemas
from billing.catalog.common import (
    CATALOG_CLOCK,
    code_taken,
    decimal_text,
    flush_unique,
    get_by_id_or_code,
    in_use_conflict,
    set_archived,
    validate_code,
    validate_new_code,
    whole,
)
from billing.catalog.meters import mark_meters_in_use, meters_by_code
from billing.catalog.models import Plan
from billing.catalog.schemas import PlanCreate, PlanUpdate
from billing.db.lookup import active_filter, equals, list_owned
from billing.db.pagination import Page, PageRequest
from billing.errors import Conflict, InvalidRequest, not_found
from billing.ids import new_id
from billing.metadata import merge_metadata, validate_metadata
from plans import pricing
from plans.calendar import MAX_TRIAL_DAYS, Interval, validate_interval
from plans.commitment import validate_minimum_commitment
from plans.errors import CatalogError, parse_choice
from plans.money import parse_unit_amount_decimal, validate_amount, validate_currency
from webhooks.outbox import previous_attributes, record_event

_UNIQUE_CODE = "uq_plans_merchant_code"
_PLAIN_QUANTITY = re.compile(r"[0-9]{1,38}(?:\.[0-9]{1,38})?")

#: The fields whose change would change what a subscriber pays; frozen once the plan is in use.
PRICING_FIELDS = (
    "currency",
    "interval",
    "interval_count",
    "amount",
    "trial_period_days",
    "charges",
    "minimum_commitment",
)


# --- charges: wire <-> stored <-> pure -------------------------------------------------------------------


def _price(amount: int | None, amount_decimal: str | None, *, param: str) -> Decimal | None:
    """The exact unit price given as an int of minor units or as decimal text (never both), or None."""
    if amount is not None and amount_decimal is not None:
        raise CatalogError(
            f"set either {param} or {param}_decimal, not both",
            param=f"{param}_decimal",
            code="parameter_conflict",
        )
    if amount is not None:
        return Decimal(validate_amount(amount, param=param))
    if amount_decimal is not None:
        return parse_unit_amount_decimal(amount_decimal, param=f"{param}_decimal")
    return None


def stored_charge(charge: schemas.Charge, *, param: str) -> dict[str, Any]:
    """Validate an API charge with `plans.pricing` (errors name ``<param>.tiers[2].up_to`` etc.) and return
    its canonical stored form."""
    # Only the decimal strings are parsed here; both unit prices go to the pure validator, which refuses a
    # charge or tier that sets both.
    unit_decimal = (
        None
        if charge.unit_amount_decimal is None
        else parse_unit_amount_decimal(charge.unit_amount_decimal, param=f"{param}.unit_amount_decimal")
    )
    tiers = tuple(
        pricing.Tier(
            up_to=tier.up_to,
            unit_amount=tier.unit_amount,
            unit_amount_decimal=None
            if tier.unit_amount_decimal is None
            else parse_unit_amount_decimal(
                tier.unit_amount_decimal, param=f"{param}.tiers[{index}].unit_amount_decimal"
            ),
            flat_amount=tier.flat_amount,
        )
        for index, tier in enumerate(charge.tiers)
    )
    model = parse_choice(pricing.PricingModel, charge.model, param=f"{param}.model")
    rate = None if charge.rate is None else parse_unit_amount_decimal(charge.rate, param=f"{param}.rate")
    pure = pricing.validate_charge(
        pricing.Charge(
            model=model,
            unit_amount=charge.unit_amount,
            unit_amount_decimal=unit_decimal,
            tiers=tiers,
            package_size=charge.package_size,
            free_units=charge.free_units,
            rate=rate,
            fixed_amount=charge.fixed_amount,
            free_units_per_events=charge.free_units_per_events,
            free_units_per_total_aggregation=charge.free_units_per_total_aggregation,
            per_transaction_min_amount=charge.per_transaction_min_amount,
            per_transaction_max_amount=charge.per_transaction_max_amount,
        ),
        param=param,
    )
    has_unit_price = pure.unit_amount is not None or pure.unit_amount_decimal is not None
    return {
        "meter": charge.meter,
        "model": model.value,
        "unit_amount_decimal": decimal_text(pure.unit_price) if has_unit_price else None,
        "tiers": [
            {
                "up_to": tier.up_to,
                "unit_amount_decimal": None
                if tier.unit_amount is None and tier.unit_amount_decimal is None
                else decimal_text(tier.unit_price),
                "flat_amount": tier.flat_amount,
            }
            for tier in pure.tiers
        ],
        "package_size": pure.package_size,
        "free_units": charge.free_units,
        **_stored_percentage(pure),
    }


def _stored_percentage(charge: pricing.Charge) -> dict[str, Any]:
    """A percentage charge's own fields (absent from other charges, and from charges stored before them)."""
    if charge.model is not pricing.PricingModel.PERCENTAGE:
        return {}
    stored: dict[str, Any] = {name: getattr(charge, name) for name in pricing.PERCENTAGE_FIELDS}
    stored["rate"] = decimal_text(stored["rate"])
    return stored


def pricing_charge(stored: Mapping[str, Any]) -> pricing.Charge:
    """The `plans.pricing.Charge` of a stored charge, for pricing usage (invoices, previews)."""
    return pricing.Charge(
        model=pricing.PricingModel(stored["model"]),
        unit_amount_decimal=_decimal_or_none(stored["unit_amount_decimal"]),
        tiers=tuple(
            pricing.Tier(
                up_to=tier["up_to"],
                unit_amount_decimal=_decimal_or_none(tier["unit_amount_decimal"]),
                flat_amount=tier["flat_amount"],
            )
            for tier in stored["tiers"]
        ),
        package_size=stored["package_size"],
        free_units=stored["free_units"],
        rate=_decimal_or_none(stored.get("rate")),
        fixed_amount=stored.get("fixed_amount"),
        free_units_per_events=stored.get("free_units_per_events"),
        free_units_per_total_aggregation=stored.get("free_units_per_total_aggregation"),
        per_transaction_min_amount=stored.get("per_transaction_min_amount"),
        per_transaction_max_amount=stored.get("per_transaction_max_amount"),
    )


def advance_charge(plan: Plan) -> pricing.Charge:
    """The plan's advance fee as a per-unit `plans.pricing.Charge`: `amount` per unit (seat) and period."""
    return pricing.Charge(model=pricing.PricingModel.PER_UNIT, unit_amount_decimal=plan.amount_decimal)


def _decimal_or_none(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _render_charge(stored: Mapping[str, Any]) -> schemas.Charge:
    unit = _decimal_or_none(stored["unit_amount_decimal"])
    return schemas.Charge(
        meter=stored["meter"],
        model=stored["model"],
        unit_amount=None if unit is None else whole(unit),
        unit_amount_decimal=stored["unit_amount_decimal"],
        tiers=[
            schemas.Tier(
                up_to=tier["up_to"],
                unit_amount=None
                if tier["unit_amount_decimal"] is None
                else whole(Decimal(tier["unit_amount_decimal"])),
                unit_amount_decimal=tier["unit_amount_decimal"],
                flat_amount=tier["flat_amount"],
            )
            for tier in stored["tiers"]
        ],
        package_size=stored["package_size"],
        free_units=stored["free_units"],
        rate=stored.get("rate"),
        fixed_amount=stored.get("fixed_amount"),
        free_units_per_events=stored.get("free_units_per_events"),
        free_units_per_total_aggregation=stored.get("free_units_per_total_aggregation"),
        per_transaction_min_amount=stored.get("per_transaction_min_amount"),
        per_transaction_max_amount=stored.get("per_transaction_max_amount"),
    )


def render_plan(plan: Plan) -> schemas.Plan:
    return schemas.Plan(
        id=plan.id,
        created_at=plan.created_at,
        code=plan.code,
        name=plan.name,
        description=plan.description,
        currency=plan.currency,
        interval=Interval(plan.interval),
        interval_count=plan.interval_count,
        amount=whole(plan.amount_decimal),
        amount_decimal=decimal_text(plan.amount_decimal),
        trial_period_days=plan.trial_period_days,
        charges=[_render_charge(charge) for charge in plan.charges],
        minimum_commitment=plan.minimum_commitment,
        active=plan.archived_at is None,
        in_use=plan.in_use_since is not None,
        portal_visible=bool(plan.portal_visible),
        metadata=plan.metadata_,
    )


# --- validation of a plan's pricing ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Pricing:
    """A plan's pricing terms in canonical form: equal terms mean an equal price for every subscriber."""

    currency: str
    interval: str
    interval_count: int
    amount: Decimal
    trial_period_days: int | None
    charges: list[dict[str, Any]]
    minimum_commitment: int | None

    def differences(self, other: _Pricing) -> list[str]:
        return [name for name in PRICING_FIELDS if getattr(self, name) != getattr(other, name)]


def _current_pricing(plan: Plan) -> _Pricing:
    return _Pricing(
        currency=plan.currency,
        interval=plan.interval,
        interval_count=plan.interval_count,
        amount=plan.amount_decimal,
        trial_period_days=plan.trial_period_days,
        charges=list(plan.charges),
        minimum_commitment=plan.minimum_commitment,
    )


def _validate_trial(days: int | None) -> int | None:
    if days is not None and not 1 <= days <= MAX_TRIAL_DAYS:
        raise CatalogError(
            f"trial_period_days must be between 1 and {MAX_TRIAL_DAYS}, or null for no trial; got {days}",
            param="trial_period_days",
        )
    return days


async def _validate_charges(
    session: AsyncSession,
    merchant_id: str,
    charges: Sequence[schemas.Charge],
    *,
    already_charged: frozenset[str] = frozenset(),
    prefix: str = "charges",
) -> list[dict[str, Any]]:
    """Validate every charge and its meter: known, not archived (unless the plan already charged for it)."""
    stored = [stored_charge(charge, param=f"{prefix}[{index}]") for index, charge in enumerate(charges)]
    first_index: dict[str, int] = {}
    for index, charge in enumerate(charges):
        validate_code(charge.meter, param=f"{prefix}[{index}].meter")
        if charge.meter in first_index:
            raise InvalidRequest(
                f"{prefix}[{index}].meter: meter {charge.meter!r} is already charged by "
                f"{prefix}[{first_index[charge.meter]}]; its usage would be billed twice. Merge the two "
                "charges into one (graduated tiers can express both).",
                code="parameter_duplicate",
                param=f"{prefix}[{index}].meter",
            )
        first_index[charge.meter] = index
    meters = await meters_by_code(session, merchant_id, first_index, lock=True)
    for code, index in first_index.items():
        meter = meters.get(code)
        param = f"{prefix}[{index}].meter"
        if meter is None:
            raise InvalidRequest(
                f"{param}: there is no meter with code {code!r}. Create it first with POST /v1/meters, or "
                "check the code (GET /v1/meters lists yours).",
                code="resource_missing",
                param=param,
            )
        if stored[index]["model"] == pricing.PricingModel.PERCENTAGE and meter.aggregation != "sum":
            raise InvalidRequest(
                f"{param}: a percentage charge needs a sum meter, whose event value is the transaction amount; "
                f"meter {code!r} aggregates by {meter.aggregation}. Create a meter with aggregation 'sum'.",
                code="meter_aggregation_mismatch",
                param=param,
            )
        if meter.archived_at is not None and code not in already_charged:
            raise InvalidRequest(
                f"{param}: meter {code!r} ({meter.id}) is archived, so new charges cannot use it. Unarchive "
                f"it with POST /v1/meters/{meter.id}/unarchive, or charge for an active meter.",
                code="meter_archived",
                param=param,
            )
    return stored


# --- one subscription's own prices ----------------------------------------------------------------------

#: What a plan's name says on invoice lines when a subscription's prices override it.
OVERRIDDEN_SUFFIX = " (custom price / 专属价格)"


async def validate_price_overrides(
    session: AsyncSession, plan: Plan, overrides: schemas.PriceOverrides, *, param: str = "price_overrides"
) -> dict[str, Any]:
    """Validate `overrides` of `plan`'s prices (as a plan's own prices are validated; a charge must replace one
    the plan has) and return their stored form, tied to the plan: ``{"plan": id, ...only what is overridden}``."""
    stored: dict[str, Any] = {"plan": plan.id}
    if overrides.amount is not msgspec.UNSET or overrides.amount_decimal is not msgspec.UNSET:
        price = _price(
            None if overrides.amount is msgspec.UNSET else overrides.amount,
            None if overrides.amount_decimal is msgspec.UNSET else overrides.amount_decimal,
            param=f"{param}.amount",
        )
        assert price is not None  # one of the two was sent, and neither accepts null
        stored["amount_decimal"] = decimal_text(price)
    if overrides.charges is not msgspec.UNSET:
        prefix = f"{param}.charges"
        charged = {charge["meter"] for charge in plan.charges}
        for index, charge in enumerate(overrides.charges):
            if charge.meter not in charged:
                known = ", ".join(sorted(repr(code) for code in charged)) or "none"
                raise InvalidRequest(
                    f"{prefix}[{index}].meter: plan {plan.id} has no charge for meter {charge.meter[:100]!r} (its "
                    f"charges: {known}). An override replaces one of the plan's charges; use a plan that "
                    "charges for this meter.",
                    param=f"{prefix}[{index}].meter",
                )
        stored["charges"] = await _validate_charges(
            session, plan.merchant_id, overrides.charges, already_charged=frozenset(charged), prefix=prefix
        )
    if overrides.minimum_commitment is not msgspec.UNSET:
        stored["minimum_commitment"] = validate_minimum_commitment(
            overrides.minimum_commitment, param=f"{param}.minimum_commitment"
        )
    if len(stored) == 1:
        raise InvalidRequest(
            f"{param} overrides nothing: send amount, amount_decimal, charges or minimum_commitment, or send "
            f"null to remove the overrides.",
            code="parameter_missing",
            param=param,
        )
    return stored


def priced_plan(plan: Plan, overrides: Mapping[str, Any] | None) -> Plan:
    """`plan` as one subscription pays it: a copy, never added to a session, with `overrides` applied (when they
    are the overrides of this plan) and its name marked so that every invoice line says the price is custom."""
    if not overrides or overrides.get("plan") != plan.id:
        return plan
    replaced = {charge["meter"]: charge for charge in overrides.get("charges", ())}
    return Plan(
        id=plan.id,
        merchant_id=plan.merchant_id,
        code=plan.code,
        name=plan.name + OVERRIDDEN_SUFFIX,
        description=plan.description,
        currency=plan.currency,
        interval=plan.interval,
        interval_count=plan.interval_count,
        amount_decimal=Decimal(overrides.get("amount_decimal", plan.amount_decimal)),
        trial_period_days=plan.trial_period_days,
        charges=[replaced.get(charge["meter"], charge) for charge in plan.charges],
        minimum_commitment=overrides.get("minimum_commitment", plan.minimum_commitment),
        portal_visible=plan.portal_visible,
        metadata_=plan.metadata_,
        in_use_since=plan.in_use_since,
        archived_at=plan.archived_at,
        created_at=plan.created_at,
        updated_at=plan.updated_at,
    )


# --- use cases -------------------------------------------------------------------------------------------


async def _code_owner(session: AsyncSession, merchant_id: str, code: str) -> Plan | None:
    return await session.scalar(select(Plan).where(Plan.merchant_id == merchant_id, Plan.code == code))


async def create_plan(session: AsyncSession, merchant_id: str, params: PlanCreate) -> Plan:
    code = validate_new_code(params.code)
    currency = validate_currency(params.currency)
    interval, interval_count = validate_interval(params.interval, params.interval_count)
    amount = _price(params.amount, params.amount_decimal, param="amount")
    trial_period_days = _validate_trial(params.trial_period_days)
    charges = await _validate_charges(session, merchant_id, params.charges)
    minimum_commitment = validate_minimum_commitment(params.minimum_commitment)
    metadata = validate_metadata(params.metadata)
    if (owner := await _code_owner(session, merchant_id, code)) is not None:
        raise code_taken("plan", code, owner.id, archived=owner.archived_at is not None)
    now = CATALOG_CLOCK.now()
    plan = Plan(
        id=new_id("plan"),
        merchant_id=merchant_id,
        code=code,
        name=params.name,
        description=params.description,
        currency=currency,
        interval=interval.value,
        interval_count=interval_count,
        amount_decimal=Decimal(0) if amount is None else amount,
        trial_period_days=trial_period_days,
        charges=charges,
        minimum_commitment=minimum_commitment,
        portal_visible=params.portal_visible,
        metadata_=metadata,
        created_at=now,
        updated_at=now,
    )
    session.add(plan)
    await flush_unique(session, _UNIQUE_CODE, lambda: code_taken("plan", code, None))
    record_event(
        session,
        merchant_id=merchant_id,
        event_type="plan.created",
        obj=render_plan(plan),
        clock=CATALOG_CLOCK,
    )
    return plan


async def get_plan(
    session: AsyncSession,
    merchant_id: str,
    plan_id: str,
    *,
    param: str | None = None,
    for_update: bool = False,
) -> Plan:
    """The merchant's plan with that id or code, archived or not; NotFound for another merchant's or an
    unknown one."""
    return await get_by_id_or_code(
        session,
        Plan,
        plan_id,
        merchant_id=merchant_id,
        prefix="plan",
        kind="plan",
        param=param,
        for_update=for_update,
    )


async def list_plans(
    session: AsyncSession,
    merchant_id: str,
    page: PageRequest,
    *,
    active: bool | None = None,
    code: str | None = None,
    portal_visible: bool | None = None,
    currency: str | None = None,
) -> Page[Plan]:
    filters = (
        active_filter(Plan.archived_at, active),
        equals(Plan.portal_visible, portal_visible),
        equals(Plan.currency, currency and currency.upper()),
        equals(Plan.code, code),
    )
    return await list_owned(session, Plan, merchant_id, filters, page, prefix="plan")


async def _new_pricing(session: AsyncSession, plan: Plan, params: PlanUpdate) -> _Pricing:
    """The pricing after `params`, validated; fields not sent keep their current value."""
    current = _current_pricing(plan)
    currency = current.currency if params.currency is msgspec.UNSET else validate_currency(params.currency)
    interval, interval_count = current.interval, current.interval_count
    if params.interval is not msgspec.UNSET or params.interval_count is not msgspec.UNSET:
        unit, interval_count = validate_interval(
            interval if params.interval is msgspec.UNSET else params.interval,
            interval_count if params.interval_count is msgspec.UNSET else params.interval_count,
        )
        interval = unit.value
    amount = current.amount
    if params.amount is not msgspec.UNSET or params.amount_decimal is not msgspec.UNSET:
        price = _price(
            None if params.amount is msgspec.UNSET else params.amount,
            None if params.amount_decimal is msgspec.UNSET else params.amount_decimal,
            param="amount",
        )
        assert price is not None  # one of the two was sent, and neither accepts null
        amount = price
    trial = current.trial_period_days
    if params.trial_period_days is not msgspec.UNSET:
        trial = _validate_trial(params.trial_period_days)
    charges = current.charges
    if params.charges is not msgspec.UNSET:
        charges = await _validate_charges(
            session,
            plan.merchant_id,
            params.charges,
            already_charged=frozenset(charge["meter"] for charge in current.charges),
        )
    minimum = current.minimum_commitment
    if params.minimum_commitment is not msgspec.UNSET:
        minimum = validate_minimum_commitment(params.minimum_commitment)
    return _Pricing(currency, interval, interval_count, amount, trial, charges, minimum)


async def update_plan(session: AsyncSession, merchant_id: str, plan_id: str, params: PlanUpdate) -> Plan:
    """code, name, description and metadata always change; the pricing only while the plan is not in use."""
    plan = await get_plan(session, merchant_id, plan_id, for_update=True)
    before = msgspec.to_builtins(render_plan(plan))
    new_pricing = await _new_pricing(session, plan, params)
    changed = _current_pricing(plan).differences(new_pricing)
    if changed and plan.in_use_since is not None:
        raise in_use_conflict(
            "plan",
            plan.id,
            changed,
            "create a new plan with the new pricing (and move subscriptions to it with change).",
        )
    if params.code is not msgspec.UNSET and params.code != plan.code:
        code = validate_new_code(params.code)
        if (owner := await _code_owner(session, merchant_id, code)) is not None:
            raise code_taken("plan", code, owner.id, archived=owner.archived_at is not None)
        plan.code = code
    for name in ("name", "description", "portal_visible"):
        value = getattr(params, name)
        if value is not msgspec.UNSET:
            setattr(plan, name, value)
    if params.metadata is not msgspec.UNSET:
        plan.metadata_ = merge_metadata(plan.metadata_, params.metadata)
    if changed:
        plan.currency = new_pricing.currency
        plan.interval = new_pricing.interval
        plan.interval_count = new_pricing.interval_count
        plan.amount_decimal = new_pricing.amount
        plan.trial_period_days = new_pricing.trial_period_days
        plan.charges = new_pricing.charges
        plan.minimum_commitment = new_pricing.minimum_commitment
    after = render_plan(plan)
    if previous := previous_attributes(before, after):
        plan.updated_at = CATALOG_CLOCK.now()
        await flush_unique(session, _UNIQUE_CODE, lambda: code_taken("plan", plan.code, None))
        record_event(
            session,
            merchant_id=merchant_id,
            event_type="plan.updated",
            obj=after,
            clock=CATALOG_CLOCK,
            previous_attributes=previous,
        )
    return plan


async def set_plan_archived(session: AsyncSession, merchant_id: str, plan_id: str, archived: bool) -> Plan:
    """Archive a plan (existing subscriptions go on; new ones are refused) or make it subscribable again."""
    plan = await get_plan(session, merchant_id, plan_id, for_update=True)
    await set_archived(session, plan, archived, kind="plan", render=render_plan)
    return plan


async def mark_plan_in_use(session: AsyncSession, plan: Plan) -> Plan:
    """Freeze the plan's pricing, and its meters' aggregation: a subscription is being created on it.

    Call it in the transaction that first subscribes to the plan, *before* reading the plan's pricing: it
    locks the plan row and reloads it, so a concurrent `update_plan` either committed before (and the
    subscription sees the new pricing) or waits and then answers 409. Marking a plan twice is harmless.
    """
    locked = await session.scalar(
        select(Plan)
        .where(Plan.id == plan.id, Plan.merchant_id == plan.merchant_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if locked is None:
        raise not_found("plan", plan.id, "plan")
    if locked.in_use_since is None:
        locked.in_use_since = CATALOG_CLOCK.now()
        await session.flush()
        record_event(
            session,
            merchant_id=locked.merchant_id,
            event_type="plan.updated",
            obj=render_plan(locked),
            clock=CATALOG_CLOCK,
            previous_attributes={"in_use": False},
        )
    await mark_meters_in_use(session, locked.merchant_id, [charge["meter"] for charge in locked.charges])
    return locked


def ensure_plan_subscribable(plan: Plan) -> None:
    """Raise 409 if `plan` takes no new subscriptions (it is archived); the subscriptions feature calls it."""
    if plan.archived_at is not None:
        raise Conflict(
            f"Plan {plan.id} ({plan.code!r}) is archived, so it takes no new subscriptions. Subscribe to an "
            f"active plan, or unarchive this one with POST /v1/plans/{plan.id}/unarchive.",
            code="plan_archived",
            param="plan",
        )


# --- price preview ---------------------------------------------------------------------------------------


def parse_usage_quantity(text: str, *, param: str) -> Decimal:
    """A usage quantity from a query string: plain digits with an optional fraction ('1200', '3.5')."""
    if not _PLAIN_QUANTITY.fullmatch(text):
        raise InvalidRequest(
            f"{param} must be a non-negative number written with digits and an optional decimal point, "
            f"such as 1200 or 3.5; got {text[:60]!r}.",
            param=param,
        )
    return Decimal(text)


def _preview_line(
    result: pricing.PricingResult, *, type_: str, description: str, meter: str | None
) -> schemas.PricePreviewLine:
    return schemas.PricePreviewLine(
        type="subscription" if type_ == "subscription" else "usage",
        billed="in_advance" if type_ == "subscription" else "in_arrears",
        description=description,
        meter=meter,
        model=result.model,
        quantity=decimal_text(result.quantity),
        free_units=decimal_text(result.free_units),
        billable_quantity=decimal_text(result.billable_quantity),
        packages=result.packages,
        tiers=[
            schemas.PricePreviewTier(
                tier_index=row.tier_index,
                from_units=row.from_units,
                to_units=row.to_units,
                quantity=decimal_text(row.quantity),
                unit_amount_decimal=decimal_text(row.unit_amount),
                flat_amount=row.flat_amount,
                amount_decimal=decimal_text(row.subtotal),
            )
            for row in result.tiers
        ],
        amount_decimal=decimal_text(result.exact_amount),
        amount=result.amount,
    )


def preview_price(plan: Plan, quantity: int, usage: Mapping[str, Decimal]) -> schemas.PricePreview:
    """Price one period of `plan`: `quantity` units in advance, and `usage` (per meter code) in arrears.

    Every charge of the plan gets a line (no usage given: zero). Each line is priced by
    `plans.pricing.price_quantity` and rounded once; `subtotal` is their sum, before discounts and taxes.
    """
    units = pricing.validate_quantity(quantity, param="quantity")
    charged = {charge["meter"]: charge for charge in plan.charges}
    for code, value in usage.items():
        if code not in charged:
            known = ", ".join(repr(c) for c in charged) or "none"
            raise InvalidRequest(
                f"usage[{code[:100]}]: plan {plan.id} has no charge for meter {code[:100]!r} (its metered "
                f"charges: {known}). Remove it, or check the meter code.",
                param=f"usage[{code[:100]}]",
            )
        pricing.validate_quantity(value, param=f"usage[{code}]")
    lines = [
        _preview_line(
            pricing.price_quantity(advance_charge(plan), units),
            type_="subscription",
            description=plan.name,
            meter=None,
        )
    ]
    for code, stored in charged.items():
        result = pricing.price_quantity(pricing_charge(stored), usage.get(code, Decimal(0)))
        lines.append(_preview_line(result, type_="usage", description=f"{plan.name} · {code}", meter=code))
    return schemas.PricePreview(
        plan=plan.id,
        currency=plan.currency,
        quantity=quantity,
        lines=lines,
        subtotal=sum(line.amount for line in lines),
    )
