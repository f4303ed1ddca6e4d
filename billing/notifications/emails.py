"""Customer emails, queued in the caller's transaction (outbox pattern, like webhook events).

A queue function gathers the facts, renders the words in the customer's locale (en or zh-CN), inserts one
`email_messages` row keyed by a `dedupe_key`: the change and its email commit together or not at all, and a task
that runs twice queues one email. The worker sends pending rows (`billing.notifications.sender`). A customer
without an email address gets nothing queued.

Emails that ask the customer to act carry a link to the hosted portal's payment-method page: a portal session
made here, valid for seven days (`EMAIL_SESSION_LIFETIME`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from babel.dates import format_skeleton
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog.models import Plan
from billing.clock import Clock, utc_now
from billing.customers.models import Customer
from billing.ids import new_id
from billing.invoices.documents import customer_zone, format_amount, format_local_date, format_period
from billing.invoices.hosted import hosted_invoice_url
from billing.invoices.labels import BABEL_LOCALES
from billing.invoices.models import Invoice
from billing.merchants.service import merchant_name
from billing.notifications import templates
from billing.notifications.models import EmailMessage
from billing.notifications.templates import RenderedEmail
from billing.notifications.texts import day_words
from billing.payment_methods.models import PaymentMethod
from billing.payments.models import Payment
from billing.portal.links import EMAIL_SESSION_LIFETIME, OpenedSession, open_portal_session
from billing.settings.service import get_branding
from billing.subscriptions.hooks import TrialEnding
from billing.subscriptions.models import Subscription
from billing.vault.cards import brand_label
from dunning.hooks import FailureToTell
from dunning.messages import failure_message

PAYMENT_FAILED = "payment_failed"
CARD_EXPIRING = "card_expiring"
TRIAL_ENDING = "trial_ending"
KINDS = (PAYMENT_FAILED, CARD_EXPIRING, TRIAL_ENDING)

# The code whose words explain a decline class when the invoice does not say which code it was. Fraud-related
# hard codes deliberately read as a generic decline (dunning.messages explains why).
_CLASS_CODES = {
    "soft": "generic_decline",
    "hard": "stolen_card",
    "expired": "expired_card",
    "technical": "processing_error",
}


def card_words(brand: str | None, last4: str | None) -> str | None:
    """How a card is named to its holder, "Visa •••• 4242" (never more than the last four digits)."""
    if not last4:
        return None
    return f"{brand_label_or_title(brand or '')} •••• {last4}".strip()


async def _already_queued(session: AsyncSession, dedupe_key: str) -> bool:
    return (
        await session.scalar(select(EmailMessage.id).where(EmailMessage.dedupe_key == dedupe_key)) is not None
    )


async def queue_email(
    session: AsyncSession,
    *,
    customer: Customer,
    kind: str,
    rendered: RenderedEmail,
    dedupe_key: str,
    clock: Clock,
) -> str | None:
    """Insert one pending email in the caller's transaction; None when the dedupe key was already used or the
    customer has no email address."""
    if not customer.email:
        return None
    stmt = (
        insert(EmailMessage)
        .values(
            id=new_id("em"),
            merchant_id=customer.merchant_id,
            customer_id=customer.id,
            kind=kind,
            to=customer.email,
            locale=customer.locale,
            subject=rendered.subject,
            text_body=rendered.text,
            html_body=rendered.html,
            status="pending",
            attempts=0,
            dedupe_key=dedupe_key,
            created_at=clock.now(),
            next_attempt_at=utc_now(),
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(EmailMessage.id)
    )
    return await session.scalar(stmt)


async def _recipient(session: AsyncSession, customer_id: str) -> Customer | None:
    customer = await session.get(Customer, customer_id)
    if customer is None or customer.deleted_at is not None or not customer.email:
        return None
    return customer


async def _email_portal(
    session: AsyncSession, customer: Customer, clock: Clock, kind: str
) -> tuple[OpenedSession, str]:
    """A seven-day portal session for an email's link, and its expiry date in the customer's words."""
    opened = await open_portal_session(session, customer, clock, origin=kind, lifetime=EMAIL_SESSION_LIFETIME)
    expires = format_local_date(opened.row.expires_at, customer_zone(customer.timezone), customer.locale)
    return opened, expires


async def queue_payment_failed_email(
    session: AsyncSession,
    invoice: Invoice,
    clock: Clock,
    *,
    decline_class: str,
    next_attempt: datetime | None,
    final: bool,
) -> None:
    """Queue the "payment failed" email for the invoice's customer, in the caller's transaction (await it).

    Says how much for which invoice, why (the customer-facing words of the decline code in
    `invoice.last_payment_error`, else of `decline_class`), what to do (a link to the portal's payment-method
    page), and what happens next: the `next_attempt` date, "we will not retry until you update your card" for
    `hard`/`expired` declines, or the final notice when `final`. One email per failed payment attempt.
    """
    customer = await _recipient(session, invoice.customer_id)
    if customer is None:
        return
    error = invoice.last_payment_error or {}
    payment_id = error.get("payment")
    dedupe_key = f"{PAYMENT_FAILED}:{invoice.id}:{payment_id or invoice.attempt_count}" + (
        ":final" if final else ""
    )
    if await _already_queued(session, dedupe_key):
        return
    code = error.get("code") or _CLASS_CODES.get(decline_class, "generic_decline")
    card: str | None = None
    method = "card"
    if payment_id:
        payment = await session.get(Payment, payment_id)
        if payment is not None:
            card = card_words(payment.card_brand, payment.card_last4)
            method = payment.payment_method_type
    locale = customer.locale
    zone = customer_zone(customer.timezone)
    opened, expires = await _email_portal(session, customer, clock, PAYMENT_FAILED)
    rendered = templates.payment_failed(
        locale=locale,
        merchant=await merchant_name(session, invoice.merchant_id),
        branding=await get_branding(session, invoice.merchant_id),
        customer_name=customer.name,
        number=invoice.number or invoice.id,
        amount=format_amount(invoice.amount_remaining, invoice.currency, locale),
        card=card,
        why=failure_message(code, locale, method),
        portal_url=opened.url,
        portal_expires=expires,
        next_attempt=format_local_date(next_attempt, zone, locale) if next_attempt else None,
        wait_for_new_card=decline_class in ("hard", "expired"),
        final=final,
        invoice_url=hosted_invoice_url(invoice.hosted_token),
        method=method,
    )
    await queue_email(
        session,
        customer=customer,
        kind=PAYMENT_FAILED,
        rendered=rendered,
        dedupe_key=dedupe_key,
        clock=clock,
    )


async def paying_card(
    session: AsyncSession, customer: Customer, sub: Subscription | None
) -> PaymentMethod | None:
    """The card a subscription's renewals charge: its own default, else the customer's."""
    pm_id = (sub.default_payment_method if sub is not None else None) or customer.default_payment_method
    if pm_id is None:
        return None
    pm = await session.get(PaymentMethod, pm_id)
    return pm if pm is not None and pm.detached_at is None else None


@dataclass(frozen=True)
class FirstInvoice:
    """What the invoice that ends a trial will charge: the subscription's upcoming invoice (coupon, taxes and the
    customer's balance applied), computed by the caller."""

    amount_due: int
    currency: str
    period_start: datetime
    period_end: datetime


