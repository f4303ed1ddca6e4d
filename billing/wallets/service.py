"""Wallet use cases: create, top up (paid or granted), update, terminate, read. Each runs in the caller's
transaction with the customer and wallet rows locked, and writes its events there."""

from __future__ import annotations

from datetime import datetime

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.customers.models import Customer
from billing.customers.service import get_customer
from billing.db.lookup import get_owned, list_owned
from billing.db.pagination import Page, PageRequest
from billing.errors import Conflict, InvalidRequest
from billing.ids import new_id
from billing.invoices import collection
from billing.invoices import service as invoices
from billing.invoices.service import NewLine
from billing.metadata import validate_metadata
from billing.test_clocks.service import clock_for
from billing.wallets import ledger, schemas
from billing.wallets.models import Wallet, WalletTransaction
from plans.credits import parse_rate_amount
from plans.money import validate_currency
from webhooks.outbox import record_event

# The billing_reason of the invoice that sells credits (never paid with credits itself).
TOP_UP_REASON = "wallet_top_up"
TOP_UP_LINE = "Prepaid credits / 预付额度"


async def get_wallet(
    session: AsyncSession, merchant_id: str, customer_id: str, wallet_id: str, *, for_update: bool = False
) -> Wallet:
    customer = await get_customer(session, merchant_id, customer_id)
    return await get_owned(
        session,
        Wallet,
        wallet_id,
        merchant_id=merchant_id,
        prefix="wlt",
        kind="wallet",
        for_update=for_update,
        where=(Wallet.customer_id == customer.id,),
    )


async def active_wallet(
    session: AsyncSession, customer_id: str, currency: str, *, for_update: bool = False
) -> Wallet | None:
    stmt = select(Wallet).where(
        Wallet.customer_id == customer_id, Wallet.currency == currency, Wallet.status == "active"
    )
    return await session.scalar(stmt.with_for_update() if for_update else stmt)


def _expiry(expires_at: datetime | None, clock: Clock, *, param: str) -> datetime | None:
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        raise InvalidRequest(f"{param} needs a time zone, e.g. 2027-03-01T00:00:00Z.", param=param)
    if expires_at <= clock.now():
        raise InvalidRequest(
            f"{param} {expires_at.isoformat()} is not in the future (now is {clock.now().isoformat()}): "
            "credits must be usable before they expire.",
            param=param,
        )
    return expires_at


async def create_wallet(
    session: AsyncSession, merchant_id: str, customer_id: str, params: schemas.WalletCreate
) -> Wallet:
    """A wallet in one currency for the customer, with its first credits granted and/or invoiced."""
    try:
        currency = validate_currency(params.currency)
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="currency") from None
    rate = parse_rate_amount(params.rate_amount)
    customer = await get_customer(session, merchant_id, customer_id, for_update=True)
    if customer.currency is not None and customer.currency != currency:
        raise InvalidRequest(
            f"Customer {customer.id} is billed in {customer.currency}: a wallet in {currency} would never be "
            f"burned. Create the wallet with currency {customer.currency}.",
            param="currency",
        )
    clock = await clock_for(session, merchant_id, customer.test_clock_id)
    expires_at = _expiry(params.granted_expires_at, clock, param="granted_expires_at")
    if expires_at is not None and params.granted_amount is None:
        raise InvalidRequest(
            "granted_expires_at goes with granted_amount: pass the free credits that expire.",
            param="granted_expires_at",
        )
    if await active_wallet(session, customer.id, currency) is not None:
        raise Conflict(
            f"Customer {customer.id} already has an active wallet in {currency}: top it up "
            "(POST .../wallets/{id}/top_up), or terminate it first.",
            code="wallet_exists",
        )
    now = clock.now()
    wallet = Wallet(
        id=new_id("wlt"),
        merchant_id=merchant_id,
        customer_id=customer.id,
        name=params.name,
        currency=currency,
        rate_amount=rate,
        status="active",
        balance=0,
        auto_top_up=_rule(params.auto_top_up),
        metadata_=validate_metadata(params.metadata),
        created_at=now,
        updated_at=now,
    )
    session.add(wallet)
    await session.flush()
    record_event(
        session,
        merchant_id=merchant_id,
        event_type="wallet.created",
        obj=ledger.render_wallet(wallet),
        clock=clock,
    )
    await _top_up(
        session,
        wallet,
        customer,
        clock,
        paid=params.paid_amount,
        granted=params.granted_amount,
        expires_at=expires_at,
    )
    return wallet


