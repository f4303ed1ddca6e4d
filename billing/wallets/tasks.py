"""Scheduled work of wallets: granted credits expire at their expiry; a burn that crossed the automatic top-up
threshold invoices the top-up. Both idempotent: they look at the rows under lock and act at most once."""

from __future__ import annotations

from sqlalchemy import select

from billing.customers.models import Customer
from billing.scheduler.registry import TaskContext
from billing.wallets import ledger
from billing.wallets.models import Wallet, WalletTransaction
from billing.wallets.service import purchase_credits


async def expire_credits_task(ctx: TaskContext) -> None:
    """What is left of one grant at its expiry leaves the wallet as an `expired` entry."""
    session = ctx.session
    payload = ctx.payload_as(ledger.ExpireCreditsPayload)
    wallet_id = await session.scalar(
        select(WalletTransaction.wallet_id).where(WalletTransaction.id == payload.wallet_transaction)
    )
    if wallet_id is None:
        return
    wallet = await session.scalar(select(Wallet).where(Wallet.id == wallet_id).with_for_update())
    lot = await session.scalar(
        select(WalletTransaction)
        .where(WalletTransaction.id == payload.wallet_transaction)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert wallet is not None and lot is not None
    if (
        lot.status != "settled"
        or not lot.remaining
        or lot.expires_at is None
        or lot.expires_at > ctx.clock.now()
    ):
        return
    await ledger.take_out(session, wallet, "expired", [lot], ctx.clock)
    await ledger.check_ledger(session, wallet)


async def auto_top_up_task(ctx: TaskContext) -> None:
    """Invoice the wallet's automatic top-up, once for the burn that crossed its threshold."""
    session = ctx.session
    payload = ctx.payload_as(ledger.AutoTopUpPayload)
    wallet = await session.scalar(select(Wallet).where(Wallet.id == payload.wallet))
    if wallet is None:
        return
    # Customer first, then wallet: the order finalization locks them in.
    customer = await session.scalar(
        select(Customer).where(Customer.id == wallet.customer_id).with_for_update()
    )
    wallet = await session.scalar(
        select(Wallet)
        .where(Wallet.id == wallet.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert wallet is not None and customer is not None
    rule = wallet.auto_top_up
    if wallet.status != "active" or not rule or customer.deleted_at is not None:
        return
    trigger = payload.trigger
    if await session.scalar(select(WalletTransaction.id).where(WalletTransaction.trigger_id == trigger)):
        return
    await purchase_credits(
        session,
        wallet,
        customer,
        rule["amount"],
        ctx.clock,
        trigger_id=trigger,
        description="Automatic top-up",
    )
