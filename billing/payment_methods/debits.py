"""What a debit of an agreement needs before it reaches the channel (SPEC §8): the instrument, and the limits the
customer agreed to (`debit_refusal`, a pure function; the period's total from the payments table). The charge path
(billing.payments.service) uses this module; the agreement use cases live in billing.payment_methods.agreements.
"""

from __future__ import annotations

from datetime import datetime

from dateutil.relativedelta import relativedelta
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.channels.base import CHANNEL_CURRENCY
from billing.gateways.base import AgreementInstrument
from billing.payment_methods.models import REVOKED, PaymentMethod
from billing.payments.models import Payment

# --- debits ----------------------------------------------------------------------------------------------------


def instrument(pm: PaymentMethod) -> AgreementInstrument:
    assert pm.agreement_no is not None and pm.external_agreement_no is not None
    return AgreementInstrument(
        channel=pm.type, agreement_no=pm.agreement_no, external_agreement_no=pm.external_agreement_no
    )


def period_window(signed_at: datetime, now: datetime, interval: str, count: int) -> tuple[datetime, datetime]:
    """The agreement period holding `now`: periods of `count` days or months from the signing, each computed
    from the signing (never from the previous period, so month ends do not drift)."""
    step = relativedelta(months=count) if interval == "month" else relativedelta(days=count)
    if now < signed_at:
        return signed_at, signed_at + step
    n = 0
    # Jump close first (months or days elapsed), then walk: at most a step or two.
    elapsed = (now - signed_at).days // (31 * count if interval == "month" else count)
    n = max(0, elapsed - 1)
    while signed_at + step * (n + 1) <= now:
        n += 1
    return signed_at + step * n, signed_at + step * (n + 1)


def debit_refusal(pm: PaymentMethod, amount: int, currency: str, debited_in_period: int) -> str | None:
    """Why a debit must not reach the channel (a hard decline code), or None. Pure."""
    if pm.status == REVOKED:
        return "revocation_of_authorization"
    if currency != CHANNEL_CURRENCY:
        return "currency_not_supported"
    terms = pm.agreement or {}
    if amount > int(terms.get("single_amount_limit", 0)):
        return "agreement_limit_exceeded"
    cap = terms.get("period_amount_limit")
    if cap is not None and debited_in_period + amount > int(cap):
        return "agreement_limit_exceeded"
    return None


async def debited_in_period(session: AsyncSession, pm: PaymentMethod, now: datetime) -> int:
    """What succeeded debits of this agreement took in its current period (only when a period cap is set)."""
    terms = pm.agreement or {}
    if terms.get("period_amount_limit") is None or not terms.get("signed_at"):
        return 0
    period = terms.get("period") or {}
    start, end = period_window(
        datetime.fromisoformat(terms["signed_at"]),
        now,
        str(period.get("interval", "month")),
        int(period.get("interval_count", 1)),
    )
    taken = await session.scalar(
        select(func.coalesce(func.sum(Payment.amount), 0)).where(
            Payment.payment_method_id == pm.id,
            Payment.status.in_(("pending", "succeeded")),
            Payment.created_at >= start,
            Payment.created_at < end,
        )
    )
    return int(taken or 0)
