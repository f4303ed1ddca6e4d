"""Payment methods and tokens as the API shows them, and what create and update accept. No shape here has a
field for the card number or CVC on the way out, nor for any key or secret of a channel."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from billing.api.schemas import ListResponse
from billing.customers.schemas import Metadata

CardNumber = Annotated[
    str, Meta(min_length=1, max_length=40, description="The card number; spaces and dashes are ignored.")
]
ExpMonth = Annotated[int, Meta(ge=-1000, le=1000, description="1 to 12.")]
ExpYear = Annotated[int, Meta(ge=-10000, le=10000, description="Four digits, e.g. 2030.")]
Cvc = Annotated[str, Meta(min_length=1, max_length=8, description="3 digits (4 for American Express).")]


class CardInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A test card for a sandbox gateway (never a real card number: real cards are tokenized on the gateway)."""

    number: CardNumber
    exp_month: ExpMonth
    exp_year: ExpYear
    cvc: Cvc | None = None


class Card(msgspec.Struct, kw_only=True):
    """What may be shown of a card: never its number or security code."""

    brand: str
    last4: str
    exp_month: int
    exp_year: int
    fingerprint: str


PaymentMethodType = Literal["card", "alipay", "wechat_pay", "unionpay", "ecny"]
AgreementType = Literal["alipay", "wechat_pay", "unionpay", "ecny"]
PaymentMethodStatus = Literal["pending", "active", "revoked", "expired"]


class AgreementPeriod(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The debit cycle the customer approves: every `interval_count` days or months."""

    interval: Literal["day", "month"] = "month"
    interval_count: Annotated[int, Meta(ge=1, le=365)] = 1


class AgreementDetails(msgspec.Struct, kw_only=True):
    """A debit agreement's terms and life (SPEC §8): amounts in fen (CNY minor units)."""

    connection: str
    currency: Literal["CNY"]
    single_amount_limit: int
    period: AgreementPeriod
    period_amount_limit: int | None
    signed_at: datetime | None
    ended_at: datetime | None
    # revoked_by_customer (in the channel), unsigned_by_merchant (detach), link_expired.
    end_reason: str | None


class AlipayAgreement(AgreementDetails, kw_only=True):
    """An Alipay 周期扣款 agreement: Alipay's `agreement_no` once signed, ours as `external_agreement_no`, and
    the buyer's Alipay account as Alipay shows it (masked)."""

    agreement_no: str | None
    external_agreement_no: str
    buyer_logon_id: str | None


class WechatPayContract(AgreementDetails, kw_only=True):
    """A WeChat Pay 委托代扣 contract: WeChat's `contract_id` once signed, ours as `out_contract_code`, and the
    buyer's openid (masked)."""

    contract_id: str | None
    out_contract_code: str
    openid: str | None


class UnionpayToken(AgreementDetails, kw_only=True):
    """A UnionPay 无感支付 token: UnionPay's `token` once the customer authenticated, ours as `order_id` (the
    opening order), and the bound card as UnionPay shows it (masked)."""

    token: str | None
    order_id: str
    acc_no: str | None


class EcnyAgreement(AgreementDetails, kw_only=True):
    """An e-CNY 子钱包免密支付 agreement: the operator's `agreement_id` once signed in the wallet app, ours as
    `out_agreement_no`, and the paying wallet's id (masked)."""

    agreement_id: str | None
    out_agreement_no: str
    wallet_id: str | None


class NextAction(msgspec.Struct, kw_only=True):
    """What the customer must do for a pending agreement: open `url` (redirect_to_url) or scan `qr_code_svg`
    (display_qr_code, an SVG of the same URL) before `expires_at`."""

    type: Literal["redirect_to_url", "display_qr_code"]
    url: str
    qr_code_svg: str
    expires_at: datetime


class PaymentMethod(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A card (`card`) or a debit agreement in a channel (`alipay`, `wechat_pay`, `unionpay`, `ecny`): only the sub-object of its
    type is present, and `next_action` only while the customer has to approve."""

    id: str
    object: Literal["payment_method"]
    created_at: datetime
    type: PaymentMethodType
    status: PaymentMethodStatus
    customer: str | None
    metadata: dict[str, str]
    card: Card | None = None
    alipay: AlipayAgreement | None = None
    wechat_pay: WechatPayContract | None = None
    unionpay: UnionpayToken | None = None
    ecny: EcnyAgreement | None = None
    next_action: NextAction | None = None


class PaymentMethodList(ListResponse[PaymentMethod]):
    pass


class AgreementInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The terms of a debit agreement to sign (type alipay, wechat_pay, unionpay or ecny); every field has a default."""

    single_amount_limit: Annotated[
        int,
        Meta(
            ge=1,
            le=5_000_000,
            description="The most one debit may take, in fen (CNY minor units); default 100000 (¥1,000.00). "
            "A debit above it is declined agreement_limit_exceeded without reaching the channel.",
        ),
    ] = 100_000
    period: AgreementPeriod = msgspec.field(default_factory=AgreementPeriod)
    period_amount_limit: (
        Annotated[
            int,
            Meta(
                ge=1,
                le=50_000_000,
                description="Optional: the most all debits of one period may take together, in fen (periods "
                "counted from the signing).",
            ),
        ]
        | None
    ) = None
    display: Annotated[
        Literal["qr_code", "redirect"],
        Meta(description="How the customer will approve: scanning a QR code (default) or being redirected."),
    ] = "qr_code"
    return_url: (
        Annotated[str, Meta(max_length=500, description="Where the channel sends the customer back.")] | None
    ) = None
    connection: (
        Annotated[
            str, Meta(max_length=40, description="A connection of settings.gateways; default: routing picks.")
        ]
        | None
    ) = None


class PaymentMethodCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A card: give `card` (server-side, with your secret key) or `token` (a tok_ made in the browser). A debit
    agreement (`type` alipay, wechat_pay, unionpay or ecny, customers paying in CNY): give `agreement` terms or nothing; the payment
    method is `pending` with a `next_action` until the customer approves in the channel."""

    customer: Annotated[str, Meta(max_length=64)]
    type: PaymentMethodType = "card"
    card: CardInput | None = None
    token: Annotated[str, Meta(max_length=64)] | None = None
    agreement: AgreementInput | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)


class CardUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What can change on a saved card: its expiry month and year."""

    exp_month: ExpMonth | UnsetType = UNSET
    exp_year: ExpYear | UnsetType = UNSET


class PaymentMethodUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A renewed card keeps its number and gets a new expiry date; metadata keys set to "" are removed."""

    card: CardUpdate | UnsetType = UNSET
    metadata: Metadata | UnsetType = UNSET


class TokenCard(msgspec.Struct, kw_only=True):
    """The card behind a token, as far as it may be shown (brand, last 4 digits, expiry)."""

    brand: str
    last4: str
    exp_month: int
    exp_year: int


class Token(msgspec.Struct, kw_only=True):
    """A one-time token standing for a card, to create a payment method with."""

    id: str
    object: Literal["token"] = "token"
    type: Literal["card"] = "card"
    created_at: datetime
    expires_at: datetime
    used: bool
    card: TokenCard


class TokenCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A test card to tokenize (sandbox gateways only)."""

    card: CardInput
