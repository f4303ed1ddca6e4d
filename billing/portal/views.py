"""What each portal page shows, gathered through the use cases of billing, catalog and payments and formatted
for the page's language (amounts and dates by babel). No Litestar, no HTML here: the templates arrange these
values.

Ownership is checked here for every id a page names: another customer's subscription, invoice or payment method
is "not found", exactly like an id that does not exist.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import segno
from babel import Locale as BabelLocale
from babel.dates import format_date, format_time
from babel.numbers import format_decimal
from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog.models import Plan
from billing.catalog.plans import get_plan, list_plans, priced_plan
from billing.customers.billing_details import (
    TAX_ID_TYPES,
    address_lines,
    countries,
    country_name,
    tax_id_label,
)
from billing.db.pagination import PageRequest
from billing.errors import BillingError, Conflict
from billing.gateways.registry import serves
from billing.invoices.documents import customer_zone, format_amount, format_local_date, format_period
from billing.invoices.labels import BABEL_LOCALES, status_label
from billing.invoices.models import Invoice
from billing.invoices.search import InvoiceFilters
from billing.invoices.service import get_invoice, list_invoices
from billing.notifications.emails import card_words, paying_card
from billing.notifications.texts import interval_words
from billing.payment_methods.models import PaymentMethod
from billing.payment_methods.rendering import render_payment_method
from billing.payment_methods.schemas import PaymentMethodCreate
from billing.payment_methods.service import get_payment_method, list_payment_methods
from billing.portal.service import FoundLogin
from billing.portal.texts import CANCELLATION_REASONS, plural, status_text, text
from billing.settings.schemas import PortalSettings
from billing.settings.service import gateway_connections
from billing.subscriptions import states
from billing.subscriptions.models import Subscription
from billing.subscriptions.service import get_subscription, list_subscriptions, upcoming_invoice
from billing.wallets import ledger
from billing.wallets.models import Wallet
from billing.wallets.service import customer_wallets
from dunning.messages import failure_message
from plans.credits import credits_of, next_expiry
from plans.items import item_fee
from plans.money import currency_exponent, round_minor

PAGE = 100
CHANNEL_NAMES = {
    "alipay": ("Alipay", "支付宝"),
    "wechat_pay": ("WeChat Pay", "微信支付"),
    "unionpay": ("UnionPay", "银联"),
    "ecny": ("e-CNY", "数字人民币"),
}


@dataclass(frozen=True)
class Words:
    """Formatting for one page: the customer's time zone and the page's language."""

    locale: str
    zone: ZoneInfo

    def money(self, minor: int, currency: str) -> str:
        return format_amount(minor, currency, self.locale)

    def day(self, moment: datetime) -> str:
        return format_local_date(moment, self.zone, self.locale)

    def moment(self, moment: datetime) -> str:
        """Date and time, as the locale writes them ("Jan 31, 2027, 10:05 AM", "2027年1月31日 18:05")."""
        babel = BabelLocale.parse(BABEL_LOCALES.get(self.locale, "en_US"))
        local = moment.astimezone(self.zone)
        pattern = str(babel.datetime_formats["medium"])
        date_text = str(format_date(local.date(), "medium", locale=babel))
        time_text = str(format_time(local, "short", locale=babel))
        return pattern.replace("{1}", date_text).replace("{0}", time_text)

    def period(self, start: datetime, end: datetime) -> str:
        return format_period(start, end, self.zone, self.locale)

    def price(self, plan: Plan, quantity: int) -> str:
        amount = self.money(round_minor(plan.amount_decimal * quantity), plan.currency)
        period = interval_words(plan.interval, plan.interval_count, self.locale)
        return plural("price_per", plan.interval_count, self.locale, amount=amount, period=period)

    def decline(self, code: str | None) -> str:
        return failure_message(code, self.locale) if code else text("unknown_reason", self.locale)


def words_for(found: FoundLogin, locale: str) -> Words:
    return Words(locale, customer_zone(found.customer.timezone))


# --- ownership ------------------------------------------------------------------------------------------------


async def owned_subscription(
    session: AsyncSession, found: FoundLogin, subscription_id: str
) -> Subscription | None:
    try:
        sub = await get_subscription(session, found.customer.merchant_id, subscription_id)
    except BillingError:
        return None
    return sub if sub.customer_id == found.customer.id else None


async def owned_invoice(session: AsyncSession, found: FoundLogin, invoice_id: str) -> Invoice | None:
    try:
        invoice = await get_invoice(session, found.customer.merchant_id, invoice_id)
    except BillingError:
        return None
    if invoice.customer_id != found.customer.id or invoice.status == "draft":
        return None
    if found.restricted and invoice.id != found.link.flow_target:
        return None
    return invoice


async def owned_payment_method(session: AsyncSession, found: FoundLogin, pm_id: str) -> PaymentMethod | None:
    try:
        pm = await get_payment_method(session, found.customer.merchant_id, pm_id)
    except BillingError:
        return None
    if pm.customer_id != found.customer.id or pm.detached_at is not None:
        return None
    return pm


# --- overview -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemRow:
    """One item of a subscription as the customer pays it each period: the plan first, then the add-ons."""

    name: str
    addon: bool
    quantity: int
    unit_price: str
    amount: str


@dataclass
class SubscriptionView:
    id: str
    plan: str
    status: str
    status_label: str
    tone: str
    quantity: int
    price: str
    period: str | None
    next_invoice: str | None
    ends: str | None = None
    ended: str | None = None
    paused: str | None = None
    reason: str | None = None
    banners: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)
    # With add-ons: every item and what they add up to each period (without, `price` and `quantity` say it all).
    items: list[ItemRow] = field(default_factory=list)
    items_total: str | None = None
    can_change: bool = False
    can_cancel: bool = False
    can_renew: bool = False


_TONES = {
    "active": "good",
    "trialing": "good",
    "past_due": "bad",
    "unpaid": "bad",
    "incomplete": "wait",
    "paused": "wait",
}


async def _open_invoices(session: AsyncSession, found: FoundLogin) -> list[Invoice]:
    rows = await list_invoices(
        session,
        found.customer.merchant_id,
        PageRequest(PAGE),
        filters=InvoiceFilters(customer=found.customer.id, status="open"),
    )
    return [invoice for invoice in rows.rows if invoice.amount_remaining > 0]


def _pay_href(invoice: Invoice) -> str:
    return f"/portal/invoices/{invoice.id}/pay"


async def _items(
    session: AsyncSession, sub: Subscription, plan: Plan, words: Words
) -> tuple[list[ItemRow], str | None]:
    """The subscription's items with their prices per period and their sum, when it has add-ons."""
    if not sub.addon_items:
        return [], None
    priced = [(plan, sub.quantity, False)] + [
        (await get_plan(session, sub.merchant_id, item.plan_id), item.quantity, True)
        for item in sub.addon_items
    ]
    rows = [
        ItemRow(
            name=item_plan.name,
            addon=addon,
            quantity=quantity,
            unit_price=words.price(item_plan, 1),
            amount=words.money(item_fee(item_plan.amount_decimal, quantity), item_plan.currency),
        )
        for item_plan, quantity, addon in priced
    ]
    total = sum(item_fee(item_plan.amount_decimal, quantity) for item_plan, quantity, _ in priced)
    period = interval_words(plan.interval, plan.interval_count, words.locale)
    every = plural(
        "price_per",
        plan.interval_count,
        words.locale,
        amount=words.money(total, plan.currency),
        period=period,
    )
    return rows, every


