"""What the portal's forms do, for the customer of a login only: each one calls the same use case as the API
(change, cancel, update a customer, attach or detach a payment method, collect an invoice), in the caller's
transaction, after checking that every id it is given belongs to this customer.

A refusal is a `PortalRefusal` whose words the page shows; nothing of the action is left behind (the caller's
transaction rolls back). Charges run after commit (`collect_now`), outside any transaction, as the API does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from billing.customers.billing_details import TAX_ID_TYPES, clean_address, clean_tax_id, tax_id_label
from billing.customers.schemas import Address, CustomerUpdate, TaxId
from billing.customers.service import update_customer
from billing.db.engine import KeptWrite, take_kept_writes
from billing.errors import BillingError, InvalidRequest
from billing.gateways.registry import GatewayPool
from billing.invoices import collection
from billing.invoices.models import Invoice
from billing.payment_methods import agreements
from billing.payment_methods.models import PaymentMethod
from billing.payment_methods.schemas import CardInput, PaymentMethodCreate
from billing.payment_methods.service import EnteredCard, create_payment_method, detach_payment_method
from billing.payments.models import Payment
from billing.portal import views
from billing.portal.service import FoundLogin
from billing.portal.texts import CANCELLATION_REASONS, card_error, text
from billing.services import Services
from billing.settings.schemas import PortalSettings
from billing.subscriptions import schemas as subscription_schemas
from billing.subscriptions import states
from billing.subscriptions.service import cancel_subscription, change_subscription, update_subscription
from billing.vault.service import Vault

MAX_QUANTITY = 1_000_000


class PortalRefusal(Exception):
    """The action cannot be done as asked: `key` names the words to show (billing.portal.texts)."""

    def __init__(
        self,
        key: str,
        status: int = 400,
        message: str | None = None,
        code: str | None = None,
        **values: object,
    ) -> None:
        super().__init__(key)
        self.key = key
        self.status = status
        self.message = message
        self.code = code
        self.values = values
        # Records the refused work kept for after its rollback (a risk decision): submit writes them.
        self.kept: list[KeptWrite] = []

    def keeping(self, kept: list[KeptWrite]) -> PortalRefusal:
        self.kept = kept
        return self

    def words(self, locale: str) -> str:
        if self.key == "card_invalid":
            return text("card_invalid", locale, reason=card_error(self.code, self.message, locale))
        if self.key == "tax_id_invalid":
            return text("tax_id_invalid", locale, kind=tax_id_label(self.code or "", locale), **self.values)
        if self.key == "not_saved":
            return text("not_saved", locale, reason=self.message or "")
        return text(self.key, locale, **self.values)


class NotTheirs(Exception):
    """An id that is not this customer's (or does not exist): the page answers "not found"."""


# --- subscriptions ----------------------------------------------------------------------------------------------


def parse_quantity(raw: object) -> int:
    value = str(raw or "").strip()
    if not value.isdigit() or not 1 <= int(value) <= MAX_QUANTITY:
        raise PortalRefusal("quantity_invalid")
    return int(value)


def change_params(
    settings: PortalSettings, plan_id: str, quantity: int
) -> subscription_schemas.SubscriptionChange:
    """The change the portal makes: now, with the merchant's proration behaviour (settings.portal)."""
    return subscription_schemas.SubscriptionChange(
        plan=plan_id, quantity=quantity, proration_behavior=settings.proration_behavior, effective="now"
    )


async def checked_change(
    session: AsyncSession,
    found: FoundLogin,
    settings: PortalSettings,
    subscription_id: str,
    plan_id: str,
    quantity: int,
    words: views.Words,
) -> subscription_schemas.SubscriptionChange:
    """The change asked for, once it is known to be allowed: this customer's changeable subscription, a plan
    the merchant offers in the portal (or the current one), and something different from now."""
    sub = await views.owned_subscription(session, found, subscription_id)
    if sub is None:
        raise NotTheirs
    if not views.changeable(sub, settings):
        raise PortalRefusal("change_not_allowed", 409)
    choices = await views.plan_choices(session, found, sub, words)
    if not views.offered(choices, plan_id):
        raise PortalRefusal("plan_unavailable")
    if plan_id == sub.plan_id and quantity == sub.quantity:
        raise PortalRefusal("same_as_now")
    return change_params(settings, plan_id, quantity)


async def change_plan(
    session: AsyncSession,
    found: FoundLogin,
    subscription_id: str,
    params: subscription_schemas.SubscriptionChange,
) -> str | None:
    """Make the change (checked by `checked_change`); the id of the invoice it made now, if any."""
    before = await views.owned_subscription(session, found, subscription_id)
    assert before is not None
    latest = before.latest_invoice_id
    try:
        sub = await change_subscription(session, found.customer.merchant_id, subscription_id, params)
    except BillingError as error:
        raise PortalRefusal("change_not_allowed", 409, message=error.message) from None
    return sub.latest_invoice_id if sub.latest_invoice_id != latest else None


