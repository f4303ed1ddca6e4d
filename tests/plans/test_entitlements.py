"""Effective entitlements: the highest value granted wins, whatever the order or repetition of the grants."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plans.entitlements import (
    MAX_LIMIT,
    Entitlement,
    FeatureType,
    Grant,
    effective_entitlements,
    validate_options,
    validate_value,
)
from plans.errors import CatalogError

SUPPORT = ("email", "priority", "dedicated")
PLANS = ("plan_a", "plan_b", "plan_c")


def _grant(feature: str, plan: str, draw: st.DrawFn) -> Grant:
    # The feature's code fixes its type, as a merchant's feature does.
    if feature == "sso":
        return Grant("sso", FeatureType.BOOLEAN, draw(st.booleans()), plan)
    if feature == "seats":
        return Grant("seats", FeatureType.LIMIT, draw(st.integers(0, MAX_LIMIT)), plan)
    return Grant("support", FeatureType.ENUM, draw(st.sampled_from(SUPPORT)), plan, SUPPORT)


@st.composite
def grants(draw: st.DrawFn) -> list[Grant]:
    size = draw(st.integers(0, 12))
    return [
        _grant(draw(st.sampled_from(("sso", "seats", "support"))), draw(st.sampled_from(PLANS)), draw)
        for _ in range(size)
    ]


def _rank(grant: Grant | Entitlement) -> int:
    return SUPPORT.index(str(grant.value)) if grant.type is FeatureType.ENUM else int(grant.value)


@given(grants(), st.randoms())
def test_the_order_of_the_grants_does_not_matter(given_grants: list[Grant], rnd: object) -> None:
    shuffled = list(given_grants)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert effective_entitlements(shuffled) == effective_entitlements(given_grants)


@given(grants())
def test_a_repeated_grant_changes_nothing(given_grants: list[Grant]) -> None:
    assert effective_entitlements(given_grants + given_grants) == effective_entitlements(given_grants)


@given(grants(), grants())
def test_adding_grants_never_lowers_a_value_nor_removes_a_feature(
    first: list[Grant], more: list[Grant]
) -> None:
    before = effective_entitlements(first)
    after = effective_entitlements(first + more)
    for feature, entitlement in before.items():
        assert _rank(after[feature]) >= _rank(entitlement)


@given(grants())
def test_each_value_is_the_highest_granted_and_names_exactly_the_plans_granting_it(
    given_grants: list[Grant],
) -> None:
    result = effective_entitlements(given_grants)
    assert set(result) == {grant.feature for grant in given_grants}
    for feature, entitlement in result.items():
        of_feature = [grant for grant in given_grants if grant.feature == feature]
        top = max(_rank(grant) for grant in of_feature)
        assert _rank(entitlement) == top
        assert entitlement.plans == tuple(sorted({g.plan for g in of_feature if _rank(g) == top}))


def test_two_plans_do_not_add_up_and_true_beats_false() -> None:
    result = effective_entitlements(
        [
            Grant("seats", FeatureType.LIMIT, 10, "plan_a"),
            Grant("seats", FeatureType.LIMIT, 25, "plan_b"),
            Grant("sso", FeatureType.BOOLEAN, False, "plan_a"),
            Grant("sso", FeatureType.BOOLEAN, True, "plan_b"),
            Grant("support", FeatureType.ENUM, "priority", "plan_a", SUPPORT),
            Grant("support", FeatureType.ENUM, "email", "plan_b", SUPPORT),
        ]
    )
    assert result == {
        "seats": Entitlement("seats", FeatureType.LIMIT, 25, ("plan_b",)),
        "sso": Entitlement("sso", FeatureType.BOOLEAN, True, ("plan_b",)),
        "support": Entitlement("support", FeatureType.ENUM, "priority", ("plan_a",)),
    }
    assert effective_entitlements([]) == {}


@pytest.mark.parametrize(
    ("feature_type", "options", "value", "param_message"),
    [
        (FeatureType.BOOLEAN, (), 1, "true or false"),
        (FeatureType.LIMIT, (), True, "whole number"),
        (FeatureType.LIMIT, (), -1, "whole number"),
        (FeatureType.LIMIT, (), MAX_LIMIT + 1, "whole number"),
        (FeatureType.ENUM, SUPPORT, "gold", "one of 'email', 'priority', 'dedicated'"),
        (FeatureType.ENUM, SUPPORT, 2, "one of"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_with_what_fits(
    feature_type: FeatureType, options: tuple[str, ...], value: bool | int | str, param_message: str
) -> None:
    with pytest.raises(CatalogError, match=param_message) as error:
        validate_value("f", feature_type, options, value)
    assert error.value.param == "value"


def test_options_belong_to_enum_features_only_and_are_distinct() -> None:
    assert validate_options(FeatureType.ENUM, ["a", "b"]) == ("a", "b")
    with pytest.raises(CatalogError, match="only for enum"):
        validate_options(FeatureType.LIMIT, ["a"])
    with pytest.raises(CatalogError, match="listed twice") as error:
        validate_options(FeatureType.ENUM, ["a", "b", "a"])
    assert error.value.param == "options[2]"
    with pytest.raises(CatalogError, match="1 to 20 options"):
        validate_options(FeatureType.ENUM, [])
