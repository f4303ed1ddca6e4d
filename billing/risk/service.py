"""The risk check of SPEC §9, in the caller's transaction: the merchant's rules, the recent attempts counted in one
indexed query, the pure decision (billing.risk.rules), and the decision stored (with a `risk.decision` event when
it is not `allow`). The stored decisions are the velocity counters themselves: each check is one attempt."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

import msgspec
from sqlalchemy import bindparam, column, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.customers.models import Customer
from billing.db.engine import keep_after_rollback
from billing.db.lookup import equals, list_owned
from billing.db.pagination import Page, PageRequest
from billing.errors import CardError
from billing.ids import new_id
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


@dataclass(frozen=True)
class RulesAndCounts:
    """The risk settings without their blocklists, which of the attempt's keys are blocklisted, and the counts."""

    risk: dict[str, Any]
    listed: dict[str, bool]
    by_fingerprint: int
    by_customer: int
    by_ip: int


# Plain SQL, compiled once: the check runs before every charge, and statement building would cost it more than
# the database does. The blocklists are looked up where they are stored (jsonb `?`), so a list of any length costs
# the same and never travels. Each count is an index range scan of its own (ix_risk_decisions_fingerprint,
# _customer, _ip: merchant, key, created_at); a NULL key matches nothing and counts 0. Emails and countries are
# stored normalized (lower, upper case: billing.settings.service).
RULES_AND_COUNTS = text(
    """
    SELECT
        (m.settings -> 'risk') - 'blocklists' AS risk,
        coalesce(m.settings -> 'risk' -> 'blocklists' -> 'fingerprints' ? :fingerprint, false) AS fingerprint_listed,
        coalesce(m.settings -> 'risk' -> 'blocklists' -> 'emails' ? lower(:email), false) AS email_listed,
        coalesce(m.settings -> 'risk' -> 'blocklists' -> 'ips' ? :ip, false) AS ip_listed,
        coalesce(m.settings -> 'risk' -> 'blocklists' -> 'countries' ? upper(:country), false) AS country_listed,
        (SELECT count(*) FROM risk_decisions
          WHERE merchant_id = :merchant AND fingerprint = :fingerprint AND created_at > :since) AS by_fingerprint,
        (SELECT count(*) FROM risk_decisions
          WHERE merchant_id = :merchant AND customer_id = :customer AND created_at > :since) AS by_customer,
        (SELECT count(*) FROM risk_decisions
          WHERE merchant_id = :merchant AND ip = :ip AND created_at > :since) AS by_ip
    FROM merchants AS m WHERE m.id = :merchant
    """
).columns(
    column("risk", JSONB),
    column("fingerprint_listed"),
    column("email_listed"),
    column("ip_listed"),
    column("country_listed"),
    column("by_fingerprint"),
    column("by_customer"),
    column("by_ip"),
)
INSERT_DECISION = text(
    """
    INSERT INTO risk_decisions (id, merchant_id, subject_type, subject_id, customer_id, fingerprint, email, ip,
                                amount, currency, outcome, score, reasons, created_at)
    VALUES (:id, :merchant_id, :subject_type, :subject_id, :customer_id, :fingerprint, :email, :ip,
            :amount, :currency, :outcome, :score, :reasons, :created_at)
    """
).bindparams(bindparam("reasons", type_=JSONB))


async def rules_and_recent_attempts(
    session: AsyncSession, merchant_id: str, since: datetime, attempt: Attempt
) -> RulesAndCounts:
    """The merchant's risk settings, the blocklist look-ups of `attempt`'s keys, and its attempts since `since`
    by card fingerprint, customer and IP: one round trip."""
    row = (
        await session.execute(
            RULES_AND_COUNTS,
            {
                "merchant": merchant_id,
                "fingerprint": attempt.fingerprint,
                "customer": attempt.customer,
                "email": attempt.email,
                "ip": attempt.ip,
                "country": attempt.country,
                "since": since,
            },
        )
    ).one()
    listed = {"fingerprint": row[1], "email": row[2], "ip": row[3], "country": row[4]}
    return RulesAndCounts(
        row[0] or {}, {k: bool(v) for k, v in listed.items()}, int(row[5]), int(row[6]), int(row[7])
    )


