"""The customer balance ledger as the API shows it: read its entries, and adjust a balance by hand. Entries are
written by `billing.invoices.service.record_balance_change` only (finalization, voids, credit notes, these
adjustments), in the transaction that moves `customers.balance`, so the ledger always adds up to the balance."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.credit_notes import schemas
from billing.credit_notes.models import CreditNote
from billing.customers.service import get_customer
from billing.db.lookup import list_owned
from billing.db.pagination import Page, PageRequest
from billing.errors import InvalidRequest
from billing.invoices.models import CustomerBalanceTransaction
from billing.invoices.service import record_balance_change
from billing.test_clocks.service import clock_for
from plans.money import validate_currency


def render_balance_transaction(
    entry: CustomerBalanceTransaction, credit_note_id: str | None = None
) -> schemas.CustomerBalanceTransaction:
    return schemas.CustomerBalanceTransaction(
        id=entry.id,
        created_at=entry.created_at,
        customer=entry.customer_id,
        type=entry.type,
        amount=entry.amount,
        ending_balance=entry.ending_balance,
        currency=entry.currency,
        invoice=entry.invoice_id,
        credit_note=credit_note_id,
        description=entry.description,
    )


async def credit_notes_of(session: AsyncSession, entry_ids: list[str]) -> dict[str, str]:
    """The credit note behind each ledger entry that one wrote (entry id → credit note id)."""
    if not entry_ids:
        return {}
    rows = await session.execute(
        select(CreditNote.customer_balance_transaction_id, CreditNote.id).where(
            CreditNote.customer_balance_transaction_id.in_(entry_ids)
        )
    )
    return {entry_id: note_id for entry_id, note_id in rows.all() if entry_id is not None}


async def list_balance_transactions(
    session: AsyncSession, merchant_id: str, customer_id: str, page: PageRequest
) -> Page[CustomerBalanceTransaction]:
    customer = await get_customer(session, merchant_id, customer_id)
    filters = (CustomerBalanceTransaction.customer_id == customer.id,)
    return await list_owned(session, CustomerBalanceTransaction, merchant_id, filters, page, prefix="cbt")


async def adjust_balance(
    session: AsyncSession,
    merchant_id: str,
    customer_id: str,
    params: schemas.CustomerBalanceTransactionCreate,
) -> CustomerBalanceTransaction:
    """Move a customer's balance by hand (negative: a credit the next invoices consume), as one ledger entry."""
    if params.amount == 0:
        raise InvalidRequest(
            "amount must not be 0: negative credits the customer, positive debits it.", param="amount"
        )
    try:
        currency = validate_currency(params.currency)
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="currency") from None
    customer = await get_customer(session, merchant_id, customer_id, for_update=True)
    currency_was: dict[str, object] = {}
    if customer.currency is None:
        # As Stripe: the first balance in a currency gives the customer that currency.
        currency_was["currency"] = None
        customer.currency = currency
    elif customer.currency != currency:
        raise InvalidRequest(
            f"Customer {customer.id} is billed in {customer.currency}; its balance is in that currency too. "
            f"Pass currency {customer.currency}.",
            param="currency",
        )
    clock = await clock_for(session, merchant_id, customer.test_clock_id)
    entry = await record_balance_change(
        session,
        customer,
        params.amount,
        kind="adjustment",
        clock=clock,
        currency=currency,
        description=params.description,
        also_changed=currency_was,
    )
    await session.flush()
    return entry