@dataclass(frozen=True)
class WalletView:
    """A wallet as its owner reads it: what it holds, in money and in credits, what expires next, the top-up."""

    id: str
    name: str | None
    balance: str
    credits: str | None
    expiring: str | None
    auto_top_up: str | None


async def wallet_views(session: AsyncSession, found: FoundLogin, words: Words) -> list[WalletView]:
    """The customer's active wallets."""
    views = []
    for wallet in await customer_wallets(session, found.customer.id):
        views.append(await _wallet_view(session, wallet, words, found.clock.now()))
    return views


async def _wallet_view(session: AsyncSession, wallet: Wallet, words: Words, now: datetime) -> WalletView:
    credits = None
    if wallet.rate_amount != 1:
        count = credits_of(wallet.balance, wallet.rate_amount, currency_exponent(wallet.currency))
        shown = format_decimal(count.normalize(), locale=BABEL_LOCALES.get(words.locale, "en_US"))
        credits = plural("credits_count", 1 if count == 1 else 2, words.locale, credits=shown)
    soonest = next_expiry(ledger.credit_lots(await ledger.live_lots(session, wallet, lock=False)), now)
    rule = wallet.auto_top_up
    return WalletView(
        id=wallet.id,
        name=wallet.name,
        balance=words.money(wallet.balance, wallet.currency),
        credits=credits,
        expiring=text(
            "credits_expire_on",
            words.locale,
            amount=words.money(soonest[1], wallet.currency),
            date=words.day(soonest[0]),
        )
        if soonest
        else None,
        auto_top_up=text(
            "credits_auto_top_up_value",
            words.locale,
            amount=words.money(rule["amount"], wallet.currency),
            threshold=words.money(rule["threshold"], wallet.currency),
        )
        if rule
        else None,
    )


