"""Pricing a quantity under a charge: per_unit, graduated, volume and package models (SPEC §4 plans.charges).

A `Charge` says how units are priced; `price_quantity` turns a quantity into a `PricingResult` whose `amount`
is rounded once, half-up, from the exact sum of the breakdown rows (`plans.money.round_minor`), and whose
`tiers` rows show how the number was reached, so an invoice line can print it.

Rules, where the models of Stripe and Lago leave room:

* Quantities are non-negative ``int`` or ``Decimal`` (a metered sum may be fractional, e.g. GB-hours).
* `free_units` are subtracted first: ``billable = max(0, quantity - free_units)``; the model prices
  `billable`.
* Tiers are given by their inclusive upper bound `up_to` only; tier *i* covers the quantities above the
  previous tier's `up_to` (0 for the first) up to and including its own, and the last tier has ``up_to=None``
  (no limit). Gaps and overlaps cannot be expressed, so validation only has to check that the bounds ascend
  strictly.
* graduated: each tier prices the units that fall inside it and adds its `flat_amount` once when the quantity
  reaches into it. volume: the one tier containing the whole quantity prices every unit, plus its
  `flat_amount`.
* A billable quantity of zero costs nothing under every model, flat amounts included (metered charges bill in
  arrears, and no usage should bring no charge; Lago's graduated and volume models do the same).
* package: ``ceil(billable / package_size)`` whole packages at the charge's unit price, which is the price
  *per package* (Stripe's ``transform_quantity`` with ``round=up``; Lago's package model).
* A unit price is either `unit_amount` (int minor units) or `unit_amount_decimal` (Decimal, up to 12 decimal
  places of a minor unit), never both.
* percentage (Lago's model): each usage event carries a transaction amount (minor units); a paid transaction
  costs ``rate`` percent of its amount plus ``fixed_amount``, held between ``per_transaction_min_amount`` and
  ``per_transaction_max_amount``. The first transactions in time order are free while both free allowances
  last (``free_units_per_events`` transactions, ``free_units_per_total_aggregation`` of amount; whichever ends
  first, as Lago's docs put it): a free transaction costs nothing, not even the minimum; the one that crosses the
  amount allowance pays the rate on its part above it, plus the fixed fee. A negative transaction amount (a
  correction) counts as an amount of zero. `price_transactions` prices the list of amounts; `price_quantity`
  prices a quantity as one transaction (the plan price preview, which is given totals only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from enum import StrEnum
from fractions import Fraction

from plans.errors import CatalogError, join_path, parse_choice
from plans.money import (
    EXACT_CONTEXT,
    round_minor,
    validate_amount,
    validate_percent,
    validate_unit_amount_decimal,
)

#: A quantity of units: seats, API calls, gigabytes. Never a float.
Quantity = Decimal | int

#: Quantities may carry at most this many significant digits, between 10^-38 and 10^38; every product and sum
#: of bounded quantities and prices then fits `plans.money.EXACT_CONTEXT` without rounding.
MAX_QUANTITY_DIGITS = 38


class PricingModel(StrEnum):
    """How a charge turns a quantity into an amount."""

    PER_UNIT = "per_unit"
    GRADUATED = "graduated"
    VOLUME = "volume"
    PACKAGE = "package"
    PERCENTAGE = "percentage"


#: The fields only a percentage charge takes.
PERCENTAGE_FIELDS = (
    "rate",
    "fixed_amount",
    "free_units_per_events",
    "free_units_per_total_aggregation",
    "per_transaction_min_amount",
    "per_transaction_max_amount",
)


@dataclass(frozen=True, slots=True)
class Tier:
    """One price tier: units above the previous tier's `up_to`, up to and including this one (None: no limit).

    At least one of `unit_amount`, `unit_amount_decimal` and `flat_amount` is set; the unsaid ones count as
    zero.
    """

    up_to: int | None
    unit_amount: int | None = None
    unit_amount_decimal: Decimal | None = None
    flat_amount: int | None = None

    @property
    def unit_price(self) -> Decimal:
        """The exact price of one unit in this tier, in minor units (zero for a flat-only tier)."""
        return _unit_price(self.unit_amount, self.unit_amount_decimal)


@dataclass(frozen=True, slots=True)
class Charge:
    """A pricing rule for a quantity: the model plus the fields that model needs (see `validate_charge`)."""

    model: PricingModel
    unit_amount: int | None = None
    unit_amount_decimal: Decimal | None = None
    tiers: tuple[Tier, ...] = ()
    package_size: int | None = None
    free_units: Quantity = 0
    # percentage only (see the module's notes); amounts in minor units, `rate` in percent.
    rate: Decimal | None = None
    fixed_amount: int | None = None
    free_units_per_events: int | None = None
    free_units_per_total_aggregation: int | None = None
    per_transaction_min_amount: int | None = None
    per_transaction_max_amount: int | None = None

    @property
    def unit_price(self) -> Decimal:
        """The exact price of one unit (per_unit) or one package (package), in minor units."""
        return _unit_price(self.unit_amount, self.unit_amount_decimal)


@dataclass(frozen=True, slots=True)
class PricedTier:
    """One row of a price breakdown: ``subtotal == quantity * unit_amount + flat_amount``, exactly.

    `tier_index` is the position in `Charge.tiers` (None for per_unit and package). The row covers quantities
    above `from_units` up to and including `to_units` (None: no limit). For the package model `quantity`
    counts packages and `unit_amount` is the price of one package.
    """

    tier_index: int | None
    from_units: int
    to_units: int | None
    quantity: Decimal
    unit_amount: Decimal
    flat_amount: int
    subtotal: Decimal


@dataclass(frozen=True, slots=True)
class PricingResult:
    """The price of a quantity under a charge: `amount` (rounded once, half-up) and how it was reached."""

    model: PricingModel
    quantity: Decimal
    free_units: Decimal
    billable_quantity: Decimal
    packages: int | None
    tiers: tuple[PricedTier, ...]
    exact_amount: Decimal
    amount: int
    transactions: TransactionCounts | None = None


@dataclass(frozen=True, slots=True)
class TransactionCounts:
    """How a percentage charge's transactions were priced: how many, how many free, and what the per-transaction
    minimum and maximum moved (``adjustment``: positive when minimums lifted fees, negative when maximums cut
    them). For a percentage result, `PricingResult.quantity` is the total amount, `free_units` the amount not
    subject to the rate, and its rows are the rate row, the fixed-fee row and the min/max row."""

    count: int
    free: int
    paid: int
    adjustment: Decimal


def validate_quantity(value: object, *, param: str = "quantity") -> Decimal:
    """Return a quantity as a Decimal if it is a finite, non-negative int or Decimal; else raise CatalogError.

    Floats and bools are refused; so are quantities with more than 38 significant digits or beyond 10^±38.
    """
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise CatalogError(
            f"{param} must be a non-negative integer or decimal number (not a float); got {value!r}",
            param=param,
        )
    quantity = Decimal(value)
    if not quantity.is_finite():
        raise CatalogError(f"{param} must be a finite number; got {value!r}", param=param)
    if quantity < 0:
        raise CatalogError(f"{param} must not be negative; got {value}", param=param)
    _sign, digits, exponent = quantity.as_tuple()
    assert isinstance(exponent, int)  # finite, checked above
    if quantity and (
        len(digits) > MAX_QUANTITY_DIGITS
        or exponent < -MAX_QUANTITY_DIGITS
        or quantity.adjusted() >= MAX_QUANTITY_DIGITS
    ):
        raise CatalogError(
            f"{param} must have at most {MAX_QUANTITY_DIGITS} significant digits and lie between "
            f"10^-{MAX_QUANTITY_DIGITS} and 10^{MAX_QUANTITY_DIGITS}; got {value}",
            param=param,
        )
    return quantity


def validate_tiers(tiers: Sequence[Tier], *, param: str = "tiers") -> tuple[Tier, ...]:
    """Check a tier list and return it as a tuple; raise `CatalogError` naming the first offending tier.

    Rules: at least one tier; each `up_to` a positive int, strictly greater than the previous one (so no
    duplicates, and no gaps by construction); only the last tier, and always the last tier, has
    ``up_to=None``; amounts non-negative; each tier sets a unit price or a flat amount, and at most one kind
    of unit price.
    """
    if not tiers:
        raise CatalogError(
            f"{param} must contain at least one tier; the last one with up_to null (no limit)",
            param=param,
            code="parameter_missing",
        )
    last = len(tiers) - 1
    previous_up_to: int | None = None
    for index, tier in enumerate(tiers):
        here = f"{param}[{index}]"
        if not isinstance(tier, Tier):
            raise CatalogError(f"{here} must be a tier object; got {tier!r}", param=here)
        up_to_param = f"{here}.up_to"
        if tier.up_to is None:
            if index != last:
                raise CatalogError(
                    f"{up_to_param} is null (no limit), so it must be the last tier; give it a bound or move "
                    "it to the end",
                    param=up_to_param,
                )
        else:
            if isinstance(tier.up_to, bool) or not isinstance(tier.up_to, int):
                raise CatalogError(
                    f"{up_to_param} must be an integer or null; got {tier.up_to!r}", param=up_to_param
                )
            if index == last:
                raise CatalogError(
                    f"{up_to_param} must be null (no limit) on the last tier, so that every quantity has a "
                    f"price; got {tier.up_to}",
                    param=up_to_param,
                )
            if previous_up_to is None and tier.up_to < 1:
                raise CatalogError(f"{up_to_param} must be at least 1; got {tier.up_to}", param=up_to_param)
            if previous_up_to is not None and tier.up_to <= previous_up_to:
                raise CatalogError(
                    f"{up_to_param} must be greater than {param}[{index - 1}].up_to ({previous_up_to}); "
                    f"got {tier.up_to}",
                    param=up_to_param,
                )
            previous_up_to = tier.up_to
        _validate_unit_price(tier.unit_amount, tier.unit_amount_decimal, param=here, required=False)
        if tier.flat_amount is not None:
            validate_amount(tier.flat_amount, param=f"{here}.flat_amount")
        if tier.unit_amount is None and tier.unit_amount_decimal is None and tier.flat_amount is None:
            raise CatalogError(
                f"{here} needs unit_amount, unit_amount_decimal or flat_amount",
                param=f"{here}.unit_amount",
                code="parameter_missing",
            )
    return tuple(tiers)


def validate_charge(charge: Charge, *, param: str = "") -> Charge:
    """Check that `charge` has what its model needs and nothing else; return it or raise `CatalogError`.

    per_unit: a unit price. package: a unit price (per package) and ``package_size >= 1``. graduated and
    volume: valid `tiers` (see `validate_tiers`) and no charge-level unit price. `free_units` is a
    non-negative quantity for every model. Error parameters are paths under `param`, e.g.
    ``charges[0].tiers[2].up_to``.
    """
    model = parse_choice(PricingModel, charge.model, param=join_path(param, "model"))
    validate_quantity(charge.free_units, param=join_path(param, "free_units"))
    if model is PricingModel.PERCENTAGE:
        return _validate_percentage(charge, param=param)
    for name in PERCENTAGE_FIELDS:
        if getattr(charge, name) is not None:
            raise CatalogError(
                f"{join_path(param, name)} is only used by percentage charges, not {model}",
                param=join_path(param, name),
                code="parameter_not_allowed",
            )
    tiered = model in (PricingModel.GRADUATED, PricingModel.VOLUME)
    if tiered:
        for name in ("unit_amount", "unit_amount_decimal"):
            if getattr(charge, name) is not None:
                raise CatalogError(
                    f"{join_path(param, name)} is not used by a {model} charge; put unit prices on its tiers",
                    param=join_path(param, name),
                    code="parameter_not_allowed",
                )
        validate_tiers(charge.tiers, param=join_path(param, "tiers"))
    else:
        if charge.tiers:
            raise CatalogError(
                f"{join_path(param, 'tiers')} is only used by graduated and volume charges, not {model}",
                param=join_path(param, "tiers"),
                code="parameter_not_allowed",
            )
        _validate_unit_price(charge.unit_amount, charge.unit_amount_decimal, param=param, required=True)
    package_size_param = join_path(param, "package_size")
    if model is PricingModel.PACKAGE:
        if charge.package_size is None:
            raise CatalogError(
                f"{package_size_param} is required for a package charge: the number of units sold together",
                param=package_size_param,
                code="parameter_missing",
            )
        if isinstance(charge.package_size, bool) or not isinstance(charge.package_size, int):
            raise CatalogError(
                f"{package_size_param} must be a whole number of units; got {charge.package_size!r}",
                param=package_size_param,
            )
        if charge.package_size < 1:
            raise CatalogError(
                f"{package_size_param} must be at least 1; got {charge.package_size}",
                param=package_size_param,
            )
    elif charge.package_size is not None:
        raise CatalogError(
            f"{package_size_param} is only used by package charges, not {model}",
            param=package_size_param,
            code="parameter_not_allowed",
        )
    return charge


def price_quantity(charge: Charge, quantity: Quantity) -> PricingResult:
    """Price `quantity` under `charge`: exact breakdown rows, and `amount` rounded once, half-up, from them.

    The charge is validated first (`validate_charge`), the quantity too (`validate_quantity`); both raise
    `CatalogError`.
    """
    validate_charge(charge)
    model = PricingModel(charge.model)
    units = validate_quantity(quantity)
    if model is PricingModel.PERCENTAGE:
        return price_transactions(charge, [units] if units else [])
    free_units = Decimal(charge.free_units)
    with localcontext(EXACT_CONTEXT):
        billable = max(units - free_units, Decimal(0))
        packages: int | None = None
        rows: list[PricedTier]
        if billable == 0:
            rows = []
            if model is PricingModel.PACKAGE:
                packages = 0
        elif model is PricingModel.PER_UNIT:
            rows = [_row(None, 0, None, billable, charge.unit_price, 0)]
        elif model is PricingModel.PACKAGE:
            assert charge.package_size is not None  # validated
            packages = _ceil(Fraction(billable) / charge.package_size)
            rows = [_row(None, 0, None, Decimal(packages), charge.unit_price, 0)]
        elif model is PricingModel.GRADUATED:
            rows = _graduated_rows(charge.tiers, billable)
        else:
            rows = _volume_rows(charge.tiers, billable)
        exact_amount = sum((row.subtotal for row in rows), Decimal(0))
    return PricingResult(
        model=model,
        quantity=units,
        free_units=free_units,
        billable_quantity=billable,
        packages=packages,
        tiers=tuple(rows),
        exact_amount=exact_amount,
        amount=round_minor(exact_amount),
    )


def _validate_percentage(charge: Charge, *, param: str) -> Charge:
    for name in ("unit_amount", "unit_amount_decimal", "package_size"):
        if getattr(charge, name) is not None:
            raise CatalogError(
                f"{join_path(param, name)} is not used by a percentage charge; set rate (and fixed_amount)",
                param=join_path(param, name),
                code="parameter_not_allowed",
            )
    if charge.tiers:
        raise CatalogError(
            f"{join_path(param, 'tiers')} is only used by graduated and volume charges, not percentage",
            param=join_path(param, "tiers"),
            code="parameter_not_allowed",
        )
    if charge.free_units:
        raise CatalogError(
            f"{join_path(param, 'free_units')} is not used by a percentage charge; use "
            "free_units_per_events (free transactions) or free_units_per_total_aggregation (free amount)",
            param=join_path(param, "free_units"),
            code="parameter_not_allowed",
        )
    rate_param = join_path(param, "rate")
    rate = charge.rate
    if rate is None:
        raise CatalogError(
            f"{rate_param} is required for a percentage charge: the percent of each transaction, e.g. '2.9'",
            param=rate_param,
            code="parameter_missing",
        )
    validate_percent(rate, param=rate_param, example="'2.9'")
    for name in (
        "fixed_amount",
        "free_units_per_events",
        "free_units_per_total_aggregation",
        "per_transaction_min_amount",
        "per_transaction_max_amount",
    ):
        value = getattr(charge, name)
        if value is not None:
            validate_amount(value, param=join_path(param, name))
    low, high = charge.per_transaction_min_amount, charge.per_transaction_max_amount
    if low is not None and high is not None and low > high:
        raise CatalogError(
            f"{join_path(param, 'per_transaction_min_amount')} ({low}) must not exceed "
            f"{join_path(param, 'per_transaction_max_amount')} ({high})",
            param=join_path(param, "per_transaction_min_amount"),
            code="parameter_conflict",
        )
    return charge


def price_transactions(charge: Charge, amounts: Sequence[Quantity]) -> PricingResult:
    """Price a percentage charge from its transactions' amounts, in time order (see the module's notes).

    Each paid transaction's fee is exact (``amount × rate / 100 + fixed_amount``, then held between the
    minimum and the maximum); the total is rounded once, half-up. Rows: the rate on the amount charged, the
    fixed fees (one per paid transaction), and what the per-transaction min/max moved, when anything.
    """
    validate_charge(charge)
    if PricingModel(charge.model) is not PricingModel.PERCENTAGE:
        raise CatalogError(
            f"price_transactions prices percentage charges only, not {charge.model}", param="model"
        )
    assert charge.rate is not None  # validated
    values = [_transaction_amount(amount, param=f"amounts[{index}]") for index, amount in enumerate(amounts)]
    with localcontext(EXACT_CONTEXT):
        share = charge.rate / 100
        fixed = Decimal(charge.fixed_amount or 0)
        events_left = charge.free_units_per_events
        amount_left = (
            None
            if charge.free_units_per_total_aggregation is None
            else Decimal(charge.free_units_per_total_aggregation)
        )
        has_allowance = events_left is not None or amount_left is not None
        charged_total = Decimal(0)
        adjustment = Decimal(0)
        free = 0
        for value in values:
            charged = value
            if (
                has_allowance
                and (events_left is None or events_left > 0)
                and (amount_left is None or amount_left > 0)
            ):
                if events_left is not None:
                    events_left -= 1
                if amount_left is None or value <= amount_left:
                    if amount_left is not None:
                        amount_left -= value
                    free += 1
                    continue
                charged = value - amount_left
                amount_left = Decimal(0)
            fee = charged * share + fixed
            held = fee
            if charge.per_transaction_min_amount is not None:
                held = max(held, Decimal(charge.per_transaction_min_amount))
            if charge.per_transaction_max_amount is not None:
                held = min(held, Decimal(charge.per_transaction_max_amount))
            adjustment += held - fee
            charged_total += charged
        paid = len(values) - free
        total = sum(values, Decimal(0))
        rows = [_row(None, 0, None, charged_total, share, 0)] if paid else []
        if paid and fixed:
            rows.append(_row(None, 0, None, Decimal(paid), fixed, 0))
        if adjustment:
            rows.append(_row(None, 0, None, Decimal(1), adjustment, 0))
        exact_amount = sum((row.subtotal for row in rows), Decimal(0))
        free_amount = total - charged_total
    return PricingResult(
        model=PricingModel.PERCENTAGE,
        quantity=total,
        free_units=free_amount,
        billable_quantity=charged_total,
        packages=None,
        tiers=tuple(rows),
        exact_amount=exact_amount,
        amount=round_minor(exact_amount),
        transactions=TransactionCounts(count=len(values), free=free, paid=paid, adjustment=adjustment),
    )


def _transaction_amount(amount: Quantity, *, param: str) -> Decimal:
    """A transaction's amount; a negative one (a correction) counts as zero: a fee is never paid back."""
    if isinstance(amount, int | Decimal) and not isinstance(amount, bool) and amount < 0:
        return Decimal(0)
    return validate_quantity(amount, param=param)


