"""Effective entitlements: what a customer may use now, from the grants of the plans of its live subscriptions.

A feature has one type, and every plan grants it a value of that type:
- `boolean`: on or off; on wins (one plan that grants it is enough);
- `limit`: a whole number of units (seats, projects); the highest limit wins;
- `enum`: one of the feature's options, listed from the lowest to the highest tier; the highest wins.

Subscriptions do not add up (two plans granting 10 seats give 10, not 20): like Lago's and Stripe's
entitlements, a grant says what a plan allows, not a quantity bought. No I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from plans.errors import CatalogError

#: The largest limit a plan may grant: beyond any real quota, and exact in JSON doubles.
MAX_LIMIT = 2**53 - 1
#: The most options an enum feature may have.
MAX_OPTIONS = 20

Value = bool | int | str


class FeatureType(StrEnum):
    """A feature's kind: boolean (on or off), limit (a number; no number is unlimited) or enum (one of ordered
    options, lowest first)."""

    BOOLEAN = "boolean"
    LIMIT = "limit"
    ENUM = "enum"


@dataclass(frozen=True)
class Grant:
    """One plan's value for one feature. `options` are the feature's enum options, lowest first."""

    feature: str
    type: FeatureType
    value: Value
    plan: str
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class Entitlement:
    """A feature's effective value, and the plans that grant that value (sorted)."""

    feature: str
    type: FeatureType
    value: Value
    plans: tuple[str, ...]


def validate_options(
    feature_type: FeatureType, options: Iterable[str], *, param: str = "options"
) -> tuple[str, ...]:
    """An enum feature needs 1 to MAX_OPTIONS distinct options; the other types take none."""
    listed = tuple(options)
    if feature_type is not FeatureType.ENUM:
        if listed:
            raise CatalogError(
                f"{param} are only for enum features; a {feature_type} feature takes none (remove {param})",
                param=param,
                code="parameter_not_allowed",
            )
        return listed
    if not 1 <= len(listed) <= MAX_OPTIONS:
        raise CatalogError(
            f"an enum feature needs 1 to {MAX_OPTIONS} options, listed from the lowest tier to the highest, "
            f"e.g. ['basic', 'priority', 'dedicated']; got {len(listed)}",
            param=param,
        )
    for index, option in enumerate(listed):
        if not option or len(option) > 100:
            raise CatalogError(f"{param}[{index}] must be 1 to 100 characters", param=f"{param}[{index}]")
        if option in listed[:index]:
            raise CatalogError(
                f"{param}[{index}] {option!r} is listed twice; each option appears once",
                param=f"{param}[{index}]",
                code="parameter_duplicate",
            )
    return listed


def validate_value(
    feature: str, feature_type: FeatureType, options: tuple[str, ...], value: Value, *, param: str = "value"
) -> Value:
    """`value` if it fits the feature's type: a boolean, a whole number 0..MAX_LIMIT, or one of the options."""
    if feature_type is FeatureType.BOOLEAN:
        if not isinstance(value, bool):
            raise CatalogError(
                f"feature {feature!r} is a boolean feature: value must be true or false; got {value!r}",
                param=param,
            )
        return value
    if feature_type is FeatureType.LIMIT:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_LIMIT:
            raise CatalogError(
                f"feature {feature!r} is a limit feature: value must be a whole number from 0 to {MAX_LIMIT}; "
                f"got {value!r}",
                param=param,
            )
        return value
    if not isinstance(value, str) or value not in options:
        raise CatalogError(
            f"feature {feature!r} is an enum feature: value must be one of {', '.join(map(repr, options))}; "
            f"got {value!r}",
            param=param,
        )
    return value


def _rank(grant: Grant) -> int:
    """How much a grant allows, comparable between grants of one feature."""
    if grant.type is FeatureType.ENUM:
        return grant.options.index(str(grant.value))
    return int(grant.value)


def effective_entitlements(grants: Iterable[Grant]) -> dict[str, Entitlement]:
    """Per feature code, the highest value granted and every plan granting exactly that value.

    The result does not depend on the grants' order, nor on a grant repeated; adding a grant never lowers a value.
    """
    best: dict[str, list[Grant]] = {}
    for grant in grants:
        current = best.get(grant.feature)
        if current is None or _rank(grant) > _rank(current[0]):
            best[grant.feature] = [grant]
        elif _rank(grant) == _rank(current[0]):
            current.append(grant)
    return {
        feature: Entitlement(
            feature=feature,
            type=top[0].type,
            value=top[0].value,
            plans=tuple(sorted({grant.plan for grant in top})),
        )
        for feature, top in sorted(best.items())
    }