def _rule(rule: schemas.AutoTopUp | None) -> dict[str, int] | None:
    return {"threshold": rule.threshold, "amount": rule.amount} if rule is not None else None


async def top_up_wallet(
    session: AsyncSession, merchant_id: str, customer_id: str, wallet_id: str, params: schemas.WalletTopUp
) -> Wallet:
    """Free credits at once (with an optional expiry), and/or an invoice whose payment grants bought credits."""
    if params.paid_amount is None and params.granted_amount is None:
        raise InvalidRequest(
            "Pass paid_amount (credits bought through an invoice) or granted_amount (free credits), or both.",
            param="paid_amount",
        )
    if params.expires_at is not None and params.granted_amount is None:
        raise InvalidRequest(
            "expires_at applies to granted credits: pass granted_amount with it (bought credits never expire).",
            param="expires_at",
        )
    customer = await get_customer(session, merchant_id, customer_id, for_update=True)
    wallet = await get_wallet(session, merchant_id, customer.id, wallet_id, for_update=True)
    _must_be_active(wallet)
    clock = await clock_for(session, merchant_id, customer.test_clock_id)
    await _top_up(
        session,
        wallet,
        customer,
        clock,
        paid=params.paid_amount,
        granted=params.granted_amount,
        expires_at=_expiry(params.expires_at, clock, param="expires_at"),
        description=params.description,
    )
    return wallet


def _must_be_active(wallet: Wallet) -> None:
    if wallet.status != "active":
        raise Conflict(
            f"Wallet {wallet.id} is terminated: it takes no more credits. Create a new wallet.",
            code="wallet_terminated",
        )


async def _top_up(
    session: AsyncSession,
    wallet: Wallet,
    customer: Customer,
    clock: Clock,
    *,
    paid: int | None,
    granted: int | None,
    expires_at: datetime | None,
    description: str | None = None,
) -> None:
    if granted is not None:
        await ledger.add_credits(
            session, wallet, "granted", granted, clock, expires_at=expires_at, description=description
        )
    if paid is not None:
        await purchase_credits(session, wallet, customer, paid, clock, description=description)
    await ledger.check_ledger(session, wallet)


async def purchase_credits(
    session: AsyncSession,
    wallet: Wallet,
    customer: Customer,
    amount: int,
    clock: Clock,
    *,
    trigger_id: str | None = None,
    description: str | None = None,
) -> WalletTransaction:
    """An invoice for `amount`, charged automatically, and the pending purchase its payment settles
    (billing.wallets.hooks). Returns the purchase; its invoice is collected by its collection task."""
    invoice = await invoices.create_draft(
        session,
        customer=customer,
        clock=clock,
        currency=wallet.currency,
        collection_method="charge_automatically",
        days_until_due=None,
        lines=[
            NewLine(type="adjustment", description=TOP_UP_LINE, amount=amount, details={"wallet": wallet.id})
        ],
        billing_reason=TOP_UP_REASON,
        description=description,
    )
    entry = await ledger.add_credits(
        session,
        wallet,
        "purchased",
        amount,
        clock,
        settled=False,
        invoice_id=invoice.id,
        trigger_id=trigger_id,
        description=description,
    )
    invoice = await invoices.finalize_invoice(session, wallet.merchant_id, invoice.id)
    await collection.request_collection(
        session, invoice, clock, payment_method=customer.default_payment_method
    )
    return entry


