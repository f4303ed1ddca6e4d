"""What a person reads about a blocked or held attempt, in English and Simplified Chinese: the rule that fired,
named, because the merchant and its support staff act on it (the precise reasons stay in the stored decision)."""

from __future__ import annotations

from typing import Final

_RULES: Final[dict[str, tuple[str, str]]] = {
    "blocklist_fingerprint": ("this card is on the merchant's blocklist", "该银行卡在商户的黑名单中"),
    "blocklist_email": ("this email address is on the merchant's blocklist", "该电子邮箱在商户的黑名单中"),
    "blocklist_ip": ("this IP address is on the merchant's blocklist", "该 IP 地址在商户的黑名单中"),
    "blocklist_country": ("payments from this country are not accepted", "商户不接受来自该国家或地区的付款"),
    "velocity_fingerprint": (
        "too many attempts with this card in the last hour",
        "该银行卡一小时内尝试次数过多",
    ),
    "velocity_customer": (
        "too many attempts by this customer in the last hour",
        "该客户一小时内尝试次数过多",
    ),
    "velocity_ip": (
        "too many attempts from this IP address in the last hour",
        "该 IP 地址一小时内尝试次数过多",
    ),
    "amount_block": ("the amount is above the merchant's limit", "金额超过商户的限额"),
    "amount_review": ("the amount needs the merchant's review", "该金额需要商户审核"),
    "refused_in_review": ("the merchant refused it in review", "商户审核时拒绝了此付款"),
}


def rule_text(rule: str, locale: str) -> str:
    en, zh = _RULES.get(rule.removesuffix("_near"), (rule, rule))
    return zh if locale == "zh-CN" else en


def blocked_message(rule: str, locale: str) -> str:
    """Why an attempt was blocked (decline code highest_risk_level), naming the rule."""
    if locale == "zh-CN":
        return f"此付款被商户的风控规则拦截（{rule}：{rule_text(rule, locale)}）。请使用其他付款方式，或联系商户。"
    return (
        f"This payment was blocked by the merchant's risk rules ({rule}: {rule_text(rule, locale)}). Use another "
        "payment method, or contact the merchant."
    )


def held_message(rule: str, locale: str) -> str:
    """Why a payment waits for review (status requires_review)."""
    if locale == "zh-CN":
        return f"此付款正在等待商户审核（{rule}：{rule_text(rule, locale)}），审核通过后才会扣款。"
    return (
        f"This payment is waiting for the merchant's review ({rule}: {rule_text(rule, locale)}); it is charged "
        "only once approved."
    )
