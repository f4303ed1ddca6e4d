"""An example payload for every event type, generated from the code so the docs cannot go stale.

Objects with a builder here are made by their real render function from a row with realistic values (the same
code that renders the API answer and the event). Any other object is derived from its API schema (the msgspec
Struct whose `object` field names it): every field is there, with a placeholder of the right type. A feature can
replace the placeholder by adding a builder to BUILDERS; `tests/webhooks/test_docs.py` checks that every
example has the same fields as the real event the completeness walk produces.

This module is tooling (docs and tests): it imports the whole service to find every API object.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
import msgspec.inspect as mi

from webhooks.catalog import EVENT_TYPES
from webhooks.events import Event, EventData

EXAMPLE_TIME = datetime(2027, 1, 31, 9, 30, tzinfo=UTC)
_RANDOM = "4eC39HqLyjWDarjtT1zdp7dc"

# Id prefixes of the objects events are about (billing.ids), for placeholder ids.
ID_PREFIXES = {
    "customer": "cus",
    "payment_method": "pm",
    "plan": "plan",
    "meter": "mtr",
    "subscription": "sub",
    "invoice": "in",
    "payment": "pay",
    "refund": "re",
    "credit_note": "cn",
    "coupon": "cpn",
    "tax_rate": "txr",
    "event": "evt",
    "webhook_endpoint": "we",
    "test_clock": "clk",
    "settings": "mer",
    "dunning_case": "dc",
    "risk_decision": "rsk",
    "reconciliation": "rcn",
    "feature": "feat",
    "invoiceitem": "ii",
    "wallet": "wlt",
    "wallet_transaction": "wtx",
}


def example_id(kind: str) -> str:
    return f"{ID_PREFIXES.get(kind, kind)}_{_RANDOM}"


@dataclass(frozen=True)
class Example:
    obj: Any
    previous_attributes: dict[str, Any] | None = None


Builder = Callable[[str], Example]


def _customer(event_type: str) -> Example:
    from billing.customers.models import Customer
    from billing.customers.service import render_customer

    customer = Customer(
        id=example_id("customer"),
        email="li.lei@example.com",
        name="李雷",
        currency="CNY",
        timezone="Asia/Shanghai",
        locale="zh-CN",
        external_id="user-42",
        balance=0,
        default_payment_method=None,
        test_clock_id=None,
        metadata_={"plan": "pro"},
        created_at=EXAMPLE_TIME,
        updated_at=EXAMPLE_TIME,
    )
    previous = None
    if event_type == "customer.updated":
        previous = {"name": "Li Lei", "metadata": {"plan": "starter"}}
    return Example(render_customer(customer), previous)


def _test_clock(event_type: str) -> Example:
    from billing.test_clocks.models import TestClock
    from billing.test_clocks.service import render_test_clock

    status = {"test_clock.advancing": "advancing", "test_clock.internal_failure": "internal_failure"}.get(
        event_type, "ready"
    )
    clock = TestClock(
        id=example_id("test_clock"),
        name="month-end renewals",
        frozen_time=EXAMPLE_TIME,
        target_time=EXAMPLE_TIME + timedelta(days=30) if status == "advancing" else None,
        status=status,
        failure_message=(
            "Task task_... (subscription.renew) due 2027-02-28T00:00:00Z failed: ..."
            if status == "internal_failure"
            else None
        ),
        metadata_={},
        created_at=EXAMPLE_TIME,
    )
    return Example(render_test_clock(clock))


def _invoice(event_type: str) -> Example:
    from billing.invoices.models import Invoice, InvoiceLine
    from billing.invoices.service import render_invoice

    change = event_type.split(".", 1)[1]
    if change == "upcoming":
        return _upcoming_invoice()
    status = {
        "finalized": "open",
        "paid": "paid",
        "payment_failed": "open",
        "updated": "open",
        "voided": "void",
        "marked_uncollectible": "uncollectible",
    }.get(change, "draft")
    finalized = status != "draft"
    failed = change == "payment_failed"
    credited = 1000 if change == "updated" else 0  # a pre-payment credit note of 10.00
    invoice = Invoice(
        id=example_id("invoice"),
        customer_id=example_id("customer"),
        subscription_id=None,
        number="INV-000042" if finalized else None,
        status=status,
        currency="USD",
        collection_method="charge_automatically",
        description=None,
        period_start=None,
        period_end=None,
        due_date=None,
        subtotal=4900,
        discount=0,
        tax=0,
        total=4900,
        starting_balance=0,
        balance_applied=0,
        ending_balance=0 if finalized else None,
        amount_due=4900,
        amount_paid=4900 if status == "paid" else credited,
        amount_remaining=0 if status in ("paid", "void", "uncollectible") else 4900 - credited,
        pre_payment_credit_notes_amount=credited,
        post_payment_credit_notes_amount=0,
        attempt_count=1 if failed else 0,
        # Dunning's next retry: one day after the first failure (docs/dunning.md).
        next_payment_attempt=EXAMPLE_TIME + timedelta(days=1) if failed else None,
        last_payment_error=(
            {
                "attempt": 1,
                "code": "insufficient_funds",
                "message": _failure_message("insufficient_funds"),
                "payment": example_id("payment"),
                "decline_type": "soft",
                "decline_class": "soft",
            }
            if failed
            else None
        ),
        paid_out_of_band=status == "paid",
        billing_reason="manual",
        metadata_={},
        created_at=EXAMPLE_TIME,
        finalized_at=EXAMPLE_TIME if finalized else None,
        paid_at=EXAMPLE_TIME if status == "paid" else None,
        voided_at=EXAMPLE_TIME if status == "void" else None,
        marked_uncollectible_at=EXAMPLE_TIME if status == "uncollectible" else None,
    )
    line = InvoiceLine(
        id=f"il_{_RANDOM}",
        type="adjustment",
        description="Onboarding workshop",
        quantity=Decimal(1),
        unit_amount_decimal=None,
        amount=4900,
        discount_amount=0,
        tax_amount=0,
        period_start=None,
        period_end=None,
        details={},
        metadata_={},
    )
    previous = None
    if change == "updated":
        previous = {"amount_paid": 0, "amount_remaining": 4900, "pre_payment_credit_notes_amount": 0}
    return Example(render_invoice(invoice, [line]), previous)


def _upcoming_invoice() -> Example:
    from billing.subscriptions.schemas import UpcomingInvoice

    period = {"start": datetime(2027, 2, 28, tzinfo=UTC), "end": datetime(2027, 3, 31, tzinfo=UTC)}
    return Example(
        UpcomingInvoice(
            subscription=example_id("subscription"),
            customer=example_id("customer"),
            currency="USD",
            period_start=period["start"],
            period_end=period["end"],
            lines=[
                {
                    "type": "subscription",
                    "description": "5 × Pro",
                    "amount": 4500,
                    "quantity": "5",
                    "period": period,
                }
            ],
            subtotal=4500,
            discount=0,
            tax=405,
            total=4905,
            starting_balance=-500,
            amount_due=4405,
        )
    )


def _failure_message(code: str) -> str:
    from dunning.messages import failure_message

    return failure_message(code, "en")


def _webhook_endpoint(event_type: str) -> Example:
    from webhooks.delivery_models import WebhookEndpoint
    from webhooks.endpoints import render_endpoint

    disabled = event_type == "webhook_endpoint.disabled"
    endpoint = WebhookEndpoint(
        id=example_id("webhook_endpoint"),
        url="https://example.com/webhooks/billing",
        description="CRM sync",
        enabled_events=["customer.created", "invoice.paid"],
        status="disabled" if disabled else "enabled",
        disabled_reason="failing" if disabled else None,
        secret="whsec_never_rendered",  # noqa: S106 - render_endpoint leaves it out
        previous_secret="whsec_never_rendered" if event_type == "webhook_endpoint.secret_rotated" else None,
        previous_secret_expires_at=EXAMPLE_TIME + timedelta(hours=24),
        metadata_={},
        created_at=EXAMPLE_TIME,
        updated_at=EXAMPLE_TIME,
    )
    previous = {"enabled_events": ["customer.created"]} if event_type == "webhook_endpoint.updated" else None
    return Example(render_endpoint(endpoint), previous)


@dataclass(frozen=True)
class _CatalogKind:
    """An archivable catalog object: its model and render function, its row's own values (given whether the event
    is its creation), and the previous attributes of its `.updated` event. The id, `archived_at` and the times
    follow the event type; so does `in_use_since` where the object has one (`.updated`: a subscription started
    using it, and what it prices is frozen from now on)."""

    model: Callable[..., Any]
    render: Callable[[Any], Any]
    values: Callable[[bool], dict[str, Any]]
    updated: dict[str, Any]
    tracks_use: bool = True


@functools.cache
def _catalog_kinds() -> dict[str, _CatalogKind]:
    from billing.catalog.coupons import render_coupon
    from billing.catalog.meters import render_meter
    from billing.catalog.models import Coupon, Meter, Plan, TaxRate
    from billing.catalog.plans import render_plan, stored_charge
    from billing.catalog.schemas import Charge, Tier
    from billing.catalog.tax_rates import render_tax_rate

    charge = Charge(
        meter="api_calls",
        model="graduated",
        tiers=[Tier(up_to=10_000, unit_amount=0), Tier(up_to=None, unit_amount_decimal="0.05")],
    )
    in_use = {"in_use": False}
    return {
        "meter": _CatalogKind(
            Meter,
            render_meter,
            lambda _created: {
                "code": "api_calls",
                "name": "API calls",
                "description": "Requests to the public API",
                "aggregation": "sum",
                "property": None,
                "metadata_": {"team": "platform"},
            },
            in_use,
        ),
        "plan": _CatalogKind(
            Plan,
            render_plan,
            lambda _created: {
                "code": "pro-monthly",
                "name": "Pro",
                "description": "Pro plan, billed monthly per seat",
                "currency": "USD",
                "interval": "month",
                "interval_count": 1,
                "amount_decimal": Decimal(2900),
                "trial_period_days": 14,
                "charges": [stored_charge(charge, param="charges[0]")],
                "metadata_": {},
            },
            in_use,
        ),
        "coupon": _CatalogKind(
            Coupon,
            render_coupon,
            lambda created: {
                "name": "Launch week",
                "percent_off": Decimal(25),
                "amount_off": None,
                "currency": None,
                "duration": "repeating",
                "duration_in_periods": 3,
                "max_redemptions": 100 if created else 500,
                "redeem_by": None,
                "times_redeemed": 0 if created else 42,
                "metadata_": {"campaign": "launch"},
            },
            {"max_redemptions": 100},
            tracks_use=False,
        ),
        "tax_rate": _CatalogKind(
            TaxRate,
            render_tax_rate,
            lambda _created: {
                "display_name": "VAT",
                "description": "Germany, standard rate",
                "percentage": Decimal(19),
                "inclusive": False,
                "metadata_": {"country": "DE"},
            },
            in_use,
        ),
    }


def _catalog_object(kind: str, event_type: str) -> Example:
    table = _catalog_kinds()[kind]
    created = event_type == f"{kind}.created"
    used = {"in_use_since": None if created else EXAMPLE_TIME} if table.tracks_use else {}
    row = table.model(
        id=example_id(kind),
        **table.values(created),
        **used,
        archived_at=EXAMPLE_TIME if event_type.endswith(".archived") else None,
        created_at=EXAMPLE_TIME,
        updated_at=EXAMPLE_TIME,
    )
    return Example(table.render(row), table.updated if event_type == f"{kind}.updated" else None)


def _payment_method(event_type: str) -> Example:
    from billing.payment_methods.models import PaymentMethod
    from billing.payment_methods.rendering import render_payment_method

    if event_type in ("payment_method.activated", "payment_method.revoked"):
        revoked = event_type == "payment_method.revoked"
        agreement = PaymentMethod(
            id=example_id("payment_method"),
            customer_id=example_id("customer"),
            type="alipay",
            status="revoked" if revoked else "active",
            connection_id="alipay",
            external_agreement_no="pm" + example_id("payment_method")[3:],
            agreement_no="20275931000000001234",
            agreement={
                "single_amount_limit": 100000,
                "period": {"interval": "month", "interval_count": 1},
                "period_amount_limit": None,
                "buyer": "138****0001",
                "signed_at": EXAMPLE_TIME.isoformat(),
                **(
                    {"ended_at": EXAMPLE_TIME.isoformat(), "end_reason": "revoked_by_customer"}
                    if revoked
                    else {}
                ),
            },
            metadata_={},
            created_at=EXAMPLE_TIME,
            updated_at=EXAMPLE_TIME,
            detached_at=None,
        )
        return Example(render_payment_method(agreement))
    pm = PaymentMethod(
        id=example_id("payment_method"),
        customer_id=example_id("customer"),
        type="card",
        status="active",
        card_brand="visa",
        card_last4="4242",
        card_exp_month=12,
        card_exp_year=2031 if event_type == "payment_method.updated" else 2028,
        card_fingerprint="Xt5EWLLDS7FJjR1c",
        metadata_={},
        created_at=EXAMPLE_TIME,
        updated_at=EXAMPLE_TIME,
        detached_at=EXAMPLE_TIME if event_type == "payment_method.detached" else None,
    )
    previous = {"card": {"exp_year": 2028}} if event_type == "payment_method.updated" else None
    return Example(render_payment_method(pm), previous)


def _settlement(event_type: str, failure_code: str, failure_message: Callable[[str], str]) -> dict[str, Any]:
    """The fields a payment and a refund share, as their event leaves them: pending when created (not settled
    yet); succeeded, or failed with `failure_code`, once settled."""
    status = event_type.split(".", 1)[1].replace("created", "pending")
    failed = status == "failed"
    return {
        "status": status,
        "failure_code": failure_code if failed else None,
        "failure_message": failure_message(failure_code) if failed else None,
        "metadata_": {},
        "created_at": EXAMPLE_TIME,
        "settled_at": None if status == "pending" else EXAMPLE_TIME,
    }


def _payment(event_type: str) -> Example:
    from billing.payments.models import Payment
    from billing.payments.service import render_payment
    from dunning.messages import next_action

    settled = _settlement(event_type, "insufficient_funds", _failure_message)
    pending, failed = settled["status"] == "pending", settled["status"] == "failed"
    payment = Payment(
        id=example_id("payment"),
        customer_id=example_id("customer"),
        payment_method_id=example_id("payment_method"),
        invoice_id=example_id("invoice"),
        purpose=example_id("invoice"),
        attempt=1,
        amount=4900,
        currency="USD",
        description="Invoice INV-000042",
        card_brand="visa",
        card_last4="4242",
        payment_method_type="card",
        gateway=None if pending else "sandbox",
        decline_type="soft" if failed else None,
        next_action="wait" if pending else next_action("insufficient_funds") if failed else None,
        amount_refunded=0,
        test_clock_id=None,
        **settled,
    )
    return Example(render_payment(payment))


def _refund(event_type: str) -> Example:
    from billing.payments.models import Refund
    from billing.payments.refunds import REFUND_FAILURES, render_refund

    refund = Refund(
        id=example_id("refund"),
        payment_id=example_id("payment"),
        amount=1000,
        currency="USD",
        reason="requested_by_customer",
        gateway="sandbox",
        **_settlement(event_type, "amount_exceeds_charge", REFUND_FAILURES.__getitem__),
    )
    return Example(render_refund(refund))


def _settings(event_type: str) -> Example:
    from billing.merchants.models import Merchant
    from billing.settings.service import render_settings

    primary = {"id": "primary", "type": "sandbox", "url": "https://gateway.example.com", "weight": 1}
    backup = {"id": "backup", "type": "sandbox", "url": "https://backup-gateway.example.com", "weight": 1}
    before = Merchant(id=example_id("settings"), settings={"gateways": [primary]})
    after = Merchant(id=example_id("settings"), settings={"gateways": [primary, backup]})
    previous = msgspec.to_builtins(render_settings(before))
    return Example(render_settings(after), {"gateways": previous["gateways"]})


def _subscription(event_type: str) -> Example:
    from billing.subscriptions.models import Subscription
    from billing.subscriptions.service import render_subscription

    change = event_type.split(".", 1)[1]
    status, previous_status = {
        "created": ("trialing", None),
        "trial_will_end": ("trialing", None),
        "updated": ("active", "trialing"),
        "renewed": ("active", None),
        "past_due": ("past_due", "active"),
        "paused": ("paused", "active"),
        "resumed": ("active", "paused"),
        "canceled": ("canceled", "active"),
    }[change]
    trialing = status == "trialing"
    start = EXAMPLE_TIME
    end = datetime(2027, 2, 14, tzinfo=UTC) if trialing else datetime(2027, 2, 28, 9, 30, tzinfo=UTC)
    sub = Subscription(
        id=example_id("subscription"),
        customer_id=example_id("customer"),
        plan_id=example_id("plan"),
        quantity=5,
        status=status,
        collection_method="charge_automatically",
        days_until_due=None,
        default_payment_method=None,
        billing_cycle_anchor=end if trialing else start,
        current_period_start=start,
        current_period_end=end,
        trial_start=start if trialing else None,
        trial_end=end if trialing else None,
        cancel_at_period_end=False,
        canceled_at=EXAMPLE_TIME if status == "canceled" else None,
        ended_at=EXAMPLE_TIME if status == "canceled" else None,
        paused_at=EXAMPLE_TIME if status == "paused" else None,
        coupon_id=example_id("coupon"),
        tax_rate_ids=[example_id("tax_rate")],
        pending_change=None,
        latest_invoice_id=None if trialing else example_id("invoice"),
        metadata_={"account": "acme"},
        created_at=EXAMPLE_TIME,
        updated_at=EXAMPLE_TIME,
    )
    return Example(render_subscription(sub), {"status": previous_status} if previous_status else None)


def _credit_note(event_type: str) -> Example:
    from billing.credit_notes.models import CreditNote, CreditNoteLine
    from billing.credit_notes.service import render_credit_note

    voided = event_type == "credit_note.voided"
    note = CreditNote(
        id=example_id("credit_note"),
        invoice_id=example_id("invoice"),
        customer_id=example_id("customer"),
        number="INV-000042-CN-01",
        status="void" if voided else "issued",
        type="pre_payment",
        currency="USD",
        amount=1000,
        refund_amount=0,
        refund_id=None,
        credit_amount=0,
        customer_balance_transaction_id=None,
        out_of_band_amount=0,
        reason="order_change",
        memo="Two seats removed before payment",
        metadata_={},
        created_at=EXAMPLE_TIME,
        voided_at=EXAMPLE_TIME if voided else None,
    )
    line = CreditNoteLine(
        id=f"cnli_{_RANDOM}",
        credit_note_id=note.id,
        invoice_line_id=f"il_{_RANDOM}",
        description="2 × Pro",
        amount=1000,
        created_at=EXAMPLE_TIME,
    )
    return Example(render_credit_note(note, [line]))


def _dunning(event_type: str) -> Example:
    from dunning.cases import render_case
    from dunning.models import DunningCase

    exhausted = event_type == "dunning.exhausted"
    recovered = event_type == "dunning.recovered"
    opened = event_type == "dunning.case_opened"
    first = EXAMPLE_TIME - timedelta(days=0 if opened else 7 if exhausted else 1)
    state = "exhausted" if exhausted else "recovered" if recovered else "retrying"
    case = DunningCase(
        id=example_id("dunning_case"),
        invoice_id=example_id("invoice"),
        customer_id=example_id("customer"),
        subscription_id=example_id("subscription"),
        test_clock_id=None,
        currency="USD",
        state=state,
        attempts=5 if exhausted else 1 if opened else 2,
        technical_retries=0,
        schedule=[1, 3, 5, 7],
        first_failure_at=first,
        last_attempt_at=EXAMPLE_TIME,
        last_decline_class="soft",
        last_decline_code="insufficient_funds",
        next_attempt_at=None if exhausted or recovered else first + timedelta(days=1 if opened else 3),
        final_action="cancel" if exhausted else None,
        recovered_amount=2000 if recovered else None,
        closed_at=EXAMPLE_TIME if exhausted or recovered else None,
        created_at=first,
    )
    return Example(render_case(case))


BUILDERS: dict[str, Builder] = {
    "customer": _customer,
    "test_clock": _test_clock,
    "invoice": _invoice,
    "webhook_endpoint": _webhook_endpoint,
    **{kind: functools.partial(_catalog_object, kind) for kind in ("meter", "plan", "coupon", "tax_rate")},
    "payment_method": _payment_method,
    "payment": _payment,
    "refund": _refund,
    "settings": _settings,
    "subscription": _subscription,
    "credit_note": _credit_note,
    "dunning": _dunning,
    # risk.decision is about a risk decision (SPEC §9), shown from its API schema.
    "risk": lambda _event_type: _from_schema("risk_decision"),
}


# --- objects without a builder: a placeholder per field, from the API schema ---------------------------------


@functools.cache
def api_objects() -> dict[str, type[msgspec.Struct]]:
    """Every API object Struct by its `object` name (the one with the most fields when several share it, e.g.
    Customer rather than DeletedCustomer)."""
    import billing.api.app  # noqa: F401 - imports every resource, so every API object is defined

    found: dict[str, type[msgspec.Struct]] = {}
    pending: list[type[msgspec.Struct]] = [msgspec.Struct]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if "object" not in getattr(cls, "__struct_fields__", ()) or getattr(cls, "__parameters__", None):
            continue
        info = mi.type_info(cls)
        assert isinstance(info, mi.StructType)
        [field] = [f for f in info.fields if f.name == "object"]
        if not isinstance(field.default, str) or field.default == "list":
            continue
        if field.default not in found or len(info.fields) > len(found[field.default].__struct_fields__):
            found[field.default] = cls
    return found


_STRINGS = {
    "currency": "USD",
    "email": "li.lei@example.com",
    "url": "https://example.com",
    "timezone": "Asia/Shanghai",
    "locale": "en",
    "interval": "month",
    "name": "Example",
    "description": "Example",
}


def _placeholder(info: mi.Type, name: str) -> Any:
    if isinstance(info, mi.Metadata):
        return _placeholder(info.type, name)
    if isinstance(info, mi.UnionType):
        # A nullable field shows null; a union of several types shows the first.
        if any(isinstance(t, mi.NoneType) for t in info.types):
            return None
        return _placeholder(info.types[0], name)
    if isinstance(info, mi.LiteralType):
        return info.values[0]
    if isinstance(info, mi.StrType):
        if name.endswith("_id") or name in ID_PREFIXES:
            return example_id(name.removesuffix("_id"))
        return _STRINGS.get(name, "...")
    if isinstance(info, mi.BoolType):
        return False
    if isinstance(info, mi.IntType):
        return 1999 if "amount" in name or name in ("total", "subtotal", "balance") else 1
    if isinstance(info, mi.FloatType | mi.DecimalType):
        return Decimal("1.5") if isinstance(info, mi.DecimalType) else 1.5
    if isinstance(info, mi.DateTimeType):
        return EXAMPLE_TIME
    if isinstance(info, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
        return [_placeholder(info.item_type, name.removesuffix("s"))]
    if isinstance(info, mi.DictType):
        return {}
    if isinstance(info, mi.StructType):
        return _struct_placeholder(info)
    return None


def _struct_placeholder(info: mi.StructType) -> dict[str, Any]:
    out: dict[str, Any] = {}
    kinds = [f.default for f in info.fields if f.name == "object" and isinstance(f.default, str)]
    for field in info.fields:
        if field.name == "id" and kinds:
            out["id"] = example_id(kinds[0])
            continue
        if (
            not field.required
            and field.default is msgspec.NODEFAULT
            and field.default_factory is msgspec.NODEFAULT
        ):
            continue  # an UNSET field: absent from what the API renders
        if field.name == "object" and isinstance(field.type, mi.LiteralType):
            out[field.encode_name] = field.type.values[0]
        elif field.default is not msgspec.NODEFAULT and not isinstance(field.type, mi.UnionType):
            out[field.encode_name] = field.default
        else:
            out[field.encode_name] = _placeholder(field.type, field.name)
    return out


def _from_schema(kind: str) -> Example:
    struct = api_objects().get(kind)
    if struct is None:
        raise LookupError(
            f"no API object named {kind!r}: add a builder for it to doctools.webhook_examples.BUILDERS"
        )
    info = mi.type_info(struct)
    assert isinstance(info, mi.StructType)
    return Example(_struct_placeholder(info))


# Event types whose object is not their kind's object (a customer's or a plan's entitlements).
TYPE_BUILDERS: dict[str, Builder] = {
    "customer.entitlements_updated": lambda _event_type: _from_schema("customer_entitlements"),
    "plan.entitlements_updated": lambda _event_type: _from_schema("plan_entitlements"),
}


def example(event_type: str) -> Example:
    """The example object (and previous attributes) of `event_type`."""
    if event_type in TYPE_BUILDERS:
        return TYPE_BUILDERS[event_type](event_type)
    kind = event_type.split(".", 1)[0]
    builder = BUILDERS.get(kind)
    return builder(event_type) if builder is not None else _from_schema(kind)


def example_event(event_type: str) -> Event:
    """The whole payload of `event_type`, as an endpoint receives it."""
    if event_type not in EVENT_TYPES:
        raise KeyError(event_type)
    made = example(event_type)
    return Event(
        id=example_id("event"),
        type=event_type,
        created_at=EXAMPLE_TIME,
        data=EventData(object=msgspec.to_builtins(made.obj), previous_attributes=made.previous_attributes),
    )


def built_from_render_function(event_type: str) -> bool:
    return event_type not in TYPE_BUILDERS and event_type.split(".", 1)[0] in BUILDERS