async def overview(
    session: AsyncSession, found: FoundLogin, words: Words, settings: PortalSettings
) -> dict[str, Any]:
    customer = found.customer
    loc = words.locale
    subs = await list_subscriptions(session, customer.merchant_id, PageRequest(PAGE), customer=customer.id)
    open_invoices = await _open_invoices(session, found)
    shown_invoices: set[str] = set()
    live: list[SubscriptionView] = []
    ended: list[SubscriptionView] = []
    now = found.clock.now()
    for sub in subs.rows:
        # The price this customer pays: the subscription's own prices, when it has them.
        plan = priced_plan(await get_plan(session, customer.merchant_id, sub.plan_id), sub.price_overrides)
        view = SubscriptionView(
            id=sub.id,
            plan=plan.name,
            status=sub.status,
            status_label=status_text(sub.status, loc),
            tone=_TONES.get(sub.status, ""),
            quantity=sub.quantity,
            price=words.price(plan, sub.quantity),
            period=words.period(sub.current_period_start, sub.current_period_end)
            if sub.status not in states.ENDED
            else None,
            next_invoice=None,
        )
        view.items, view.items_total = await _items(session, sub, plan, words)
        if sub.status in states.ENDED:
            view.ended = text("ended_on", loc, date=words.day(sub.ended_at or sub.canceled_at or now))
            ended.append(view)
            continue
        # What the next invoice will ask for: add-ons, coupon, taxes, balance and prepaid credits included.
        next_due: str | None = None
        if sub.status in states.RENEWING and not sub.cancel_at_period_end:
            try:
                upcoming = await upcoming_invoice(session, customer.merchant_id, sub.id)
                next_due = words.money(upcoming.amount_due, upcoming.currency)
                view.next_invoice = (
                    text(
                        "next_invoice_after_credits",
                        loc,
                        amount=next_due,
                        date=words.day(upcoming.period_start),
                        credits=words.money(upcoming.prepaid_credit_amount, upcoming.currency),
                    )
                    if upcoming.prepaid_credit_amount
                    else text(
                        "next_invoice_value", loc, amount=next_due, date=words.day(upcoming.period_start)
                    )
                )
            except Conflict:
                view.next_invoice = None
        if sub.cancel_at_period_end:
            view.ends = text("cancels_on", loc, date=words.day(sub.current_period_end))
            view.status_label = text("badge_ends", loc, date=words.day(sub.current_period_end))
            view.tone = "wait"
            view.can_renew = True
            details = sub.cancellation_details or {}
            if details.get("reason"):
                view.reason = text(
                    "cancel_reason_shown", loc, reason=text(f"reason_{details['reason']}", loc)
                )
        if sub.status == states.PAUSED and sub.paused_at is not None:
            view.paused = text("paused_since", loc, date=words.day(sub.paused_at))
        if sub.status == states.TRIALING and sub.trial_end is not None:
            days = max(0, math.ceil((sub.trial_end - now) / timedelta(days=1)))
            banner = [
                text("trial_banner", loc, plan=plan.name, date=words.day(sub.trial_end))
                + " ("
                + plural("days_left", days, loc)
                + ")"
            ]
            amount = next_due or words.money(round_minor(plan.amount_decimal * sub.quantity), plan.currency)
            card = await paying_card(session, customer, sub)
            if sub.cancel_at_period_end:
                pass
            elif sub.collection_method == "send_invoice":
                banner.append(text("trial_invoice", loc, amount=amount))
            elif card is not None:
                banner.append(
                    text("trial_card", loc, card=card_words(card.card_brand, card.card_last4), amount=amount)
                )
            else:
                banner.append(text("trial_no_card", loc))
            links = (
                []
                if card is not None or sub.collection_method == "send_invoice"
                else [(text("update_payment_method", loc), "/portal/payment_methods")]
            )
            view.banners.append((" ".join(banner), links))
        for invoice in open_invoices:
            if invoice.subscription_id != sub.id:
                continue
            shown_invoices.add(invoice.id)
            amount = words.money(invoice.amount_remaining, invoice.currency)
            links = [(text("pay_now", loc), _pay_href(invoice))]
            if sub.status in (states.PAST_DUE, states.UNPAID) or invoice.last_payment_error:
                code = (invoice.last_payment_error or {}).get("code")
                message = text(
                    "past_due_banner",
                    loc,
                    amount=amount,
                    number=invoice.number or invoice.id,
                    reason=words.decline(code),
                )
                message += " " + text("past_due_action", loc)
                if invoice.next_payment_attempt is not None:
                    message += " " + text("next_retry", loc, date=words.day(invoice.next_payment_attempt))
                links.append((text("update_payment_method", loc), "/portal/payment_methods"))
            elif sub.status == states.INCOMPLETE:
                message = text("incomplete_banner", loc, amount=amount)
            elif invoice.due_date is not None:
                message = text(
                    "open_invoice_banner",
                    loc,
                    number=invoice.number,
                    amount=amount,
                    date=words.day(invoice.due_date),
                )
            else:
                message = text("remaining", loc, amount=amount)
            view.banners.append((message, links))
        view.can_change = (
            settings.plan_changes
            and sub.status in (states.ACTIVE, states.TRIALING)
            and not sub.cancel_at_period_end
        )
        view.can_cancel = settings.cancel_mode != "disabled" and not sub.cancel_at_period_end
        live.append(view)
    loose = [invoice for invoice in open_invoices if invoice.id not in shown_invoices]
    loose_banners = [
        (
            text(
                "open_invoice_banner",
                loc,
                number=invoice.number,
                amount=words.money(invoice.amount_remaining, invoice.currency),
                date=words.day(invoice.due_date),
            )
            if invoice.due_date is not None
            else text("remaining", loc, amount=words.money(invoice.amount_remaining, invoice.currency)),
            [(text("pay_now", loc), _pay_href(invoice))],
        )
        for invoice in loose
    ]
    return {
        "live": live,
        "ended": ended,
        "loose_banners": loose_banners,
        "open_count": len(open_invoices),
        "wallets": await wallet_views(session, found, words),
    }


