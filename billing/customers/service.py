"""Customer use cases: one function each, one transaction (the caller's), the event staged inside it."""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.customers import hooks, schemas
from billing.customers.billing_details import clean_address, clean_tax_ids
from billing.customers.models import Customer
from billing.customers.schemas import CustomerCreate, CustomerUpdate, DeletedCustomer
from billing.db.lookup import equals, get_owned, list_owned
from billing.db.pagination import Page, PageRequest
from billing.errors import Conflict, InvalidRequest
from billing.ids import new_id
from billing.metadata import merge_metadata, validate_metadata
from billing.payment_methods.hooks import PaymentMethodChosen, payment_method_added
from billing.payment_methods.models import PaymentMethod
from billing.test_clocks.service import as_clock, clock_for, get_test_clock, refuse_in_production
from plans.calendar import validate_timezone
from plans.money import validate_currency
from webhooks.outbox import previous_attributes, record_event


def render_customer(customer: Customer) -> schemas.Customer:
    return schemas.Customer(
        id=customer.id,
        created_at=customer.created_at,
        email=customer.email,
        name=customer.name,
        currency=customer.currency,
        timezone=customer.timezone,
        locale=customer.locale,
        external_id=customer.external_id,
        balance=customer.balance,
        default_payment_method=customer.default_payment_method,
        test_clock=customer.test_clock_id,
        address=msgspec.convert(customer.address, schemas.Address) if customer.address else None,
        tax_ids=[schemas.TaxId(type=t["type"], value=t["value"]) for t in customer.tax_ids or []],
        metadata=customer.metadata_,
    )


def _address(address: schemas.Address | None) -> dict[str, str] | None:
    return clean_address(msgspec.to_builtins(address)) if address is not None else None


def _tax_ids(tax_ids: list[schemas.TaxId]) -> list[dict[str, str]]:
    return clean_tax_ids([(t.type, t.value) for t in tax_ids])


async def _external_id_taken(
    session: AsyncSession, merchant_id: str, external_id: str, *, except_id: str | None = None
) -> str | None:
    stmt = select(Customer.id).where(
        Customer.merchant_id == merchant_id,
        Customer.external_id == external_id,
        Customer.deleted_at.is_(None),
    )
    if except_id is not None:
        stmt = stmt.where(Customer.id != except_id)
    return await session.scalar(stmt)


def _external_id_conflict(external_id: str, existing_id: str | None) -> Conflict:
    owner = f" ({existing_id})" if existing_id else ""
    return Conflict(
        f"A customer with external_id {external_id!r} already exists{owner}. Retrieve or update that "
        "customer instead, or choose another external_id.",
        code="external_id_taken",
        param="external_id",
    )


async def _flush_unique(session: AsyncSession, external_id: str | None) -> None:
    """Flush, turning a lost race on the external_id unique index into the same 409 as the pre-check."""
    try:
        await session.flush()
    except IntegrityError as exc:
        if external_id is not None and "uq_customers_merchant_external_id" in str(exc.orig):
            raise _external_id_conflict(external_id, None) from None
        raise


async def create_customer(
    session: AsyncSession, merchant_id: str, params: CustomerCreate, *, production: bool
) -> Customer:
    clock: Clock
    if params.test_clock is not None:
        refuse_in_production(production)
        test_clock = await get_test_clock(session, merchant_id, params.test_clock, param="test_clock")
        clock = as_clock(test_clock)
    else:
        clock = await clock_for(session, merchant_id, None)
    if params.external_id is not None and (
        taken := await _external_id_taken(session, merchant_id, params.external_id)
    ):
        raise _external_id_conflict(params.external_id, taken)
    now = clock.now()
    customer = Customer(
        id=new_id("cus"),
        merchant_id=merchant_id,
        email=params.email,
        name=params.name,
        currency=validate_currency(params.currency) if params.currency is not None else None,
        timezone=validate_timezone(params.timezone).key,
        locale=params.locale,
        external_id=params.external_id,
        balance=0,
        test_clock_id=params.test_clock,
        address=_address(params.address),
        tax_ids=_tax_ids(params.tax_ids),
        metadata_=validate_metadata(params.metadata),
        created_at=now,
        updated_at=now,
    )
    session.add(customer)
    await _flush_unique(session, params.external_id)
    record_event(
        session,
        merchant_id=merchant_id,
        event_type="customer.created",
        obj=render_customer(customer),
        clock=clock,
    )
    return customer


async def get_customer(
    session: AsyncSession,
    merchant_id: str,
    customer_id: str,
    *,
    param: str | None = None,
    for_update: bool = False,
) -> Customer:
    """The merchant's live customer with that id; NotFound for another merchant's id, a deleted or unknown one."""
    return await get_owned(
        session,
        Customer,
        customer_id,
        merchant_id=merchant_id,
        prefix="cus",
        kind="customer",
        param=param,
        for_update=for_update,
        where=(Customer.deleted_at.is_(None),),
    )


