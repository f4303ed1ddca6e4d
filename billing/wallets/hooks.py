"""What wallets do when invoices move: burn credits at finalization, grant bought credits when their invoice is
paid, give back what a voided invoice burned; and when a customer is deleted. Listeners of the invoices' and
customers' hook points, subscribed in billing/wiring.py."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.customers.hooks import CustomerDeleted
from billing.invoices.hooks import InvoiceChanged, InvoicedAlone, InvoiceEstimate, InvoicesPaid
from billing.invoices.models import Invoice
from billing.wallets import ledger
from billing.wallets.models import Wallet, WalletTransaction
from billing.wallets.service import TOP_UP_REASON, active_wallet, end_wallet


async def burn_for_invoice(event: InvoiceChanged) -> None:
    """Take the customer's live credits in the invoice's currency off its amount due, before any card is charged.
    The wallet row is locked: two invoices finalizing at once burn one after the other, never the same credit."""
    session, invoice, clock = event.session, event.invoice, event.clock
    if invoice.billing_reason == TOP_UP_REASON or invoice.amount_due == 0:
        return
    wallet = await active_wallet(session, invoice.customer_id, invoice.currency, for_update=True)
    if wallet is None:
        return
    burned = await ledger.burn(session, wallet, invoice.amount_due, clock, invoice_id=invoice.id)
    if burned is None:
        return
    invoice.prepaid_credit_amount = -burned.amount
    invoice.amount_due += burned.amount
    invoice.amount_remaining = invoice.amount_due
    await ledger.check_ledger(session, wallet)


async def estimate_burn(asked: InvoiceEstimate) -> None:
    """What `burn_for_invoice` would take off an upcoming invoice at its finalization, from the wallet as it is
    now (a top-up bought meanwhile, or another invoice burning first, changes it)."""
    wallet = await active_wallet(asked.session, asked.customer_id, asked.currency)
    if wallet is not None:
        asked.prepaid_credit_amount = await ledger.estimated_burn(
            asked.session, wallet, asked.amount_due, asked.at
        )


async def customers_with_wallets(asked: InvoicedAlone) -> None:
    if not asked.customer_ids:
        return
    found = await asked.session.scalars(
        select(Wallet.customer_id).where(
            Wallet.customer_id.in_(asked.customer_ids), Wallet.status == "active", Wallet.balance > 0
        )
    )
    asked.alone |= set(found.all())


async def _entries_of(session: AsyncSession, invoice: Invoice, kind: str) -> list[WalletTransaction]:
    return list(
        (
            await session.scalars(
                select(WalletTransaction)
                .where(WalletTransaction.invoice_id == invoice.id, WalletTransaction.kind == kind)
                .order_by(WalletTransaction.seq)
            )
        ).all()
    )


async def _locked_wallet(session: AsyncSession, wallet_id: str) -> Wallet:
    wallet = await session.scalar(select(Wallet).where(Wallet.id == wallet_id).with_for_update())
    assert wallet is not None
    return wallet


async def grant_purchased_credits(event: InvoicesPaid) -> None:
    """The invoice selling credits was paid: the credits count from now (even if the wallet was terminated
    meanwhile, the money was taken: they are granted, then voided with the rest if it is)."""
    session, clock = event.session, event.clock
    for invoice in event.invoices:
        if invoice.billing_reason != TOP_UP_REASON:
            continue
        for entry in await _entries_of(session, invoice, "purchased"):
            wallet = await _locked_wallet(session, entry.wallet_id)
            await ledger.settle_purchase(session, wallet, entry, clock, paid=True)
            if wallet.status != "active":
                await ledger.take_out(
                    session, wallet, "voided", await ledger.live_lots(session, wallet), clock
                )
            await ledger.check_ledger(session, wallet)


async def undo_for_voided_invoice(event: InvoiceChanged) -> None:
    """A voided invoice sells no credits (its purchase fails) and keeps none it burned (they are given back)."""
    session, invoice, clock = event.session, event.invoice, event.clock
    if invoice.status != "void":
        return  # uncollectible: the credits stay burned, a purchase may still be paid
    for entry in await _entries_of(session, invoice, "purchased"):
        wallet = await _locked_wallet(session, entry.wallet_id)
        await ledger.settle_purchase(session, wallet, entry, clock, paid=False)
    for entry in await _entries_of(session, invoice, "burned"):
        wallet = await _locked_wallet(session, entry.wallet_id)
        if wallet.status == "active":
            await ledger.restore_burn(session, wallet, entry, clock)
        await ledger.check_ledger(session, wallet)


async def end_wallets_of_deleted_customer(event: CustomerDeleted) -> None:
    """A deleted customer's wallets end with it: their credits are voided (as Lago terminates them)."""
    session, customer, clock = event.session, event.customer, event.clock
    wallets = await session.scalars(
        select(Wallet)
        .where(Wallet.customer_id == customer.id, Wallet.status == "active")
        .order_by(Wallet.id)
        .with_for_update()
    )
    for wallet in wallets.all():
        await end_wallet(session, wallet, clock)
