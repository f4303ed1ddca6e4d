"""Beginning and finishing a set of charges together (a collection batch, issue 13 item 2), each exactly as
`service.begin_payment` and `service.finish_payment` do it alone, with every input read once for the set.

`begin_payments`, in the caller's transaction (committed before any charge is made): the payments that exist
for the orders' attempt keys, their customers, payment methods and vault entries are read with one query each;
each merchant's settings (gateway connections, risk rules) and open circuits once; the pending rows are written
with one statement and their `payment.created` events beside them; the risk check decides them in order with one
grouped count (billing.risk.batch). An order out of the ordinary (an agreement, a missing or detached payment
method, a customer on another clock, a payment already live for its purpose) is begun alone by `begin_payment`,
in a savepoint of its own, so its error (or anything unexpected) is its own.

`finish_payments`, in the caller's transaction: the calls of every charge logged in one statement (and each
breaker moved once), the payments locked with one query, the outcomes applied and flushed together.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.customers.models import Customer
from billing.errors import BillingError
from billing.gateways.base import ConnectionConfig
from billing.gateways.registry import serves
from billing.gateways.routing import (
    LoggedCall,
    RouteResult,
    open_circuits,
    order_connections,
    record_call_log,
)
from billing.merchants.models import Merchant
from billing.payment_methods.models import CARD, PaymentMethod
from billing.payments.models import Payment
from billing.payments.service import (
    PaymentOrder,
    PendingCharge,
    after_risk,
    apply_charge_outcome,
    begin_payment,
    checked_order,
    pending_charge,
    pending_values,
    render_payment,
)
from billing.risk.batch import check_risks
from billing.risk.service import Subject
from billing.services import Services
from billing.settings.service import merchant_connections, risk_settings
from billing.vault.models import VaultEntry
from webhooks.outbox import record_event

log = logging.getLogger("billing.payments.batch")

Begun = Payment | PendingCharge | BillingError


@dataclass
class _Planned:
    """An ordinary card charge of the set, read and routed, before its row is written."""

    index: int
    order: PaymentOrder
    customer: Customer
    pm: PaymentMethod
    entry: VaultEntry
    route: list[ConnectionConfig]
    clock: Clock
    values: dict[str, object]


async def begin_payments(
    session: AsyncSession, services: Services, orders: Sequence[PaymentOrder]
) -> list[Begun]:
    """Step 1 of each order's charge (see begin_payment), in the caller's transaction: per order, in order, the
    payment that already exists for its attempt (never charged again), the new pending row as a PendingCharge,
    a payment the risk check failed or held, or the BillingError that refused the order."""
    results: dict[int, Begun] = {}
    keys: dict[int, str] = {}
    for index, order in enumerate(orders):
        try:
            _, keys[index] = checked_order(order)
        except BillingError as error:
            results[index] = error
    existing = await _existing(session, [(orders[i]["merchant_id"], key) for i, key in keys.items()])
    for index, key in keys.items():
        if (orders[index]["merchant_id"], key) in existing:
            results[index] = existing[(orders[index]["merchant_id"], key)]
    planned, alone, merchants = await _plan(session, orders, [i for i in keys if i not in results])
    planned, clashed = await _insert(session, planned)
    alone += clashed
    await _decide(session, planned, merchants, results)
    for index in sorted(alone):
        results[index] = await _begin_alone(session, services, orders[index])
    return [results[index] for index in range(len(orders))]


async def _existing(session: AsyncSession, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Payment]:
    """The payments of these (merchant, attempt key) pairs that exist: one query per merchant."""
    found: dict[tuple[str, str], Payment] = {}
    for merchant_id in sorted({merchant for merchant, _ in keys}):
        rows = await session.scalars(
            select(Payment).where(
                Payment.merchant_id == merchant_id,
                Payment.attempt_key.in_(sorted({key for merchant, key in keys if merchant == merchant_id})),
            )
        )
        found.update({(row.merchant_id, row.attempt_key): row for row in rows})
    return found


async def _plan(
    session: AsyncSession, orders: Sequence[PaymentOrder], indexes: list[int]
) -> tuple[list[_Planned], list[int], dict[str, Merchant]]:
    """The ordinary card charges among `indexes`, read and routed with a fixed number of queries, the indexes of
    the others (begun alone), and the merchants read."""
    if not indexes:
        return [], [], {}
    customers = {
        c.id: c
        for c in await session.scalars(
            select(Customer).where(Customer.id.in_({orders[i]["customer_id"] for i in indexes}))
        )
    }
    chosen = {
        i: orders[i].get("payment_method")
        or getattr(customers.get(orders[i]["customer_id"]), "default_payment_method", None)
        for i in indexes
    }
    pms = {
        pm.id: pm
        for pm in await session.scalars(
            select(PaymentMethod).where(
                PaymentMethod.id.in_({pm for pm in chosen.values() if pm is not None})
            )
        )
    }
    entry_ids = {pm.vault_entry_id for pm in pms.values() if pm.vault_entry_id is not None}
    entries = {
        e.id: e
        for e in (
            await session.scalars(select(VaultEntry).where(VaultEntry.id.in_(entry_ids))) if entry_ids else []
        )
    }
    merchants = {
        m.id: m
        for m in await session.scalars(
            select(Merchant).where(Merchant.id.in_({orders[i]["merchant_id"] for i in indexes}))
        )
    }
    routes: dict[str, tuple[list[ConnectionConfig], set[str]]] = {}
    for merchant_id, merchant in sorted(merchants.items()):
        cards = [c for c in merchant_connections(merchant) if serves(c, CARD)]
        routes[merchant_id] = (cards, await open_circuits(session, merchant_id, [c.id for c in cards]))
    planned: list[_Planned] = []
    alone: list[int] = []
    for i in indexes:
        order = orders[i]
        customer = customers.get(order["customer_id"])
        pm = pms.get(chosen[i] or "")
        entry = entries.get(pm.vault_entry_id or "") if pm is not None else None
        clock = order.get("clock")
        route = order_connections(*routes[order["merchant_id"]]) if order["merchant_id"] in routes else []
        if (
            customer is None
            or customer.merchant_id != order["merchant_id"]
            or customer.deleted_at is not None
            or clock is None
            or clock.test_clock_id != customer.test_clock_id
            or pm is None
            or pm.merchant_id != order["merchant_id"]
            or pm.customer_id != customer.id
            or pm.detached_at is not None
            or pm.type != CARD
            or entry is None
            or not route
        ):
            alone.append(i)  # its error, or its clock, agreement or route, as begin_payment finds them
            continue
        currency, _ = checked_order(order)
        values = pending_values(order, currency, customer, pm, route, clock)
        planned.append(_Planned(i, order, customer, pm, entry, route, clock, values))
    return planned, alone, merchants


async def _insert(session: AsyncSession, planned: list[_Planned]) -> tuple[list[_Planned], list[int]]:
    """Write the pending rows in one statement. Rows another worker inserted first (same attempt key), or a set
    that clashes with a payment live for its purpose, are begun alone (which finds or refuses them)."""
    if not planned:
        return [], []
    savepoint = await session.begin_nested()
    try:
        inserted = set(
            (
                # The rows as parameters beside the statement (batched by SQLAlchemy's insertmanyvalues), not one
                # VALUES list compiled with every row's parameters.
                await session.scalars(
                    insert(Payment)
                    .on_conflict_do_nothing(index_elements=["merchant_id", "attempt_key"])
                    .returning(Payment.id),
                    [p.values for p in planned],
                )
            ).all()
        )
        await savepoint.commit()
    except IntegrityError:
        await savepoint.rollback()
        return [], [p.index for p in planned]
    return [p for p in planned if p.values["id"] in inserted], [
        p.index for p in planned if p.values["id"] not in inserted
    ]


async def _decide(
    session: AsyncSession, planned: list[_Planned], merchants: dict[str, Merchant], results: dict[int, Begun]
) -> None:
    """Load the new rows, stage their payment.created events, and pass them through the risk check (per merchant
    and clock, in order)."""
    if not planned:
        return
    payments = {
        p.id: p
        for p in await session.scalars(
            select(Payment).where(Payment.id.in_([p.values["id"] for p in planned]))
        )
    }
    groups: dict[tuple[str, str | None], list[_Planned]] = {}
    for p in planned:
        payment = payments[str(p.values["id"])]
        record_event(
            session,
            merchant_id=payment.merchant_id,
            event_type="payment.created",
            obj=render_payment(payment),
            clock=p.clock,
        )
        groups.setdefault((payment.merchant_id, p.clock.test_clock_id), []).append(p)
    for (merchant_id, _), group in groups.items():
        decisions = await check_risks(
            session,
            merchant_id,
            risk_settings(merchants[merchant_id].settings or {}),
            [
                Subject(
                    type="payment",
                    id=str(p.values["id"]),
                    customer=p.customer,
                    fingerprint=p.pm.card_fingerprint,
                    amount=p.order["amount"],
                    currency=str(p.values["currency"]),
                    ip=p.order.get("ip"),
                )
                for p in group
            ],
            group[0].clock,
        )
        for p, decision in zip(group, decisions, strict=True):
            payment = payments[str(p.values["id"])]
            results[p.index] = await after_risk(
                session,
                payment,
                decision,
                pending_charge(p.order, payment, p.customer, p.pm, p.entry, p.route, None, p.clock),
            )


async def _begin_alone(session: AsyncSession, services: Services, order: PaymentOrder) -> Begun:
    """One order begun by `begin_payment`, in a savepoint: its refusal is returned, its writes kept."""
    savepoint = await session.begin_nested()
    try:
        begun = await begin_payment(session, services, **order)
    except BillingError as error:
        await savepoint.rollback()
        return error
    await savepoint.commit()
    return begun


async def finish_payments(
    session: AsyncSession, charged: Sequence[tuple[PendingCharge, RouteResult]]
) -> list[Payment]:
    """Step 3 of each charge (see finish_payment), in the caller's transaction: every call logged, every payment
    locked afresh and its outcome applied (unless the janitor settled it meanwhile). Returns the payments as they
    now stand, in order."""
    await record_call_log(
        session,
        [
            LoggedCall(pending.payment.merchant_id, call, payment_id=pending.payment.id)
            for pending, result in charged
            for call in result.calls
        ],
    )
    ids = sorted(pending.payment.id for pending, _ in charged)
    locked = {
        p.id: p
        for p in await session.scalars(
            select(Payment)
            .where(Payment.id.in_(ids))
            .order_by(Payment.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    }
    for pending, result in charged:
        await apply_charge_outcome(
            session,
            locked[pending.payment.id],
            result.outcome,
            result.connection,
            pending.locale,
            pending.clock,
            result.calls,
            flush=False,
        )
    await session.flush()
    return [locked[pending.payment.id] for pending, _ in charged]
