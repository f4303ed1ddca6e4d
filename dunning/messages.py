"""Failure messages for people (SPEC §6): why a payment failed and what to do next, in English and Simplified
Chinese, chosen by the customer's locale.

A pure table, by payment method: cards, and the debit agreements of the channels (SPEC §8), whose messages name
the channel ("Your Alipay balance is too low"). Codes that point at fraud (stolen_card, lost_card, pickup_card, fraudulent, highest_risk_level)
get the same words as a generic decline on purpose: the person reading may be the fraudster, and telling them
the card was reported stolen helps them, not the card holder (the precise code stays in `failure_code` for the
merchant).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from dunning.declines import classify_decline

Locale = Literal["en", "zh-CN"]
NextAction = Literal["update_payment_method", "retry_later", "wait"]


@dataclass(frozen=True)
class FailureText:
    en: str
    zh_cn: str

    def in_locale(self, locale: str) -> str:
        return self.zh_cn if locale == "zh-CN" else self.en


_DECLINED_GENERIC = FailureText(
    "Your card was declined. Use another card, or contact your bank and then try again.",
    "您的银行卡被拒绝。请更换银行卡，或联系发卡行后重试。",
)

_BY_CODE: Final[dict[str, FailureText]] = {
    "generic_decline": _DECLINED_GENERIC,
    "card_declined": _DECLINED_GENERIC,
    "do_not_honor": _DECLINED_GENERIC,
    "stolen_card": _DECLINED_GENERIC,
    "lost_card": _DECLINED_GENERIC,
    "pickup_card": _DECLINED_GENERIC,
    "fraudulent": _DECLINED_GENERIC,
    "highest_risk_level": _DECLINED_GENERIC,
    "insufficient_funds": FailureText(
        "Your card has insufficient funds. Use another card or try again later.",
        "您的卡余额不足。请更换银行卡或稍后重试。",
    ),
    "expired_card": FailureText(
        "Your card has expired. Update the expiry date or add a new card to keep your subscription.",
        "您的银行卡已过期。请更新有效期或添加新卡，以免订阅中断。",
    ),
    "incorrect_number": FailureText(
        "The card number is incorrect. Check it, or add another card.",
        "卡号不正确。请核对卡号，或添加其他银行卡。",
    ),
    "incorrect_cvc": FailureText(
        "The card's security code (CVC) is incorrect. Check the 3 or 4 digits on your card and try again.",
        "银行卡安全码（CVC）不正确。请核对卡上的 3 位或 4 位数字后重试。",
    ),
    "authentication_required": FailureText(
        "Your bank requires you to confirm this payment. Pay once yourself from the billing portal, or add "
        "another card.",
        "发卡行要求您确认本次付款。请在账单门户中手动付款一次，或添加其他银行卡。",
    ),
    "transaction_not_allowed": FailureText(
        "Your card does not allow this kind of payment. Contact your bank, or add another card.",
        "您的银行卡不支持此类付款。请联系发卡行，或添加其他银行卡。",
    ),
    "revocation_of_authorization": FailureText(
        "You asked your bank to stop payments to this merchant. Add another card, or contact your bank to allow "
        "them again.",
        "您已要求发卡行停止向该商户付款。请添加其他银行卡，或联系发卡行恢复授权。",
    ),
    "revocation_of_all_authorizations": FailureText(
        "You asked your bank to stop all recurring payments on this card. Add another card, or contact your "
        "bank to allow them again.",
        "您已要求发卡行停止此卡的所有定期付款。请添加其他银行卡，或联系发卡行恢复授权。",
    ),
    "card_velocity_exceeded": FailureText(
        "Your card has reached its spending limit. Use another card or try again later.",
        "您的银行卡已达到消费限额。请更换银行卡或稍后重试。",
    ),
    "currency_not_supported": FailureText(
        "Your card cannot pay in this currency. Add another card.",
        "您的银行卡不支持该币种付款。请添加其他银行卡。",
    ),
    "processing_error": FailureText(
        "The payment could not be processed because of a temporary error. Nothing was charged; we will try "
        "again shortly.",
        "由于临时故障，付款未能处理，未产生任何扣款。我们稍后会自动重试。",
    ),
    "gateway_unavailable": FailureText(
        "The payment service was unavailable. Nothing was charged; we will try again shortly.",
        "支付服务暂时不可用，未产生任何扣款。我们稍后会自动重试。",
    ),
}

_BY_CLASS: Final[dict[str, FailureText]] = {
    "hard": FailureText(
        "Your card was declined and cannot be used for this payment. Add another card.",
        "您的银行卡被拒绝，无法用于本次付款。请添加其他银行卡。",
    ),
    "expired": _BY_CODE["expired_card"],
    "soft": _DECLINED_GENERIC,
    "technical": _BY_CODE["processing_error"],
}

# The channels of SPEC §8, as their customers name them.
CHANNELS: Final[dict[str, tuple[str, str]]] = {
    "alipay": ("Alipay", "支付宝"),
    "wechat_pay": ("WeChat Pay", "微信支付"),
    "unionpay": ("UnionPay", "银联"),
    "ecny": ("e-CNY", "数字人民币"),
}

# {channel} / {channel_zh} are filled with the channel's name.
_AGREEMENT_BY_CODE: Final[dict[str, FailureText]] = {
    "insufficient_funds": FailureText(
        "Your {channel} balance is too low for this payment. Top it up, or sign an agreement with another "
        "account; we will try again.",
        "您的{channel_zh}余额不足，无法完成本次扣款。请充值，或使用其他账户重新签约，我们会再次尝试扣款。",
    ),
    "account_frozen": FailureText(
        "Your {channel} account is frozen and cannot pay. Contact {channel}, or sign an agreement with another "
        "account or add a card to keep your subscription.",
        "您的{channel_zh}账户已被冻结，无法付款。请联系{channel_zh}，或使用其他账户签约、添加银行卡，以免订阅中断。",
    ),
    "revocation_of_authorization": FailureText(
        "The {channel} automatic payment agreement with this merchant has ended. Sign a new agreement, or add "
        "another payment method, to keep your subscription.",
        "您与该商户的{channel_zh}自动扣款协议已解除。请重新签约或添加其他付款方式，以免订阅中断。",
    ),
    "agreement_limit_exceeded": FailureText(
        "This payment is above the limit of your {channel} agreement. Sign a new agreement with a higher limit, "
        "or pay another way.",
        "本次扣款超出您{channel_zh}扣款协议的限额。请以更高限额重新签约，或使用其他方式付款。",
    ),
    "token_expired": FailureText(
        "Your {channel} payment authorization (token) has expired. Authorize again to keep your subscription.",
        "您的{channel_zh}无感支付授权（token）已过期。请重新授权，以免订阅中断。",
    ),
    # An e-CNY sub-wallet's own limits (per payment, per day), set by the customer in the wallet app: a soft
    # decline, as the next day (or a raised limit) lets the debit through.
    "wallet_limit_exceeded": FailureText(
        "This payment is above the limit of your {channel} sub-wallet. Raise the sub-wallet's limit in your wallet "
        "app, or pay another way; we will try again.",
        "本次扣款超出您{channel_zh}子钱包的支付限额。请在钱包App中调高子钱包限额，或使用其他方式付款，我们会再次尝试扣款。",
    ),
    "currency_not_supported": FailureText(
        "{channel} pays in Chinese yuan (CNY) only. Add a card to pay in this currency.",
        "{channel_zh}仅支持人民币（CNY）付款。请添加银行卡以使用该币种付款。",
    ),
}
_AGREEMENT_BY_CLASS: Final[dict[str, FailureText]] = {
    "hard": FailureText(
        "{channel} declined this payment and your agreement cannot be used for it. Sign a new agreement or add "
        "another payment method.",
        "{channel_zh}拒绝了本次扣款，当前协议无法用于此付款。请重新签约或添加其他付款方式。",
    ),
    "expired": FailureText(
        "Your {channel} agreement has expired. Sign a new agreement to keep your subscription.",
        "您的{channel_zh}扣款协议已失效。请重新签约，以免订阅中断。",
    ),
    "soft": FailureText(
        "{channel} declined this payment. Check your {channel} account, or use another payment method; we will "
        "try again.",
        "{channel_zh}拒绝了本次扣款。请检查您的{channel_zh}账户，或使用其他付款方式，我们会再次尝试扣款。",
    ),
}

_PENDING = FailureText(
    "The payment's result is being confirmed with the payment service. You do not need to pay again.",
    "正在与支付服务确认付款结果。请勿重复付款。",
)


def failure_message(code: str, locale: str, method: str = "card") -> str:
    """The sentence a customer reads about a failure with `code`, in `locale` ("en" or "zh-CN"), for a payment
    by `method` (a card, or a channel's agreement: "alipay", "wechat_pay", ...)."""
    channel = CHANNELS.get(method)
    kind = classify_decline(code)
    if channel is not None and kind != "technical":
        text = _AGREEMENT_BY_CODE.get(code) or _AGREEMENT_BY_CLASS[kind]
        return text.in_locale(locale).format(channel=channel[0], channel_zh=channel[1])
    text = _BY_CODE.get(code) or _BY_CLASS[kind]
    return text.in_locale(locale)


def pending_message(locale: str) -> str:
    """What a customer reads while a payment's outcome is unknown (a gateway timed out)."""
    return _PENDING.in_locale(locale)


def next_action(code: str) -> NextAction:
    """What has to happen before this payment can succeed: a new card, or only time."""
    kind = classify_decline(code)
    if kind in ("hard", "expired"):
        return "update_payment_method"
    return "retry_later"
