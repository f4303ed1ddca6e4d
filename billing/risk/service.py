"""The risk check of SPEC §9, in the caller's transaction: the merchant's rules, the recent attempts counted in one
indexed query, the pure decision (billing.risk.rules), and the decision stored (with a `risk.decision` event when
it is not `allow`). The stored decisions are the velocity counters themselves: each check is one attempt."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import msgspec
from sqlalchemy import func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.customers.models import Customer
from billing.db.pagination import Page, paginate
from billing.errors import CardError
from billing.ids import new_id
from billing.merchants.models import Merchant
from billing.risk import schemas
from billing.risk.messages import blocked_message
from billing.risk.models import RiskDecision
from billing.risk.rules import AmountLimit, Attempt, Decision, RiskRules, decide
from billing.settings.schemas import RiskSettings
from billing.settings.service import risk_settings
from webhooks.outbox import record_event

VELOCITY_WINDOW = timedelta(hours=1)
SubjectType = Literal["payment", "payment_method", "token"]


def risk_rules(settings: RiskSettings) -> RiskRules:
    """The stored settings as the pure rules take them."""
    lists = settings.blocklists
    return RiskRules(
        enabled=settings.enabled,
        per_fingerprint_per_hour=settings.velocity.per_fingerprint_per_hour,
        per_customer_per_hour=settings.velocity.per_customer_per_hour,
        per_ip_per_hour=settings.velocity.per_ip_per_hour,
        amount_limits={
            code: AmountLimit(review=x.review, block=x.block) for code, x in settings.amount_limits.items()
        },
        blocked_fingerprints=frozenset(lists.fingerprints),
        blocked_emails=frozenset(lists.emails),
        blocked_ips=frozenset(lists.ips),
        blocked_countries=frozenset(lists.countries),
        review_score=settings.review_score,
    )


@dataclass(frozen=True)
class Subject:
    """What is checked: a charge (amount, currency) or a new payment method (no amount)."""

    type: SubjectType
    id: str
    customer: Customer | None
    fingerprint: str | None = None
    ip: str | None = None
    amount: int | None = None
    currency: str | None = None
    # A token has no customer yet: its email is unknown.
    email: str | None = None


async def recent_attempts(
    session: AsyncSession,
    merchant_id: str,
    since: datetime,
    *,
    fingerprint: str | None,
    customer: str | None,
    ip: str | None,
) -> tuple[int, int, int]:
    """Attempts since `since` by card fingerprint, customer and IP: one query, each branch of its OR on its own
    index (ix_risk_decisions_fingerprint / _customer / _ip), combined by a bitmap OR."""
    keyed = [
        (RiskDecision.fingerprint, fingerprint),
        (RiskDecision.customer_id, customer),
        (RiskDecision.ip, ip),
    ]
    present = [column == value for column, value in keyed if value is not None]
    if not present:
        return 0, 0, 0
    counts = [
        func.count().filter(column == value) if value is not None else literal(0) for column, value in keyed
    ]
    row = (
        await session.execute(
            select(*counts).where(
                RiskDecision.merchant_id == merchant_id, RiskDecision.created_at > since, or_(*present)
            )
        )
    ).one()
    return int(row[0]), int(row[1]), int(row[2])


def _country(customer: Customer | None) -> str | None:
    address: dict[str, Any] = (customer.address if customer is not None else None) or {}
    country = address.get("country")
    return str(country) if country else None


async def check_risk(session: AsyncSession, merchant_id: str, subject: Subject, clock: Clock) -> Decision:
    """Decide on `subject` under the merchant's rules and store the decision (not when the rules are off).
    Times are the clock's: a test clock's renewals, a month apart, are not a burst."""
    raw = await session.scalar(select(Merchant.settings).where(Merchant.id == merchant_id))
    rules = risk_rules(risk_settings(raw or {}))
    if not rules.enabled:
        return decide(rules, Attempt(customer=None))
    now = clock.now()
    customer = subject.customer
    email = customer.email if customer is not None else subject.email
    by_fingerprint, by_customer, by_ip = await recent_attempts(
        session,
        merchant_id,
        now - VELOCITY_WINDOW,
        fingerprint=subject.fingerprint,
        customer=customer.id if customer is not None else None,
        ip=subject.ip,
    )
    decision = decide(
        rules,
        Attempt(
            customer=customer.id if customer is not None else None,
            amount=subject.amount,
            currency=subject.currency,
            fingerprint=subject.fingerprint,
            email=email,
            ip=subject.ip,
            country=_country(customer),
            recent_by_fingerprint=by_fingerprint,
            recent_by_customer=by_customer,
            recent_by_ip=by_ip,
        ),
    )
    row = RiskDecision(
        id=new_id("rsk"),
        merchant_id=merchant_id,
        subject_type=subject.type,
        subject_id=subject.id,
        customer_id=customer.id if customer is not None else None,
        fingerprint=subject.fingerprint,
        email=email,
        ip=subject.ip,
        amount=subject.amount,
        currency=subject.currency,
        outcome=decision.outcome,
        score=decision.score,
        reasons=[
            {"rule": r.rule, "detail": r.detail, "points": r.points, "blocking": r.blocking}
            for r in decision.reasons
        ],
        created_at=now,
    )
    if decision.outcome == "block" and subject.type != "payment":
        await _refuse_new_payment_method(session, row, decision, customer.locale if customer else "en", clock)
    session.add(row)
    await session.flush()
    if decision.outcome != "allow":
        record_event(
            session,
            merchant_id=merchant_id,
            event_type="risk.decision",
            obj=render_decision(row),
            clock=clock,
        )
    return decision


async def _refuse_new_payment_method(
    session: AsyncSession, row: RiskDecision, decision: Decision, locale: str, clock: Clock
) -> None:
    """A blocked card, token or agreement is refused with a card_error. The request's transaction rolls back with
    that error, so the decision (which is also an attempt for the velocity rules) is stored in its own: a short
    second connection, on this path only."""
    async with AsyncSession(bind=session.bind, expire_on_commit=False) as own, own.begin():
        own.add(row)
        await own.flush()
        record_event(
            own,
            merchant_id=row.merchant_id,
            event_type="risk.decision",
            obj=render_decision(row),
            clock=clock,
        )
    rule = decision.deciding_rule or "risk"
    raise CardError(
        blocked_message(rule, locale),
        code="card_declined",
        extra={
            "decline_code": "highest_risk_level",
            "decline_type": "hard",
            "risk_decision": row.id,
            "rule": rule,
        },
    )


def render_decision(row: RiskDecision) -> schemas.RiskDecision:
    return schemas.RiskDecision(
        id=row.id,
        created_at=row.created_at,
        subject_type=row.subject_type,  # type: ignore[arg-type]
        subject=row.subject_id,
        customer=row.customer_id,
        amount=row.amount,
        currency=row.currency,
        outcome=row.outcome,  # type: ignore[arg-type]
        score=row.score,
        reasons=msgspec.convert(row.reasons, list[schemas.RiskReason]),
        review=row.review,
    )


async def latest_decision(session: AsyncSession, merchant_id: str, subject_id: str) -> RiskDecision | None:
    return await session.scalar(
        select(RiskDecision)
        .where(RiskDecision.merchant_id == merchant_id, RiskDecision.subject_id == subject_id)
        .order_by(RiskDecision.seq.desc())
        .limit(1)
    )


async def record_review(
    session: AsyncSession, merchant_id: str, subject_id: str, action: str, by: str, clock: Clock
) -> None:
    """Write who approved or refused a held payment, and when, on its decision."""
    decision = await latest_decision(session, merchant_id, subject_id)
    if decision is not None:
        decision.review = {"action": action, "by": by, "at": clock.now().isoformat()}
        await session.flush()


async def list_decisions(
    session: AsyncSession,
    merchant_id: str,
    *,
    limit: int,
    starting_after: str | None,
    subject: str | None = None,
    outcome: str | None = None,
) -> Page[RiskDecision]:
    stmt = select(RiskDecision).where(RiskDecision.merchant_id == merchant_id)
    if subject is not None:
        stmt = stmt.where(RiskDecision.subject_id == subject)
    if outcome is not None:
        stmt = stmt.where(RiskDecision.outcome == outcome)
    return await paginate(
        session,
        stmt,
        RiskDecision,
        merchant_id=merchant_id,
        id_prefix="rsk",
        limit=limit,
        starting_after=starting_after,
    )
