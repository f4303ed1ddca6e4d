"""The pure risk rules (billing.risk.rules): worked examples, then properties over any rules and attempt."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from billing.risk.rules import OUTCOMES, AmountLimit, Attempt, RiskRules, decide

RULES = RiskRules(
    per_fingerprint_per_hour=5,
    per_customer_per_hour=10,
    per_ip_per_hour=20,
    amount_limits={"USD": AmountLimit(review=50_000, block=200_000)},
    blocked_fingerprints=frozenset({"fp_bad"}),
    blocked_emails=frozenset({"Fraud@Example.com"}),
    blocked_ips=frozenset({"203.0.113.9"}),
    blocked_countries=frozenset({"kp"}),
)
CLEAN = Attempt(
    customer="cus_1",
    amount=1999,
    currency="USD",
    fingerprint="fp_ok",
    email="a@example.com",
    ip="198.51.100.1",
    country="US",
)


def test_a_clean_attempt_is_allowed_with_no_reasons() -> None:
    assert decide(RULES, CLEAN) == decide(RULES, CLEAN)
    decision = decide(RULES, CLEAN)
    assert (decision.outcome, decision.score, decision.reasons, decision.deciding_rule) == (
        "allow",
        0,
        (),
        None,
    )


def test_each_blocklist_blocks_and_is_named() -> None:
    cases = {
        "blocklist_fingerprint": replace(CLEAN, fingerprint="fp_bad"),
        "blocklist_email": replace(CLEAN, email="fraud@EXAMPLE.com"),
        "blocklist_ip": replace(CLEAN, ip="203.0.113.9"),
        "blocklist_country": replace(CLEAN, country="KP"),
    }
    for rule, attempt in cases.items():
        decision = decide(RULES, attempt)
        assert (decision.outcome, decision.score, decision.deciding_rule) == ("block", 100, rule)
        assert [r.rule for r in decision.reasons] == [rule]


def test_velocity_counts_this_attempt_blocks_past_the_limit_and_scores_near_it() -> None:
    # Limit 5 per card: the 5th attempt (4 before) is near (>= 80% of 5 = 4), the 6th blocks.
    assert decide(RULES, replace(CLEAN, recent_by_fingerprint=2)).outcome == "allow"
    near = decide(RULES, replace(CLEAN, recent_by_fingerprint=4))
    assert (near.outcome, near.score, [r.rule for r in near.reasons]) == (
        "allow",
        30,
        ["velocity_fingerprint_near"],
    )
    over = decide(RULES, replace(CLEAN, recent_by_fingerprint=5))
    assert (over.outcome, over.deciding_rule) == ("block", "velocity_fingerprint")
    assert over.reasons[0].detail == "6 attempts per card in the last hour, over the limit of 5"
    # Two near misses add up to a review (30 + 30 >= 50).
    both = decide(RULES, replace(CLEAN, recent_by_fingerprint=4, recent_by_customer=8))
    assert (both.outcome, both.score) == ("review", 60)


def test_amount_limits_review_then_block_in_their_currency_only() -> None:
    assert decide(RULES, replace(CLEAN, amount=49_999)).outcome == "allow"
    review = decide(RULES, replace(CLEAN, amount=50_000))
    assert (review.outcome, review.score, review.deciding_rule) == ("review", 60, "amount_review")
    block = decide(RULES, replace(CLEAN, amount=200_000))
    assert block.deciding_rule == "amount_block"
    # The reason a person reads names money in major units, never the minor units the rules compare.
    assert [reason.detail for reason in block.reasons if reason.rule == "amount_block"] == [
        "2,000.00 USD is at or above the block limit 2,000.00 USD"
    ]
    assert decide(RULES, replace(CLEAN, amount=10**9, currency="EUR")).outcome == "allow"
    # A new payment method has no amount: amount rules do not apply.
    assert decide(RULES, replace(CLEAN, amount=None, currency=None)).outcome == "allow"


def test_disabled_rules_allow_everything() -> None:
    assert decide(replace(RULES, enabled=False), replace(CLEAN, fingerprint="fp_bad")).outcome == "allow"


names = st.sampled_from(["a", "b", "c", "fp_bad", "203.0.113.9", "KP", "US"])
limits = st.none() | st.integers(min_value=1, max_value=30)
rules_strategy = st.builds(
    RiskRules,
    per_fingerprint_per_hour=limits,
    per_customer_per_hour=limits,
    per_ip_per_hour=limits,
    amount_limits=st.dictionaries(
        st.sampled_from(["USD", "CNY"]),
        st.builds(
            AmountLimit, review=st.none() | st.integers(1, 10**6), block=st.none() | st.integers(1, 10**6)
        ),
    ),
    blocked_fingerprints=st.frozensets(names, max_size=3),
    blocked_emails=st.frozensets(names, max_size=3),
    blocked_ips=st.frozensets(names, max_size=3),
    blocked_countries=st.frozensets(names, max_size=3),
    review_score=st.integers(1, 100),
)
attempts = st.builds(
    Attempt,
    customer=st.none() | names,
    amount=st.none() | st.integers(1, 2 * 10**6),
    currency=st.sampled_from(["USD", "CNY", "EUR"]),
    fingerprint=st.none() | names,
    email=st.none() | names,
    ip=st.none() | names,
    country=st.none() | names,
    recent_by_fingerprint=st.integers(0, 40),
    recent_by_customer=st.integers(0, 40),
    recent_by_ip=st.integers(0, 40),
)


@given(rules_strategy, attempts)
def test_outcome_follows_reasons_and_score(rules: RiskRules, attempt: Attempt) -> None:
    decision = decide(rules, attempt)
    assert decision.outcome in OUTCOMES
    assert 0 <= decision.score <= 100
    assert decision.score == min(100, sum(r.points for r in decision.reasons))
    assert (decision.outcome == "block") == any(r.blocking for r in decision.reasons)
    if decision.outcome == "allow":
        assert decision.score < rules.review_score or not decision.reasons
    if decision.outcome != "allow":
        assert decision.deciding_rule is not None
    assert (decision.score == 0) == (not decision.reasons)


@given(rules_strategy, attempts, st.integers(1, 10))
def test_more_recent_attempts_never_make_the_outcome_milder(
    rules: RiskRules, attempt: Attempt, more: int
) -> None:
    busier = replace(
        attempt,
        recent_by_fingerprint=attempt.recent_by_fingerprint + more,
        recent_by_customer=attempt.recent_by_customer + more,
        recent_by_ip=attempt.recent_by_ip + more,
    )
    severity = OUTCOMES.index
    assert severity(decide(rules, busier).outcome) >= severity(decide(rules, attempt).outcome)


@given(rules_strategy, attempts)
def test_blocklisting_the_attempts_own_fingerprint_always_blocks(rules: RiskRules, attempt: Attempt) -> None:
    if attempt.fingerprint is None:
        attempt = replace(attempt, fingerprint="fp_x")
    blocked = replace(rules, blocked_fingerprints=rules.blocked_fingerprints | {attempt.fingerprint})
    assert decide(blocked, attempt).outcome == "block"