def price_usage(charge: Charge, quantity: Quantity, transactions: Sequence[Quantity] | None) -> PricingResult:
    """Price a period's usage: a percentage charge from its `transactions` (required), any other from
    `quantity`."""
    if PricingModel(charge.model) is PricingModel.PERCENTAGE:
        if transactions is None:
            raise ValueError("a percentage charge is priced from its transactions; none were read")
        return price_transactions(charge, transactions)
    return price_quantity(charge, quantity)


def _graduated_rows(tiers: Sequence[Tier], billable: Decimal) -> list[PricedTier]:
    rows: list[PricedTier] = []
    lower = 0
    for index, tier in enumerate(tiers):
        if billable <= lower:
            break
        upper = billable if tier.up_to is None else min(billable, Decimal(tier.up_to))
        rows.append(_row(index, lower, tier.up_to, upper - lower, tier.unit_price, tier.flat_amount or 0))
        if tier.up_to is None:
            break
        lower = tier.up_to
    return rows


def _volume_rows(tiers: Sequence[Tier], billable: Decimal) -> list[PricedTier]:
    lower = 0
    for index, tier in enumerate(tiers):
        if tier.up_to is None or billable <= tier.up_to:
            return [_row(index, lower, tier.up_to, billable, tier.unit_price, tier.flat_amount or 0)]
        lower = tier.up_to
    raise AssertionError("validated tiers end with an unbounded tier")