def rules_for(found: RulesAndCounts, attempt: Attempt) -> RiskRules:
    """The pure rules for this attempt: the settings, with blocklists reduced to the entries the database found
    for its keys (the decision is the same as with the whole lists)."""
    rules = risk_rules(risk_settings({"risk": found.risk}))

    def hit(kind: str, value: str | None) -> frozenset[str]:
        return frozenset({value}) if value and found.listed[kind] else frozenset()

    return replace(
        rules,
        blocked_fingerprints=hit("fingerprint", attempt.fingerprint),
        blocked_emails=hit("email", attempt.email),
        blocked_ips=hit("ip", attempt.ip),
        blocked_countries=hit("country", attempt.country),
    )


def _country(customer: Customer | None) -> str | None:
    address: dict[str, Any] = (customer.address if customer is not None else None) or {}
    country = address.get("country")
    return str(country) if country else None


def subject_attempt(subject: Subject) -> Attempt:
    """The facts of `subject` the rules decide on (no counts yet)."""
    customer = subject.customer
    return Attempt(
        customer=customer.id if customer is not None else None,
        amount=subject.amount,
        currency=subject.currency,
        fingerprint=subject.fingerprint,
        email=customer.email if customer is not None else subject.email,
        ip=subject.ip,
        country=_country(customer),
    )


def decision_values(
    merchant_id: str, subject: Subject, attempt: Attempt, decision: Decision, now: datetime
) -> dict[str, Any]:
    """The risk_decisions row (INSERT_DECISION's parameters) of `decision` on `subject`, with a new id."""
    return dict(
        id=new_id("rsk"),
        merchant_id=merchant_id,
        subject_type=subject.type,
        subject_id=subject.id,
        customer_id=attempt.customer,
        fingerprint=subject.fingerprint,
        email=attempt.email,
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


async def check_risk(session: AsyncSession, merchant_id: str, subject: Subject, clock: Clock) -> Decision:
    """Decide on `subject` under the merchant's rules and store the decision (not when the rules are off).
    Times are the clock's: a test clock's renewals, a month apart, are not a burst."""
    now = clock.now()
    customer = subject.customer
    attempt = subject_attempt(subject)
    found = await rules_and_recent_attempts(session, merchant_id, now - VELOCITY_WINDOW, attempt)
    rules = rules_for(found, attempt)
    if not rules.enabled:
        return decide(rules, attempt)
    decision = decide(
        rules,
        replace(
            attempt,
            recent_by_fingerprint=found.by_fingerprint,
            recent_by_customer=found.by_customer,
            recent_by_ip=found.by_ip,
        ),
    )
    values = decision_values(merchant_id, subject, attempt, decision, now)
    # Plain SQL: no ORM unit of work for a row nothing reads back in this transaction.
    row = RiskDecision(**values)
    if decision.outcome == "block" and subject.type != "payment":
        await _refuse_new_payment_method(
            session, values, decision, customer.locale if customer else "en", clock
        )
    await session.execute(INSERT_DECISION, values)
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
    session: AsyncSession, values: dict[str, Any], decision: Decision, locale: str, clock: Clock
) -> None:
    """A blocked card, token or agreement is refused with a card_error. The work of the request rolls back with
    that error, so the decision (which is also an attempt for the velocity rules) is kept for after the rollback
    (billing.db.engine.keep_after_rollback): the API middleware and the portal write it then."""
    row = RiskDecision(**values)

    async def record(kept_in: AsyncSession) -> None:
        await kept_in.execute(INSERT_DECISION, values)
        record_event(
            kept_in,
            merchant_id=row.merchant_id,
            event_type="risk.decision",
            obj=render_decision(row),
            clock=clock,
        )

    keep_after_rollback(session, record)
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
    page: PageRequest,
    *,
    subject: str | None = None,
    outcome: str | None = None,
) -> Page[RiskDecision]:
    filters = (equals(RiskDecision.subject_id, subject), equals(RiskDecision.outcome, outcome))
    return await list_owned(session, RiskDecision, merchant_id, filters, page, prefix="rsk")
