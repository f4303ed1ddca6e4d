"""Payment method and token use cases: one function each, in the caller's transaction, events staged inside it.

Card numbers arrive here, are checked, go into the vault, and from then on only their display fields travel.
The CVC is returned to the route, which hands it to the CVC holder after commit (billing.vault.cvc); it is
never put on a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import SYSTEM_CLOCK, Clock, utc_now
from billing.customers.models import Customer
from billing.customers.service import get_customer, render_customer
from billing.db.lookup import equals, get_owned, list_owned
from billing.db.pagination import Page, PageRequest
from billing.errors import InvalidRequest, not_found
from billing.ids import is_valid_id, new_id
from billing.metadata import merge_metadata, validate_metadata
from billing.payment_methods.hooks import PaymentMethodChosen, payment_method_added
from billing.payment_methods.models import CARD, EXPIRED, PENDING, CardToken, PaymentMethod
from billing.payment_methods.rendering import render_payment_method
from billing.payment_methods.schemas import PaymentMethodCreate, PaymentMethodUpdate, TokenCreate
from billing.risk.service import Subject, check_risk
from billing.test_clocks.service import clock_for
from billing.vault.cards import SecretPan, check_card, check_expiry
from billing.vault.models import VaultEntry
from billing.vault.service import Vault, destroy_entries, get_entry
from webhooks.outbox import previous_attributes, record_event

TOKEN_LIFETIME = timedelta(minutes=15)


@dataclass(frozen=True)
class EnteredCard:
    """A card that was just typed in: its vault row, and its CVC to hold for the first authorization."""

    entry: VaultEntry
    cvc: str | None


async def create_token(
    session: AsyncSession, merchant_id: str, params: TokenCreate, vault: Vault, *, ip: str | None = None
) -> tuple[CardToken, EnteredCard]:
    """Tokenize a card entered client-side (publishable key): single use, valid for 15 minutes. The risk check
    runs first (per card and per IP: a token has no customer yet)."""
    now = utc_now()
    card, cvc = check_card(
        params.card.number, params.card.exp_month, params.card.exp_year, params.card.cvc, now
    )
    token_id = new_id("tok")
    fingerprint = await vault.card_fingerprint(merchant_id, card.pan)
    await check_risk(
        session,
        merchant_id,
        Subject(type="token", id=token_id, customer=None, fingerprint=fingerprint, ip=ip),
        SYSTEM_CLOCK,
    )
    entry = await vault.store(session, merchant_id, card.pan)
    token = CardToken(
        id=token_id,
        merchant_id=merchant_id,
        card_brand=card.brand,
        card_last4=card.last4,
        card_exp_month=card.exp_month,
        card_exp_year=card.exp_year,
        vault_entry_id=entry.id,
        created_at=now,
        expires_at=now + TOKEN_LIFETIME,
    )
    session.add(token)
    await session.flush()
    return token, EnteredCard(entry=entry, cvc=cvc)


async def _consume_token(
    session: AsyncSession, merchant_id: str, token_id: str
) -> tuple[CardToken, VaultEntry]:
    if not is_valid_id(token_id, "tok"):
        raise not_found("token", token_id, "token")
    token = await session.scalar(
        select(CardToken)
        .where(CardToken.id == token_id, CardToken.merchant_id == merchant_id)
        .with_for_update()
    )
    if token is None:
        raise not_found("token", token_id, "token")
    if token.used_at is not None:
        raise InvalidRequest(
            f"Token {token_id} was already used. Tokens are single use: tokenize the card again.",
            code="token_already_used",
            param="token",
        )
    entry = await get_entry(session, token.vault_entry_id) if token.vault_entry_id else None
    if token.expires_at <= utc_now() or entry is None:
        raise InvalidRequest(
            f"Token {token_id} has expired (tokens are valid for {int(TOKEN_LIFETIME.total_seconds() // 60)} "
            "minutes). Tokenize the card again.",
            code="token_expired",
            param="token",
        )
    token.used_at = utc_now()
    token.vault_entry_id = None
    return token, entry


async def create_payment_method(
    session: AsyncSession,
    merchant_id: str,
    params: PaymentMethodCreate,
    vault: Vault,
    *,
    ip: str | None = None,
) -> tuple[PaymentMethod, EnteredCard]:
    """Attach a card to a customer, from card details or from a token (agreements: billing.payment_methods.
    agreements.create_agreement), once the risk check allows it (a block is a card_error)."""
    if params.type != CARD:
        raise InvalidRequest(f"{params.type} payment methods are agreements, not cards.", param="type")
    if params.agreement is not None:
        raise InvalidRequest(
            "agreement is for agreement payment methods (type alipay, wechat_pay, unionpay or ecny); a card takes card or token.",
            code="parameters_exclusive",
            param="agreement",
        )
    if (params.card is None) == (params.token is None):
        raise InvalidRequest(
            "Give exactly one of card (the card details) or token (a tok_ from POST /v1/tokens).",
            code="parameter_missing" if params.card is None else "parameters_exclusive",
            param="card" if params.card is None else "token",
        )
    customer = await get_customer(session, merchant_id, params.customer, param="customer")
    clock = await clock_for(session, merchant_id, customer.test_clock_id)
    now = clock.now()
    pan: SecretPan
    if params.card is not None:
        card, cvc = check_card(
            params.card.number, params.card.exp_month, params.card.exp_year, params.card.cvc, now
        )
        entry = await vault.store(session, merchant_id, card.pan)
        pan, brand, exp_month, exp_year = card.pan, card.brand, card.exp_month, card.exp_year
        entered = EnteredCard(entry=entry, cvc=cvc)
    else:
        assert params.token is not None
        token, entry = await _consume_token(session, merchant_id, params.token)
        # The token's card was valid in real time; the customer may live in a test clock's future.
        check_expiry(token.card_exp_month, token.card_exp_year, now)
        pan, brand = vault.reveal(entry), token.card_brand
        exp_month, exp_year = token.card_exp_month, token.card_exp_year
        entered = EnteredCard(entry=entry, cvc=None)
    pm = PaymentMethod(
        id=new_id("pm"),
        merchant_id=merchant_id,
        customer_id=customer.id,
        type="card",
        card_brand=brand,
        card_last4=pan.last4,
        card_exp_month=exp_month,
        card_exp_year=exp_year,
        card_fingerprint=await vault.card_fingerprint(merchant_id, pan),
        vault_entry_id=entry.id,
        metadata_=validate_metadata(params.metadata),
        created_at=now,
        updated_at=now,
    )
    session.add(pm)
    await session.flush()
    await check_risk(
        session,
        merchant_id,
        Subject(type="payment_method", id=pm.id, customer=customer, fingerprint=pm.card_fingerprint, ip=ip),
        clock,
    )
    record_event(
        session,
        merchant_id=merchant_id,
        event_type="payment_method.attached",
        obj=render_payment_method(pm),
        clock=clock,
    )
    # SPEC §6: a new payment method retries the customer's unpaid invoices at once (API and portal alike).
    await payment_method_added.fire(
        PaymentMethodChosen(session, merchant_id, customer.id, clock, payment_method=pm.id)
    )
    return pm, entered


async def get_payment_method(
    session: AsyncSession,
    merchant_id: str,
    payment_method_id: str,
    *,
    param: str | None = None,
    for_update: bool = False,
) -> PaymentMethod:
    return await get_owned(
        session,
        PaymentMethod,
        payment_method_id,
        merchant_id=merchant_id,
        prefix="pm",
        kind="payment method",
        param=param,
        for_update=for_update,
    )


async def _customer_clock(session: AsyncSession, pm: PaymentMethod) -> tuple[Customer, Clock]:
    customer = await session.scalar(select(Customer).where(Customer.id == pm.customer_id))
    assert customer is not None
    return customer, await clock_for(session, pm.merchant_id, customer.test_clock_id)


async def update_payment_method(
    session: AsyncSession, merchant_id: str, payment_method_id: str, params: PaymentMethodUpdate
) -> PaymentMethod:
    pm = await get_payment_method(session, merchant_id, payment_method_id, for_update=True)
    if pm.detached_at is not None:
        raise InvalidRequest(
            f"Payment method {pm.id} is detached and cannot be changed. Attach a new payment method instead.",
            code="payment_method_detached",
        )
    _, clock = await _customer_clock(session, pm)
    before = msgspec.to_builtins(render_payment_method(pm))
    if params.card is not msgspec.UNSET:
        if pm.type != CARD or pm.card_exp_month is None or pm.card_exp_year is None:
            raise InvalidRequest(
                f"Payment method {pm.id} is a {pm.type} agreement: only cards have an expiry date to update.",
                param="card",
            )
        month = pm.card_exp_month if params.card.exp_month is msgspec.UNSET else params.card.exp_month
        year = pm.card_exp_year if params.card.exp_year is msgspec.UNSET else params.card.exp_year
        pm.card_exp_month, pm.card_exp_year = check_expiry(month, year, clock.now())
    if params.metadata is not msgspec.UNSET:
        pm.metadata_ = merge_metadata(pm.metadata_, params.metadata)
    pm.updated_at = clock.now()
    await session.flush()
    after = render_payment_method(pm)
    previous = previous_attributes(before, after)
    if previous:
        record_event(
            session,
            merchant_id=merchant_id,
            event_type="payment_method.updated",
            obj=after,
            clock=clock,
            previous_attributes=previous,
        )
    return pm


async def detach_payment_method(
    session: AsyncSession, merchant_id: str, payment_method_id: str
) -> tuple[PaymentMethod, str | None]:
    """Detach for good: the card number is destroyed, the customer's default cleared. Returns the payment method
    and the destroyed vault entry's id (its held CVC, if any, is discarded after commit)."""
    pm = await get_payment_method(session, merchant_id, payment_method_id, for_update=True)
    if pm.detached_at is not None:
        raise InvalidRequest(
            f"Payment method {pm.id} is already detached.", code="payment_method_not_attached"
        )
    customer, clock = await _customer_clock(session, pm)
    entry_id = pm.vault_entry_id
    pm.detached_at = clock.now()
    pm.updated_at = clock.now()
    pm.vault_entry_id = None
    await session.flush()
    if entry_id is not None:
        await destroy_entries(session, [entry_id])
    if customer.default_payment_method == pm.id:
        before = render_customer(customer)
        customer.default_payment_method = None
        customer.updated_at = clock.now()
        await session.flush()
        record_event(
            session,
            merchant_id=merchant_id,
            event_type="customer.updated",
            obj=render_customer(customer),
            clock=clock,
            previous_attributes={"default_payment_method": before.default_payment_method},
        )
    record_event(
        session,
        merchant_id=merchant_id,
        event_type="payment_method.detached",
        obj=render_payment_method(pm),
        clock=clock,
    )
    return pm, entry_id