def _row(
    index: int | None, lower: int, upper: int | None, quantity: Decimal, unit_price: Decimal, flat: int
) -> PricedTier:
    return PricedTier(
        tier_index=index,
        from_units=lower,
        to_units=upper,
        quantity=quantity,
        unit_amount=unit_price,
        flat_amount=flat,
        subtotal=quantity * unit_price + flat,
    )


def _ceil(value: Fraction) -> int:
    return -((-value.numerator) // value.denominator)


def _unit_price(unit_amount: int | None, unit_amount_decimal: Decimal | None) -> Decimal:
    if unit_amount_decimal is not None:
        return unit_amount_decimal
    return Decimal(unit_amount or 0)


def _validate_unit_price(
    unit_amount: int | None, unit_amount_decimal: Decimal | None, *, param: str, required: bool
) -> None:
    amount_param = join_path(param, "unit_amount")
    decimal_param = join_path(param, "unit_amount_decimal")
    if unit_amount is not None and unit_amount_decimal is not None:
        raise CatalogError(
            f"set either {amount_param} or {decimal_param}, not both",
            param=decimal_param,
            code="parameter_conflict",
        )
    if unit_amount is not None:
        validate_amount(unit_amount, param=amount_param)
    elif unit_amount_decimal is not None:
        validate_unit_amount_decimal(unit_amount_decimal, param=decimal_param)
    elif required:
        raise CatalogError(
            f"{amount_param} or {decimal_param} is required: the price of one unit in minor units",
            param=amount_param,
            code="parameter_missing",
        )