async def update_customer(
    session: AsyncSession, merchant_id: str, customer_id: str, params: CustomerUpdate
) -> Customer:
    customer = await get_customer(session, merchant_id, customer_id, for_update=True)
    clock = await clock_for(session, merchant_id, customer.test_clock_id)
    before = msgspec.to_builtins(render_customer(customer))
    changes: dict[str, Any] = {}
    for name in ("email", "name", "locale"):
        value = getattr(params, name)
        if value is not msgspec.UNSET:
            changes[name] = value
    if params.currency is not msgspec.UNSET:
        changes["currency"] = validate_currency(params.currency) if params.currency is not None else None
    if params.timezone is not msgspec.UNSET:
        changes["timezone"] = validate_timezone(params.timezone).key
    if params.external_id is not msgspec.UNSET:
        if params.external_id is not None and (
            taken := await _external_id_taken(session, merchant_id, params.external_id, except_id=customer.id)
        ):
            raise _external_id_conflict(params.external_id, taken)
        changes["external_id"] = params.external_id
    if params.metadata is not msgspec.UNSET:
        changes["metadata_"] = merge_metadata(customer.metadata_, params.metadata)
    if params.address is not msgspec.UNSET:
        changes["address"] = _address(params.address)
    if params.tax_ids is not msgspec.UNSET:
        changes["tax_ids"] = _tax_ids(params.tax_ids)
    if params.default_payment_method is not msgspec.UNSET:
        if params.default_payment_method is not None:
            await ensure_payment_method_attached(session, customer, params.default_payment_method)
        changes["default_payment_method"] = params.default_payment_method
    for name, value in changes.items():
        setattr(customer, name, value)
    customer.updated_at = clock.now()
    await _flush_unique(session, customer.external_id)
    after = render_customer(customer)
    previous = previous_attributes(before, after)
    if previous:
        record_event(
            session,
            merchant_id=merchant_id,
            event_type="customer.updated",
            obj=after,
            clock=clock,
            previous_attributes=previous,
        )
    if "default_payment_method" in previous and customer.default_payment_method is not None:
        # SPEC §6: choosing another payment method retries the customer's unpaid invoices at once.
        await payment_method_added.fire(
            PaymentMethodChosen(
                session, merchant_id, customer.id, clock, payment_method=customer.default_payment_method
            )
        )
    return customer


async def ensure_payment_method_attached(
    session: AsyncSession,
    customer: Customer,
    payment_method_id: str,
    *,
    param: str = "default_payment_method",
) -> None:
    """A default payment method (the customer's or a subscription's) must be a live payment method of this very
    customer: not another merchant's, not another customer's, not detached, not made up. Else 400 with `param`."""
    status = await session.scalar(
        select(PaymentMethod.status).where(
            PaymentMethod.id == payment_method_id,
            PaymentMethod.merchant_id == customer.merchant_id,
            PaymentMethod.customer_id == customer.id,
            PaymentMethod.detached_at.is_(None),
        )
    )
    if status is None:
        raise InvalidRequest(
            f"{payment_method_id[:64]!r} is not a payment method attached to customer {customer.id}. Attach it "
            "first with POST /v1/payment_methods.",
            code="payment_method_not_attached",
            param=param,
        )
    if status in ("pending", "expired"):
        # A debit agreement the customer has not approved cannot pay anything yet (SPEC §8).
        raise InvalidRequest(
            f"Payment method {payment_method_id} is an agreement the customer has not approved ({status}). Make it "
            "the default once it is active (event payment_method.activated).",
            code=f"payment_method_{status}",
            param="default_payment_method",
        )


async def delete_customer_row(session: AsyncSession, customer: Customer, clock: Clock) -> DeletedCustomer:
    """Delete a locked customer: what depends on it ends first, in this transaction (its live subscriptions end
    with their pending work, its unpaid invoices are written off), so nothing is left that a task could trip on
    (docs/billing.md "Deleting a customer")."""
    await hooks.customer_deleted.fire(hooks.CustomerDeleted(session, customer, clock))
    customer.deleted_at = clock.now()
    await session.flush()
    record_event(
        session,
        merchant_id=customer.merchant_id,
        event_type="customer.deleted",
        obj=render_customer(customer),
        clock=clock,
    )
    return DeletedCustomer(id=customer.id)


async def delete_customer(session: AsyncSession, merchant_id: str, customer_id: str) -> DeletedCustomer:
    """Soft delete: the row stays for the invoices that name it; the id answers 404 from now on. Its live
    subscriptions end now, as Stripe does (see delete_customer_row)."""
    customer = await get_customer(session, merchant_id, customer_id, for_update=True)
    clock = await clock_for(session, merchant_id, customer.test_clock_id)
    return await delete_customer_row(session, customer, clock)


async def list_customers(
    session: AsyncSession,
    merchant_id: str,
    page: PageRequest,
    *,
    email: str | None = None,
    external_id: str | None = None,
    test_clock: str | None = None,
) -> Page[Customer]:
    filters = (
        Customer.deleted_at.is_(None),
        equals(Customer.email, email),
        equals(Customer.external_id, external_id),
        equals(Customer.test_clock_id, test_clock),
    )
    return await list_owned(session, Customer, merchant_id, filters, page, prefix="cus")