# --- change plan ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanChoice:
    id: str
    name: str
    description: str | None
    price: str
    current: bool


def changeable(sub: Subscription, settings: PortalSettings) -> bool:
    return (
        settings.plan_changes
        and sub.status in (states.ACTIVE, states.TRIALING)
        and not sub.cancel_at_period_end
    )


async def plan_choices(
    session: AsyncSession, found: FoundLogin, sub: Subscription, words: Words
) -> list[PlanChoice]:
    """The plans the merchant offers in the portal, in the subscription's currency, the current one first."""
    merchant_id = found.customer.merchant_id
    current = priced_plan(await get_plan(session, merchant_id, sub.plan_id), sub.price_overrides)
    offered = await list_plans(
        session,
        merchant_id,
        PageRequest(PAGE),
        active=True,
        portal_visible=True,
        currency=current.currency,
    )
    plans = [current] + [plan for plan in reversed(offered.rows) if plan.id != current.id]
    return [
        PlanChoice(
            id=plan.id,
            name=plan.name,
            description=plan.description,
            price=words.price(plan, 1),
            current=plan.id == current.id,
        )
        for plan in plans
    ]


def offered(choices: list[PlanChoice], plan_id: str) -> bool:
    return any(choice.id == plan_id for choice in choices)


# --- payment methods ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MethodRow:
    id: str
    label: str
    expires: str
    default: bool
    status: str
    approve_url: str | None = None
    qr_data_uri: str | None = None
    approve_by: str | None = None
    channel: str | None = None


