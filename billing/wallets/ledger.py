"""Every movement of a wallet goes through here: one ledger entry, the wallet's balance moved by it, the events
in the caller's transaction (the wallet row locked by the caller). Low-balance and depleted notices and the
automatic top-up are decided here, on the way down."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.errors import ApiError
from billing.ids import new_id
from billing.scheduler.registry import TaskPayload
from billing.scheduler.runner import schedule_task
from billing.wallets import schemas
from billing.wallets.models import Wallet, WalletTransaction
from plans.credits import CreditLot, credits_of, crossed_below, prepaid_credit_applied
from plans.money import currency_exponent
from webhooks.outbox import record_event

CREDIT_KINDS = ("granted", "purchased", "restored")
# Scheduled task kinds (handlers in billing.wallets.tasks).
EXPIRE = "wallet.expire_credits"
AUTO_TOP_UP = "wallet.auto_top_up"


class ExpireCreditsPayload(TaskPayload):
    """A `wallet.expire_credits` task: what is left of one grant leaves the wallet at its expiry."""

    wallet_transaction: str


class AutoTopUpPayload(TaskPayload):
    """A `wallet.auto_top_up` task: invoice the wallet's automatic top-up, once for the movement `trigger` that
    crossed its threshold."""

    wallet: str
    trigger: str


def render_wallet(wallet: Wallet) -> schemas.Wallet:
    rule = wallet.auto_top_up
    return schemas.Wallet(
        id=wallet.id,
        created_at=wallet.created_at,
        customer=wallet.customer_id,
        name=wallet.name,
        currency=wallet.currency,
        rate_amount=format(wallet.rate_amount.normalize(), "f"),
        status=cast(schemas.WalletStatus, wallet.status),  # the table's check constraint holds it to these
        balance=wallet.balance,
        credits_balance=str(
            credits_of(wallet.balance, wallet.rate_amount, currency_exponent(wallet.currency))
        ),
        auto_top_up=schemas.AutoTopUp(threshold=rule["threshold"], amount=rule["amount"]) if rule else None,
        terminated_at=wallet.terminated_at,
        metadata=wallet.metadata_,
    )


def render_transaction(entry: WalletTransaction) -> schemas.WalletTransaction:
    return schemas.WalletTransaction(
        id=entry.id,
        created_at=entry.created_at,
        wallet=entry.wallet_id,
        kind=cast(schemas.TransactionKind, entry.kind),
        status=cast(schemas.TransactionStatus, entry.status),
        amount=entry.amount,
        remaining=entry.remaining,
        expires_at=entry.expires_at,
        invoice=entry.invoice_id,
        description=entry.description,
        settled_at=entry.settled_at,
    )


def _entry(wallet: Wallet, kind: str, amount: int, clock: Clock, **fields: Any) -> WalletTransaction:
    return WalletTransaction(
        id=new_id("wtx"),
        merchant_id=wallet.merchant_id,
        wallet_id=wallet.id,
        kind=kind,
        amount=amount,
        created_at=clock.now(),
        **fields,
    )


async def _moved(
    session: AsyncSession, wallet: Wallet, before: int, clock: Clock, entry: WalletTransaction
) -> None:
    """Stage wallet.updated for a balance that `entry` moved from `before`; on a fall of an active wallet, the
    notices, and the automatic top-up when it crossed the threshold: one per crossing, keyed by `entry` (a task
    run twice, or the task and a retry, buy once)."""
    wallet.updated_at = clock.now()
    rendered = render_wallet(wallet)
    record_event(
        session,
        merchant_id=wallet.merchant_id,
        event_type="wallet.updated",
        obj=rendered,
        clock=clock,
        previous_attributes={"balance": before},
    )
    if wallet.status != "active":
        return
    rule = wallet.auto_top_up
    if rule and crossed_below(before, wallet.balance, rule["threshold"]):
        record_event(
            session,
            merchant_id=wallet.merchant_id,
            event_type="wallet.low_balance",
            obj=rendered,
            clock=clock,
        )
        await schedule_task(
            session,
            merchant_id=wallet.merchant_id,
            kind=AUTO_TOP_UP,
            due_at=clock.now(),
            clock=clock,
            payload=AutoTopUpPayload(wallet=wallet.id, trigger=entry.id),
            dedupe_key=f"wallet-top-up:{entry.id}",
        )
    if before > 0 and wallet.balance == 0:
        record_event(
            session, merchant_id=wallet.merchant_id, event_type="wallet.depleted", obj=rendered, clock=clock
        )


async def _created(session: AsyncSession, entry: WalletTransaction, clock: Clock) -> None:
    session.add(entry)
    await session.flush()
    record_event(
        session,
        merchant_id=entry.merchant_id,
        event_type="wallet_transaction.created",
        obj=render_transaction(entry),
        clock=clock,
    )


async def add_credits(
    session: AsyncSession,
    wallet: Wallet,
    kind: str,
    amount: int,
    clock: Clock,
    *,
    settled: bool = True,
    expires_at: datetime | None = None,
    invoice_id: str | None = None,
    trigger_id: str | None = None,
    description: str | None = None,
) -> WalletTransaction:
    """Credits in. Settled at once (a grant), or pending until its invoice is paid (a purchase)."""
    assert kind in CREDIT_KINDS and amount > 0
    entry = _entry(
        wallet,
        kind,
        amount,
        clock,
        status="settled" if settled else "pending",
        remaining=amount,
        expires_at=expires_at,
        invoice_id=invoice_id,
        trigger_id=trigger_id,
        description=description,
        settled_at=clock.now() if settled else None,
    )
    await _created(session, entry, clock)
    if settled:
        await _credited(session, wallet, entry, clock)
    return entry


async def _credited(session: AsyncSession, wallet: Wallet, entry: WalletTransaction, clock: Clock) -> None:
    before = wallet.balance
    wallet.balance += entry.amount
    await _moved(session, wallet, before, clock, entry)
    if entry.expires_at is not None:
        await schedule_task(
            session,
            merchant_id=wallet.merchant_id,
            kind=EXPIRE,
            due_at=entry.expires_at,
            clock=clock,
            payload=ExpireCreditsPayload(wallet_transaction=entry.id),
            dedupe_key=f"wallet-expire:{entry.id}",
        )


async def settle_purchase(
    session: AsyncSession, wallet: Wallet, entry: WalletTransaction, clock: Clock, *, paid: bool
) -> None:
    """A pending purchase's invoice was paid (the credits count from now) or closed unpaid (they never will)."""
    if entry.status != "pending":
        return
    entry.status = "settled" if paid else "failed"
    entry.settled_at = clock.now()
    if not paid:
        entry.remaining = 0
    await session.flush()
    record_event(
        session,
        merchant_id=wallet.merchant_id,
        event_type="wallet_transaction.updated",
        obj=render_transaction(entry),
        clock=clock,
        previous_attributes={"status": "pending"},
    )
    if paid:
        await _credited(session, wallet, entry, clock)


