"""The risk rules of SPEC §9 as one pure function: the merchant's rules and the facts of an attempt in, a decision
out. No I/O: the counts of recent attempts are facts the caller looked up.

How the outcome is reached, in this order:
- a blocking rule fired (a blocklisted fingerprint, email, IP or country; a velocity limit exceeded; an amount at
  or above the currency's block threshold) → `block`;
- else the score (the sum of the points of the rules that fired, at most 100) at or above `review_score` →
  `review`;
- else `allow`.
A blocking rule scores 100, so `score` always says how risky the attempt looked, whatever the outcome.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from plans.money import major_units_text

Outcome = Literal["allow", "review", "block"]
OUTCOMES: tuple[Outcome, ...] = ("allow", "review", "block")

BLOCK_POINTS = 100
AMOUNT_REVIEW_POINTS = 60
# An attempt that brings a velocity count to this share of its limit (or beyond, without exceeding it) looks
# like the start of a burst: it scores, without blocking.
VELOCITY_NEAR_SHARE = 0.8
VELOCITY_NEAR_POINTS = 30
MAX_SCORE = 100
DEFAULT_REVIEW_SCORE = 50


@dataclass(frozen=True)
class AmountLimit:
    """Per currency, in minor units: at or above `review` the attempt scores; at or above `block` it is blocked.
    Either may be None (no such limit)."""

    review: int | None = None
    block: int | None = None


@dataclass(frozen=True)
class RiskRules:
    """A merchant's risk rules (settings.risk). Velocity limits count attempts per hour, this one included;
    None turns a limit off. Blocklist entries are compared case-insensitively (emails, countries)."""

    enabled: bool = True
    per_fingerprint_per_hour: int | None = None
    per_customer_per_hour: int | None = None
    per_ip_per_hour: int | None = None
    amount_limits: Mapping[str, AmountLimit] = field(default_factory=dict)
    blocked_fingerprints: frozenset[str] = frozenset()
    blocked_emails: frozenset[str] = frozenset()
    blocked_ips: frozenset[str] = frozenset()
    blocked_countries: frozenset[str] = frozenset()
    review_score: int = DEFAULT_REVIEW_SCORE


@dataclass(frozen=True)
class Attempt:
    """The facts of one attempt: a charge (amount and currency) or a new payment method (amount None).
    The counts are attempts in the hour before this one, this one excluded."""

    customer: str | None
    amount: int | None = None
    currency: str | None = None
    fingerprint: str | None = None
    email: str | None = None
    ip: str | None = None
    country: str | None = None
    recent_by_fingerprint: int = 0
    recent_by_customer: int = 0
    recent_by_ip: int = 0


@dataclass(frozen=True)
class Reason:
    """A rule that fired: its name (e.g. `velocity_fingerprint`), what it saw, and its points."""

    rule: str
    detail: str
    points: int
    blocking: bool


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    score: int
    reasons: tuple[Reason, ...]

    @property
    def deciding_rule(self) -> str | None:
        """The first rule behind a block (or the first that scored, for a review): what a message names."""
        blocking = [r for r in self.reasons if r.blocking]
        chosen = blocking or list(self.reasons)
        return chosen[0].rule if chosen and self.outcome != "allow" else None


def _blocklists(rules: RiskRules, attempt: Attempt) -> list[Reason]:
    out: list[Reason] = []
    if attempt.fingerprint and attempt.fingerprint in rules.blocked_fingerprints:
        out.append(
            Reason(
                "blocklist_fingerprint",
                f"card fingerprint {attempt.fingerprint} is blocked",
                BLOCK_POINTS,
                True,
            )
        )
    if attempt.email and attempt.email.casefold() in {e.casefold() for e in rules.blocked_emails}:
        out.append(Reason("blocklist_email", f"email {attempt.email} is blocked", BLOCK_POINTS, True))
    if attempt.ip and attempt.ip in rules.blocked_ips:
        out.append(Reason("blocklist_ip", f"IP address {attempt.ip} is blocked", BLOCK_POINTS, True))
    if attempt.country and attempt.country.upper() in {c.upper() for c in rules.blocked_countries}:
        out.append(
            Reason("blocklist_country", f"country {attempt.country.upper()} is blocked", BLOCK_POINTS, True)
        )
    return out


def _velocity(rule: str, what: str, limit: int | None, earlier: int, present: bool) -> Reason | None:
    if limit is None or not present:
        return None
    count = earlier + 1
    if count > limit:
        return Reason(
            rule,
            f"{count} attempts per {what} in the last hour, over the limit of {limit}",
            BLOCK_POINTS,
            True,
        )
    if count >= max(2, limit * VELOCITY_NEAR_SHARE):
        return Reason(
            f"{rule}_near",
            f"{count} attempts per {what} in the last hour, near the limit of {limit}",
            VELOCITY_NEAR_POINTS,
            False,
        )
    return None


def _amount(rules: RiskRules, attempt: Attempt) -> Reason | None:
    if attempt.amount is None or attempt.currency is None:
        return None
    limit = rules.amount_limits.get(attempt.currency.upper())
    if limit is None:
        return None
    if limit.block is not None and attempt.amount >= limit.block:
        return Reason(
            "amount_block",
            f"{major_units_text(attempt.amount, attempt.currency)} is at or above the block limit "
            f"{major_units_text(limit.block, attempt.currency)}",
            BLOCK_POINTS,
            True,
        )
    if limit.review is not None and attempt.amount >= limit.review:
        return Reason(
            "amount_review",
            f"{major_units_text(attempt.amount, attempt.currency)} is at or above the review limit "
            f"{major_units_text(limit.review, attempt.currency)}",
            AMOUNT_REVIEW_POINTS,
            False,
        )
    return None


def decide(rules: RiskRules, attempt: Attempt) -> Decision:
    """The decision on `attempt` under `rules` (see the module's docstring for how the outcome is reached)."""
    if not rules.enabled:
        return Decision("allow", 0, ())
    fired: list[Reason] = _blocklists(rules, attempt)
    for candidate in (
        _velocity(
            "velocity_fingerprint",
            "card",
            rules.per_fingerprint_per_hour,
            attempt.recent_by_fingerprint,
            attempt.fingerprint is not None,
        ),
        _velocity(
            "velocity_customer",
            "customer",
            rules.per_customer_per_hour,
            attempt.recent_by_customer,
            attempt.customer is not None,
        ),
        _velocity(
            "velocity_ip", "IP address", rules.per_ip_per_hour, attempt.recent_by_ip, attempt.ip is not None
        ),
        _amount(rules, attempt),
    ):
        if candidate is not None:
            fired.append(candidate)
    score = min(MAX_SCORE, sum(r.points for r in fired))
    if any(r.blocking for r in fired):
        outcome: Outcome = "block"
    elif fired and score >= rules.review_score:
        outcome = "review"
    else:
        outcome = "allow"
    return Decision(outcome, score, tuple(fired))