def channel_name(kind: str, locale: str) -> str:
    english, chinese = CHANNEL_NAMES.get(kind, (kind, kind))
    return chinese if locale == "zh-CN" else english


async def agreement_types(session: AsyncSession, merchant_id: str) -> list[str]:
    """The payment method types besides cards that this merchant can offer: the channels of SPEC §8 (as in
    `PaymentMethodCreate.type`) with a connection taking new agreements (billing.channels)."""
    connections = [c for c in await gateway_connections(session, merchant_id) if c.weight > 0]
    for item in msgspec.structs.fields(PaymentMethodCreate):
        if item.name == "type":
            kinds = [kind for kind in typing.get_args(item.type) if kind != "card"]
            return [kind for kind in kinds if any(serves(c, kind) for c in connections)]
    return []


def method_label(pm: PaymentMethod, locale: str) -> str:
    if pm.type == "card":
        return card_words(pm.card_brand, pm.card_last4) or pm.id
    return channel_name(pm.type, locale)


async def methods(session: AsyncSession, found: FoundLogin, words: Words) -> list[MethodRow]:
    customer = found.customer
    page = await list_payment_methods(session, customer.merchant_id, PageRequest(PAGE), customer=customer.id)
    rows = []
    for pm in page.rows:
        shown: dict[str, Any] = msgspec.to_builtins(render_payment_method(pm))
        status = str(shown.get("status") or "active")
        action = shown.get("next_action") if status == "pending" else None
        url = str(action["url"]) if isinstance(action, dict) and action.get("url") else None
        expires = None
        if isinstance(action, dict) and action.get("expires_at"):
            expires = words.moment(datetime.fromisoformat(str(action["expires_at"])))
        rows.append(
            MethodRow(
                id=pm.id,
                label=method_label(pm, words.locale),
                expires=f"{pm.card_exp_month:02d}/{pm.card_exp_year}" if pm.type == "card" else "",
                default=pm.id == customer.default_payment_method,
                status=status,
                approve_url=url,
                qr_data_uri=segno.make(url, error="l").svg_data_uri(scale=3) if url else None,
                approve_by=expires,
                channel=channel_name(pm.type, words.locale) if pm.type != "card" else None,
            )
        )
    return rows


async def pays_subscription(session: AsyncSession, found: FoundLogin) -> bool:
    """Whether the customer's default payment method pays a live subscription (so it must stay)."""
    subs = await list_subscriptions(
        session, found.customer.merchant_id, PageRequest(PAGE), customer=found.customer.id
    )
    return any(
        sub.status not in states.ENDED and sub.collection_method == "charge_automatically"
        for sub in subs.rows
    )