async def live_lots(session: AsyncSession, wallet: Wallet, *, lock: bool = True) -> list[WalletTransaction]:
    """The wallet's settled credits with something left, locked unless only read for an estimate (the caller
    locks the wallet row when it moves them)."""
    stmt = (
        select(WalletTransaction)
        .where(
            WalletTransaction.wallet_id == wallet.id,
            WalletTransaction.kind.in_(CREDIT_KINDS),
            WalletTransaction.status == "settled",
            WalletTransaction.remaining > 0,
        )
        .order_by(WalletTransaction.seq)
    )
    return list((await session.scalars(stmt.with_for_update() if lock else stmt)).all())


def credit_lots(lots: list[WalletTransaction]) -> list[CreditLot]:
    """Ledger entries of credits in, as the pure rules of `plans.credits` read them."""
    return [CreditLot(lot.id, lot.remaining or 0, lot.expires_at, lot.seq) for lot in lots]


async def estimated_burn(session: AsyncSession, wallet: Wallet, amount_due: int, at: datetime) -> int:
    """What finalizing an invoice with `amount_due` at `at` would burn of the wallet as it stands now (the same
    pure rule as `burn`; credits expired by `at` count for nothing)."""
    drawn = prepaid_credit_applied(amount_due, credit_lots(await live_lots(session, wallet, lock=False)), at)
    return sum(amount for _, amount in drawn)


