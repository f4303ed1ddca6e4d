"""The risk check of SPEC §9 for a set of charges made together (a collection batch), in the caller's transaction,
deciding each exactly as `service.check_risk` would if they were checked one after the other in this order: the
merchant's rules are read once, the recent attempts are counted by one grouped query per key (fingerprint,
customer, IP), each charge also counts the charges of the set checked before it, and the decisions are written
with one statement."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.risk.models import RiskDecision
from billing.risk.rules import Attempt, Decision, decide
from billing.risk.service import (
    INSERT_DECISION,
    VELOCITY_WINDOW,
    Subject,
    decision_values,
    render_decision,
    risk_rules,
    subject_attempt,
)
from billing.settings.schemas import RiskSettings
from webhooks.outbox import record_event

# The keys the velocity rules count attempts by: the Attempt field and the risk_decisions column.
_KEYS = (
    ("fingerprint", RiskDecision.fingerprint),
    ("customer", RiskDecision.customer_id),
    ("ip", RiskDecision.ip),
)


async def _recent_counts(
    session: AsyncSession, merchant_id: str, since: datetime, attempts: Sequence[Attempt]
) -> dict[tuple[str, str], int]:
    """Attempts since `since` by each key value the set has: one grouped query per key (an index range scan of
    ix_risk_decisions_fingerprint, _customer or _ip per value)."""
    counts: dict[tuple[str, str], int] = {}
    for name, column in _KEYS:
        values = sorted({v for a in attempts if (v := getattr(a, name)) is not None})
        if not values:
            continue
        rows = await session.execute(
            select(column, func.count())
            .where(
                RiskDecision.merchant_id == merchant_id, column.in_(values), RiskDecision.created_at > since
            )
            .group_by(column)
        )
        counts.update({(name, str(value)): int(n) for value, n in rows})
    return counts


async def check_risks(
    session: AsyncSession, merchant_id: str, settings: RiskSettings, subjects: Sequence[Subject], clock: Clock
) -> list[Decision]:
    """The decisions on the charges `subjects` (all of one merchant, whose risk settings are `settings`, at the
    time of `clock`), in order; stored (with a `risk.decision` event when not `allow`) unless the rules are off.
    A charge only: a new payment method is checked alone (`check_risk`), since a block refuses it with an error."""
    assert all(s.type == "payment" for s in subjects), "check_risks decides charges only"
    now = clock.now()
    rules = risk_rules(settings)
    attempts = [subject_attempt(s) for s in subjects]
    if not rules.enabled:
        return [decide(rules, attempt) for attempt in attempts]
    counts = Counter(await _recent_counts(session, merchant_id, now - VELOCITY_WINDOW, attempts))
    decisions: list[Decision] = []
    rows: list[dict[str, Any]] = []
    for subject, attempt in zip(subjects, attempts, strict=True):
        keys = [(name, v) for name, _ in _KEYS if (v := getattr(attempt, name)) is not None]
        decision = decide(
            rules,
            replace(
                attempt,
                recent_by_fingerprint=counts[("fingerprint", attempt.fingerprint or "")],
                recent_by_customer=counts[("customer", attempt.customer or "")],
                recent_by_ip=counts[("ip", attempt.ip or "")],
            ),
        )
        # This attempt is stored: the next ones of the set count it, as they would after its own check.
        counts.update(keys)
        decisions.append(decision)
        values = decision_values(merchant_id, subject, attempt, decision, now)
        rows.append(values)
        if decision.outcome != "allow":
            record_event(
                session,
                merchant_id=merchant_id,
                event_type="risk.decision",
                obj=render_decision(RiskDecision(**values)),
                clock=clock,
            )
    if rows:
        await session.execute(INSERT_DECISION, rows)
    return decisions