CancelWhen = Literal["period_end", "now"]


def cancel_params(
    settings: PortalSettings, when: str, reason: str | None, comment: str | None
) -> subscription_schemas.SubscriptionCancel:
    if when not in ("period_end", "now") or (
        when == "now" and settings.cancel_mode != "at_period_end_or_now"
    ):
        when = "period_end"
    if reason not in CANCELLATION_REASONS:
        reason = None
    comment = (comment or "").strip() or None
    if comment is not None and len(comment) > 1000:
        raise PortalRefusal("comment_too_long")
    details = subscription_schemas.CancellationDetails(reason=reason, comment=comment)  # type: ignore[arg-type]
    return subscription_schemas.SubscriptionCancel(
        at_period_end=when == "period_end",
        prorate=when == "now" and settings.cancel_now_prorate,
        cancellation_details=details,
    )


async def cancel(
    session: AsyncSession,
    found: FoundLogin,
    settings: PortalSettings,
    subscription_id: str,
    params: subscription_schemas.SubscriptionCancel,
) -> None:
    sub = await views.owned_subscription(session, found, subscription_id)
    if sub is None:
        raise NotTheirs
    if settings.cancel_mode == "disabled" or sub.status in states.ENDED:
        raise PortalRefusal("cancel_not_allowed", 409)
    try:
        await cancel_subscription(session, found.customer.merchant_id, subscription_id, params)
    except BillingError as error:
        raise PortalRefusal("cancel_not_allowed", 409, message=error.message) from None


async def renew(session: AsyncSession, found: FoundLogin, subscription_id: str) -> None:
    """Undo a cancellation at the period end."""
    sub = await views.owned_subscription(session, found, subscription_id)
    if sub is None:
        raise NotTheirs
    try:
        await update_subscription(
            session,
            found.customer.merchant_id,
            subscription_id,
            subscription_schemas.SubscriptionUpdate(cancel_at_period_end=False),
        )
    except BillingError as error:
        raise PortalRefusal("change_not_allowed", 409, message=error.message) from None


# --- payment methods -----------------------------------------------------------------------------------------------


def card_input(form: Any) -> CardInput:
    """The card typed into a form, or a refusal when a field is missing or not a number."""
    number = str(form.get("number") or "").strip()
    month = str(form.get("exp_month") or "").strip()
    year = str(form.get("exp_year") or "").strip()
    cvc = str(form.get("cvc") or "").strip()
    if not number or not month.isdigit() or not year.isdigit() or len(number) > 40 or len(cvc) > 8:
        raise PortalRefusal("card_fields")
    if len(month) > 2 or len(year) > 4:
        raise PortalRefusal("card_fields")
    return CardInput(number=number, exp_month=int(month), exp_year=int(year), cvc=cvc or None)


async def add_card(
    session: AsyncSession, found: FoundLogin, card: CardInput, vault: Vault, *, make_default: bool
) -> tuple[PaymentMethod, EnteredCard]:
    """Attach `card` to the customer (and make it the default), with the API's use cases, so webhooks and
    dunning see it as they see the API's (a new method retries the invoices dunning is recovering)."""
    customer = found.customer
    savepoint = await session.begin_nested()
    try:
        pm, entered = await create_payment_method(
            session, customer.merchant_id, PaymentMethodCreate(customer=customer.id, card=card), vault
        )
        if make_default:
            await update_customer(
                session, customer.merchant_id, customer.id, CustomerUpdate(default_payment_method=pm.id)
            )
    except BillingError as error:
        await savepoint.rollback()
        kept = take_kept_writes(session)
        # Our card errors name the field and the rule, never the number.
        raise PortalRefusal("card_invalid", message=error.message, code=error.code).keeping(kept) from None
    await savepoint.commit()
    return pm, entered


async def add_agreement(
    session: AsyncSession, found: FoundLogin, kind: str, gateways: GatewayPool
) -> PaymentMethod:
    """Start an agreement payment method (Alipay, WeChat Pay, ...) with the API's use case: pending, with the
    link or QR code the customer approves in the channel (billing.payment_methods.agreements)."""
    customer = found.customer
    if kind not in await views.agreement_types(session, customer.merchant_id):
        raise NotTheirs
    params = PaymentMethodCreate(customer=customer.id, type=kind)  # type: ignore[arg-type]
    savepoint = await session.begin_nested()
    try:
        pm = await agreements.create_agreement(session, customer.merchant_id, params, gateways)
    except BillingError as error:
        await savepoint.rollback()
        kept = take_kept_writes(session)
        raise PortalRefusal("not_saved", message=error.message).keeping(kept) from None
    await savepoint.commit()
    return pm


async def make_default(session: AsyncSession, found: FoundLogin, pm_id: str) -> None:
    pm = await views.owned_payment_method(session, found, pm_id)
    if pm is None:
        raise NotTheirs
    customer = found.customer
    await update_customer(
        session, customer.merchant_id, customer.id, CustomerUpdate(default_payment_method=pm.id)
    )