# --- invoices ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InvoiceRow:
    id: str
    number: str
    date: str
    status: str
    status_label: str
    tone: str
    amount: str
    remaining: str | None
    view_href: str | None
    pdf_href: str | None
    pay_href: str | None


def payable(invoice: Invoice) -> bool:
    return invoice.status in ("open", "uncollectible") and invoice.amount_remaining > 0


async def invoices(session: AsyncSession, found: FoundLogin, words: Words) -> list[InvoiceRow]:
    customer = found.customer
    page = await list_invoices(
        session,
        customer.merchant_id,
        PageRequest(PAGE),
        filters=InvoiceFilters(customer=customer.id),
    )
    rows = []
    for invoice in page.rows:
        if invoice.status == "draft":
            continue
        token = invoice.hosted_token
        rows.append(
            InvoiceRow(
                id=invoice.id,
                number=invoice.number or invoice.id,
                date=words.day(invoice.finalized_at or invoice.created_at),
                status=invoice.status,
                status_label=status_label(invoice.status, words.locale),
                tone={"paid": "good", "open": "wait", "uncollectible": "bad"}.get(invoice.status, ""),
                amount=words.money(invoice.total, invoice.currency),
                remaining=text(
                    "remaining", words.locale, amount=words.money(invoice.amount_remaining, invoice.currency)
                )
                if payable(invoice)
                else None,
                view_href=f"/i/{token}?locale={words.locale}" if token else None,
                pdf_href=f"/i/{token}/pdf?locale={words.locale}" if token else None,
                pay_href=_pay_href(invoice) if payable(invoice) else None,
            )
        )
    return rows


async def chargeable_methods(session: AsyncSession, found: FoundLogin, words: Words) -> list[MethodRow]:
    """The saved methods an invoice can be paid with now (active ones)."""
    if found.restricted:
        return []  # a hosted invoice's payer pays with a card of their own, never with the saved ones
    return [row for row in await methods(session, found, words) if row.status == "active"]


def invoice_summary(invoice: Invoice, words: Words) -> dict[str, Any]:
    return {
        "id": invoice.id,
        "number": invoice.number or invoice.id,
        "amount": words.money(invoice.amount_remaining, invoice.currency),
        "total": words.money(invoice.total, invoice.currency),
        "status_label": status_label(invoice.status, words.locale),
        "tone": {"paid": "good", "open": "wait", "uncollectible": "bad"}.get(invoice.status, ""),
        "due_date": words.day(invoice.due_date) if invoice.due_date is not None else None,
        "hosted_href": f"/i/{invoice.hosted_token}?locale={words.locale}" if invoice.hosted_token else None,
        "payable": payable(invoice),
    }


# --- billing details ----------------------------------------------------------------------------------------------


def billing_details(found: FoundLogin, words: Words) -> dict[str, Any]:
    customer = found.customer
    loc = words.locale
    address = customer.address or {}
    return {
        "name": customer.name or "",
        "email": customer.email or "",
        "address": {
            key: address.get(key) or ""
            for key in ("line1", "line2", "city", "state", "postal_code", "country")
        },
        "address_lines": address_lines(customer.address, loc),
        "countries": sorted(((code, country_name(code, loc)) for code in countries()), key=lambda c: c[1]),
        "tax_ids": [
            {"index": index, "label": tax_id_label(item["type"], loc), "value": item["value"]}
            for index, item in enumerate(customer.tax_ids or [])
        ],
        "tax_types": [(code, tax_id_label(code, loc), kind.example) for code, kind in TAX_ID_TYPES.items()],
    }


def cancellation_reasons(locale: str) -> list[tuple[str, str]]:
    return [(reason, text(f"reason_{reason}", locale)) for reason in CANCELLATION_REASONS]