async def update_wallet(
    session: AsyncSession, merchant_id: str, customer_id: str, wallet_id: str, params: schemas.WalletUpdate
) -> Wallet:
    wallet = await get_wallet(session, merchant_id, customer_id, wallet_id, for_update=True)
    _must_be_active(wallet)
    clock = await clock_for(
        session, merchant_id, (await get_customer(session, merchant_id, customer_id)).test_clock_id
    )
    previous: dict[str, object] = {}
    if params.name is not msgspec.UNSET and params.name != wallet.name:
        previous["name"], wallet.name = wallet.name, params.name
    if params.auto_top_up is not msgspec.UNSET:
        rule = _rule(params.auto_top_up)
        if rule != wallet.auto_top_up:
            previous["auto_top_up"], wallet.auto_top_up = wallet.auto_top_up, rule
    if params.metadata is not msgspec.UNSET:
        metadata = validate_metadata(params.metadata)
        if metadata != wallet.metadata_:
            previous["metadata"], wallet.metadata_ = wallet.metadata_, metadata
    if previous:
        wallet.updated_at = clock.now()
        await session.flush()
        record_event(
            session,
            merchant_id=merchant_id,
            event_type="wallet.updated",
            obj=ledger.render_wallet(wallet),
            clock=clock,
            previous_attributes=previous,
        )
    return wallet


async def terminate_wallet(
    session: AsyncSession, merchant_id: str, customer_id: str, wallet_id: str
) -> Wallet:
    """End the wallet: what is left of its credits is voided (one `voided` entry); pending purchases whose
    invoices are still unpaid stay pending and are voided when paid."""
    customer = await get_customer(session, merchant_id, customer_id, for_update=True)
    wallet = await get_wallet(session, merchant_id, customer.id, wallet_id, for_update=True)
    _must_be_active(wallet)
    clock = await clock_for(session, merchant_id, customer.test_clock_id)
    await end_wallet(session, wallet, clock)
    return wallet


async def end_wallet(session: AsyncSession, wallet: Wallet, clock: Clock) -> None:
    """Terminate a locked active wallet: void what is left of its credits, write wallet.terminated."""
    wallet.status = "terminated"
    wallet.terminated_at = clock.now()
    await ledger.take_out(session, wallet, "voided", await ledger.live_lots(session, wallet), clock)
    await ledger.check_ledger(session, wallet)
    await session.flush()
    record_event(
        session,
        merchant_id=wallet.merchant_id,
        event_type="wallet.terminated",
        obj=ledger.render_wallet(wallet),
        clock=clock,
    )


async def list_wallets(
    session: AsyncSession, merchant_id: str, customer_id: str, page: PageRequest
) -> Page[Wallet]:
    customer = await get_customer(session, merchant_id, customer_id)
    return await list_owned(
        session, Wallet, merchant_id, (Wallet.customer_id == customer.id,), page, prefix="wlt"
    )


async def customer_wallets(session: AsyncSession, customer_id: str) -> list[Wallet]:
    """The customer's active wallets (one per currency at most), by currency: what the customer can spend."""
    found = await session.scalars(
        select(Wallet)
        .where(Wallet.customer_id == customer_id, Wallet.status == "active")
        .order_by(Wallet.currency)
    )
    return list(found.all())


async def list_transactions(
    session: AsyncSession, merchant_id: str, customer_id: str, wallet_id: str, page: PageRequest
) -> Page[WalletTransaction]:
    wallet = await get_wallet(session, merchant_id, customer_id, wallet_id)
    filters = (WalletTransaction.wallet_id == wallet.id,)
    return await list_owned(session, WalletTransaction, merchant_id, filters, page, prefix="wtx")


async def purchase_invoices(session: AsyncSession, wallet_id: str) -> set[str]:
    """The invoices of the wallet's purchases still pending."""
    found = await session.scalars(
        select(WalletTransaction.invoice_id).where(
            WalletTransaction.wallet_id == wallet_id,
            WalletTransaction.kind == "purchased",
            WalletTransaction.status == "pending",
        )
    )
    return {invoice_id for invoice_id in found.all() if invoice_id is not None}
