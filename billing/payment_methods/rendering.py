"""Payment methods and tokens as the API (and every event) shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from billing.payment_methods import schemas
from billing.payment_methods.models import CARD, CardToken, PaymentMethod


def _moment(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _agreement_fields(pm: PaymentMethod) -> dict[str, Any]:
    terms = pm.agreement or {}
    period = terms.get("period") or {}
    return {
        "connection": pm.connection_id or "",
        "currency": "CNY",
        "single_amount_limit": int(terms.get("single_amount_limit", 0)),
        "period": schemas.AgreementPeriod(
            interval=period.get("interval", "month"), interval_count=int(period.get("interval_count", 1))
        ),
        "period_amount_limit": terms.get("period_amount_limit"),
        "signed_at": _moment(terms.get("signed_at")),
        "ended_at": _moment(terms.get("ended_at")),
        "end_reason": terms.get("end_reason"),
    }


def render_payment_method(pm: PaymentMethod) -> schemas.PaymentMethod:
    card = alipay = wechat_pay = unionpay = ecny = next_action = None
    if pm.type == CARD:
        assert pm.card_brand is not None and pm.card_last4 is not None and pm.card_fingerprint is not None
        assert pm.card_exp_month is not None and pm.card_exp_year is not None
        card = schemas.Card(
            brand=pm.card_brand,
            last4=pm.card_last4,
            exp_month=pm.card_exp_month,
            exp_year=pm.card_exp_year,
            fingerprint=pm.card_fingerprint,
        )
    elif pm.type == "alipay":
        alipay = schemas.AlipayAgreement(
            **_agreement_fields(pm),
            agreement_no=pm.agreement_no,
            external_agreement_no=pm.external_agreement_no or "",
            buyer_logon_id=(pm.agreement or {}).get("buyer"),
        )
    elif pm.type == "wechat_pay":
        wechat_pay = schemas.WechatPayContract(
            **_agreement_fields(pm),
            contract_id=pm.agreement_no,
            out_contract_code=pm.external_agreement_no or "",
            openid=(pm.agreement or {}).get("buyer"),
        )
    elif pm.type == "unionpay":
        unionpay = schemas.UnionpayToken(
            **_agreement_fields(pm),
            token=pm.agreement_no,
            order_id=pm.external_agreement_no or "",
            acc_no=(pm.agreement or {}).get("buyer"),
        )
    elif pm.type == "ecny":
        ecny = schemas.EcnyAgreement(
            **_agreement_fields(pm),
            agreement_id=pm.agreement_no,
            out_agreement_no=pm.external_agreement_no or "",
            wallet_id=(pm.agreement or {}).get("buyer"),
        )
    if pm.next_action is not None and pm.detached_at is None:
        next_action = schemas.NextAction(
            type=pm.next_action["type"],
            url=pm.next_action["url"],
            qr_code_svg=pm.next_action["qr_code_svg"],
            expires_at=datetime.fromisoformat(pm.next_action["expires_at"]),
        )
    return schemas.PaymentMethod(
        id=pm.id,
        object="payment_method",
        created_at=pm.created_at,
        type=pm.type,  # type: ignore[arg-type]
        status=pm.status,  # type: ignore[arg-type]
        customer=pm.customer_id if pm.detached_at is None else None,
        metadata=pm.metadata_,
        card=card,
        alipay=alipay,
        wechat_pay=wechat_pay,
        unionpay=unionpay,
        ecny=ecny,
        next_action=next_action,
    )


def render_token(token: CardToken) -> schemas.Token:
    return schemas.Token(
        id=token.id,
        created_at=token.created_at,
        expires_at=token.expires_at,
        used=token.used_at is not None,
        card=schemas.TokenCard(
            brand=token.card_brand,
            last4=token.card_last4,
            exp_month=token.card_exp_month,
            exp_year=token.card_exp_year,
        ),
    )