async def list_payment_methods(
    session: AsyncSession, merchant_id: str, page: PageRequest, *, customer: str | None = None
) -> Page[PaymentMethod]:
    """Attached payment methods, newest first; of one customer when `customer` is given."""
    if customer is not None:
        await get_customer(session, merchant_id, customer, param="customer")
    filters = (PaymentMethod.detached_at.is_(None), equals(PaymentMethod.customer_id, customer))
    return await list_owned(session, PaymentMethod, merchant_id, filters, page, prefix="pm")


async def chargeable_payment_method(
    session: AsyncSession, merchant_id: str, customer: Customer, payment_method_id: str | None
) -> tuple[PaymentMethod, VaultEntry | None]:
    """The payment method to charge: the one named, or the customer's default, attached to this customer. A card
    comes with its vault entry (its number must still be there); an agreement must have been approved (a revoked
    one is returned: its debits are declined before they reach the channel)."""
    chosen = payment_method_id or customer.default_payment_method
    if chosen is None:
        raise InvalidRequest(
            f"Customer {customer.id} has no default payment method. Attach a card or sign an agreement "
            "(POST /v1/payment_methods) and set it as default_payment_method, or name a payment method.",
            code="payment_method_missing",
            param="payment_method",
        )
    pm = await get_payment_method(session, merchant_id, chosen, param="payment_method")
    if pm.customer_id != customer.id or pm.detached_at is not None:
        raise InvalidRequest(
            f"Payment method {pm.id} is not attached to customer {customer.id}. Attach a payment method to this "
            "customer first.",
            code="payment_method_not_attached",
            param="payment_method",
        )
    if pm.type != CARD:
        if pm.status in (PENDING, EXPIRED):
            raise InvalidRequest(
                f"Payment method {pm.id} is a {pm.type} agreement the customer has not approved"
                f"{' in time' if pm.status == EXPIRED else ' yet'}: it can debit once it is active (event "
                "payment_method.activated). Show the customer its next_action, or create a new one.",
                code=f"payment_method_{pm.status}",
                param="payment_method",
            )
        return pm, None
    entry = await get_entry(session, pm.vault_entry_id) if pm.vault_entry_id is not None else None
    if entry is None:
        raise InvalidRequest(
            f"Payment method {pm.id} has no card number any more. Attach a new card.",
            code="payment_method_not_attached",
            param="payment_method",
        )
    return pm, entry