async def queue_trial_ending_email(
    session: AsyncSession, sub: Subscription, clock: Clock, first_invoice: FirstInvoice
) -> None:
    """Queue the "trial ending" email (sent alongside `subscription.trial_will_end`): when the trial ends, what
    its first invoice will charge, and which card will pay it (or that one is needed), or for a `send_invoice`
    subscription that the invoice will be sent and by when it is due. Not for a subscription that ends with its
    trial (cancel at period end): it will bill nothing."""
    if sub.trial_end is None or sub.cancel_at_period_end:
        return
    customer = await _recipient(session, sub.customer_id)
    plan = await session.get(Plan, sub.plan_id)
    if customer is None or plan is None:
        return
    dedupe_key = f"{TRIAL_ENDING}:{sub.id}:{sub.trial_end.isoformat()}"
    if await _already_queued(session, dedupe_key):
        return
    locale = customer.locale
    zone = customer_zone(customer.timezone)
    trial = templates.TrialEnd(
        locale=locale,
        merchant=await merchant_name(session, sub.merchant_id),
        branding=await get_branding(session, sub.merchant_id),
        customer_name=customer.name,
        plan=plan.name,
        date=format_local_date(sub.trial_end, zone, locale),
        amount=format_amount(first_invoice.amount_due, first_invoice.currency, locale),
        period=format_period(first_invoice.period_start, first_invoice.period_end, zone, locale),
    )
    if sub.collection_method == "send_invoice":
        due_in = day_words(sub.days_until_due, locale) if sub.days_until_due else None
        rendered = templates.trial_ending_invoiced(trial, due_in=due_in)
    else:
        pm = await paying_card(session, customer, sub)
        opened, expires = await _email_portal(session, customer, clock, TRIAL_ENDING)
        rendered = templates.trial_ending(
            trial,
            card=card_words(pm.card_brand, pm.card_last4) if pm else None,
            portal_url=opened.url,
            portal_expires=expires,
        )
    await queue_email(
        session, customer=customer, kind=TRIAL_ENDING, rendered=rendered, dedupe_key=dedupe_key, clock=clock
    )