async def burn(
    session: AsyncSession, wallet: Wallet, wanted: int, clock: Clock, *, invoice_id: str
) -> WalletTransaction | None:
    """Take up to `wanted` of live credit for the invoice, soonest-expiring first; None when nothing was taken."""
    lots = await live_lots(session, wallet)
    by_id = {lot.id: lot for lot in lots}
    drawn = prepaid_credit_applied(wanted, credit_lots(lots), clock.now())
    taken = sum(amount for _, amount in drawn)
    if taken == 0:
        return None
    for lot_id, amount in drawn:
        by_id[lot_id].remaining = (by_id[lot_id].remaining or 0) - amount
    entry = _entry(
        wallet,
        "burned",
        -taken,
        clock,
        status="settled",
        invoice_id=invoice_id,
        details={"drawn": [[lot_id, amount] for lot_id, amount in drawn]},
        settled_at=clock.now(),
    )
    await _created(session, entry, clock)
    before = wallet.balance
    wallet.balance -= taken
    await _moved(session, wallet, before, clock, entry)
    return entry


async def take_out(
    session: AsyncSession, wallet: Wallet, kind: str, lots: list[WalletTransaction], clock: Clock
) -> WalletTransaction | None:
    """Remove what is left of `lots` (locked) as one entry: expired, or voided when the wallet ends."""
    amount = sum(lot.remaining or 0 for lot in lots)
    if amount == 0:
        return None
    for lot in lots:
        lot.remaining = 0
    entry = _entry(wallet, kind, -amount, clock, status="settled", settled_at=clock.now())
    await _created(session, entry, clock)
    before = wallet.balance
    wallet.balance -= amount
    await _moved(session, wallet, before, clock, entry)
    return entry


async def restore_burn(
    session: AsyncSession, wallet: Wallet, burned: WalletTransaction, clock: Clock
) -> None:
    """Give back what a burn took for an invoice now voided: to each credit it drew on that has not expired, as
    a `restored` entry with that credit's expiry (credits past their expiry stay gone, as they would have)."""
    lots = {
        lot.id: lot
        for lot in (
            await session.scalars(
                select(WalletTransaction).where(
                    WalletTransaction.id.in_([lot_id for lot_id, _ in burned.details.get("drawn", [])])
                )
            )
        ).all()
    }
    for lot_id, amount in burned.details.get("drawn", []):
        lot = lots[lot_id]
        if lot.expires_at is not None and lot.expires_at <= clock.now():
            continue
        await add_credits(
            session,
            wallet,
            "restored",
            amount,
            clock,
            expires_at=lot.expires_at,
            invoice_id=burned.invoice_id,
            description=f"Credits of {lot_id} given back: invoice {burned.invoice_id} was voided",
        )


async def check_ledger(session: AsyncSession, wallet: Wallet) -> None:
    """The balance is what the settled entries add up to, and what the credits in have left: else refuse."""
    total, left = (
        await session.execute(
            select(
                func.coalesce(func.sum(WalletTransaction.amount), 0),
                func.coalesce(func.sum(WalletTransaction.remaining), 0),
            ).where(WalletTransaction.wallet_id == wallet.id, WalletTransaction.status == "settled")
        )
    ).one()
    if not (int(total or 0) == int(left or 0) == wallet.balance):
        raise ApiError(
            f"Wallet {wallet.id}'s ledger does not add up (entries {total}, credit left {left}, balance "
            f"{wallet.balance}); nothing was saved."
        )