async def remove(
    session: AsyncSession, found: FoundLogin, pm_id: str, *, pays_subscription: bool, gateways: GatewayPool
) -> str | None:
    """Detach a payment method (for good); the vault entry destroyed, whose held CVC the caller discards; an
    agreement unsigned in its channel first. The default method is kept while a subscription charges it
    automatically."""
    pm = await views.owned_payment_method(session, found, pm_id)
    if pm is None:
        raise NotTheirs
    if pm.id == found.customer.default_payment_method and pays_subscription:
        raise PortalRefusal("cannot_remove_default", 409)
    if pm.type != "card":
        try:
            await agreements.detach_agreement(session, found.customer.merchant_id, pm.id, gateways)
        except BillingError as error:
            raise PortalRefusal("not_saved", message=error.message) from None
        return None
    _, entry_id = await detach_payment_method(session, found.customer.merchant_id, pm.id)
    return entry_id


# --- paying an invoice ------------------------------------------------------------------------------------------


async def start_payment(
    session: AsyncSession, found: FoundLogin, invoice: Invoice, payment_method: str
) -> None:
    """Ask for the invoice to be charged to `payment_method` now (the customer asked: any collection method),
    unless a charge of it is already waiting to run (it runs first)."""
    if await collection.pending_collection(session, invoice.id) is None:
        locked = await session.get(Invoice, invoice.id, with_for_update={"key_share": True})
        assert locked is not None
        await collection.request_collection(
            session, locked, found.clock, payment_method=payment_method, on_request=True
        )


@dataclass(frozen=True)
class Collected:
    invoice: Invoice
    payment: Payment | None


async def collect_now(services: Services, invoice_id: str) -> Collected:
    """Run the invoice's waiting charges at once, as a worker would, with no transaction of ours open and one
    pooled connection at a time (the charge's gateway call holds none, within the process's bound on gateway
    calls), then read where it left the invoice."""
    for _ in range(3):
        async with services.sessions() as session:
            task_id = await collection.pending_collection(session, invoice_id)
        if task_id is None:
            break
        ran = await collection.collect_now(services, task_id)
        if not ran:
            continue
        async with services.sessions() as session:
            invoice = await session.get(Invoice, invoice_id)
            if invoice is None or invoice.status != "open":
                break
            latest = await collection.latest_payment(session, invoice_id)
            if latest is not None and latest.status in ("pending", "failed"):
                break
    async with services.sessions() as session:
        invoice = await session.get(Invoice, invoice_id)
        assert invoice is not None
        return Collected(invoice, await collection.latest_payment(session, invoice_id))


# --- billing details ---------------------------------------------------------------------------------------------


def _field(form: Any, name: str, limit: int) -> str | None:
    value = str(form.get(name) or "").strip()
    if len(value) > limit:
        raise PortalRefusal("field_too_long")
    return value or None


async def save_billing_details(session: AsyncSession, found: FoundLogin, form: Any) -> None:
    """Name, email, address and an added tax id, through the API's customer update (its validation)."""
    name = _field(form, "name", 256)
    email = _field(form, "email", 320)
    if email is not None and ("@" not in email or "." not in email.rpartition("@")[2] or " " in email):
        raise PortalRefusal("email_invalid")
    fields = {key: _field(form, key, 200) for key in ("line1", "line2", "city", "state", "postal_code")}
    fields["country"] = _field(form, "country", 2)
    try:
        address = clean_address(fields)
    except InvalidRequest:
        raise PortalRefusal("country_required") from None
    tax_ids = list(found.customer.tax_ids or [])
    tax_type, tax_value = _field(form, "tax_type", 20), _field(form, "tax_value", 64)
    if tax_type and tax_value:
        kind = TAX_ID_TYPES.get(tax_type)
        if kind is None:
            raise NotTheirs
        try:
            tax_ids.append(clean_tax_id(tax_type, tax_value, param="tax_id"))
        except InvalidRequest:
            raise PortalRefusal("tax_id_invalid", code=tax_type, example=kind.example) from None
    try:
        update = CustomerUpdate(
            name=name,
            email=email,
            address=msgspec.convert(address, Address) if address else None,
            tax_ids=[TaxId(type=t["type"], value=t["value"]) for t in tax_ids],
        )
        await update_customer(session, found.customer.merchant_id, found.customer.id, update)
    except BillingError as error:
        raise PortalRefusal("not_saved", message=error.message) from None


async def remove_tax_id(session: AsyncSession, found: FoundLogin, index: int) -> None:
    tax_ids = list(found.customer.tax_ids or [])
    if not 0 <= index < len(tax_ids):
        raise NotTheirs
    del tax_ids[index]
    await update_customer(
        session,
        found.customer.merchant_id,
        found.customer.id,
        CustomerUpdate(tax_ids=[TaxId(type=t["type"], value=t["value"]) for t in tax_ids]),
    )