def card_expiry_dedupe_key(pm: PaymentMethod) -> str:
    """One email per card per expiry month (a card updated to a new expiry date may be warned again)."""
    return f"{CARD_EXPIRING}:{pm.id}:{pm.card_exp_year:04d}-{pm.card_exp_month:02d}"


async def queue_card_expiring_email(
    session: AsyncSession, customer: Customer, pm: PaymentMethod, clock: Clock
) -> str | None:
    """Queue the "card expiring" email for a card that pays a live subscription; never twice per card and
    expiry month."""
    if not customer.email or customer.deleted_at is not None:
        return None
    if pm.card_exp_year is None or pm.card_exp_month is None or pm.card_last4 is None:
        return None  # not a card: agreements have no expiry date
    dedupe_key = card_expiry_dedupe_key(pm)
    if await _already_queued(session, dedupe_key):
        return None
    locale = customer.locale
    month = str(
        format_skeleton(
            "yMMMM", date(pm.card_exp_year, pm.card_exp_month, 1), locale=BABEL_LOCALES.get(locale, "en_US")
        )
    )
    opened, expires = await _email_portal(session, customer, clock, CARD_EXPIRING)
    rendered = templates.card_expiring(
        locale=locale,
        merchant=await merchant_name(session, customer.merchant_id),
        branding=await get_branding(session, customer.merchant_id),
        customer_name=customer.name,
        brand=brand_label_or_title(pm.card_brand or ""),
        last4=pm.card_last4,
        month=month,
        portal_url=opened.url,
        portal_expires=expires,
    )
    return await queue_email(
        session, customer=customer, kind=CARD_EXPIRING, rendered=rendered, dedupe_key=dedupe_key, clock=clock
    )


def brand_label_or_title(brand: str) -> str:
    try:
        return brand_label(brand)
    except KeyError:
        return brand.title()


async def on_trial_will_end(event: TrialEnding) -> None:
    """Hook `trial_will_end`: the trial-ending email, quoting what the first invoice will charge."""
    first = FirstInvoice(event.amount_due, event.currency, event.period_start, event.period_end)
    await queue_trial_ending_email(event.session, event.subscription, event.clock, first)


async def on_payment_failure_to_tell(event: FailureToTell) -> None:
    """Hook `payment_failure_to_tell` (dunning): the "payment failed" email."""
    await queue_payment_failed_email(
        event.session,
        event.invoice,
        event.clock,
        decline_class=event.decline_class,
        next_attempt=event.next_attempt,
        final=event.final,
    )
