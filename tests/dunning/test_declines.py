"""Decline classification and the failure messages customers read (SPEC §6)."""

from __future__ import annotations

import pytest

from dunning.declines import HARD_DECLINE_CODES, classify_decline, decline_type, is_retryable
from dunning.messages import failure_message, next_action, pending_message

SPEC_HARD = [
    "incorrect_number",
    "lost_card",
    "pickup_card",
    "stolen_card",
    "revocation_of_authorization",
    "revocation_of_all_authorizations",
    "authentication_required",
    "highest_risk_level",
    "transaction_not_allowed",
    "fraudulent",
]


@pytest.mark.parametrize("code", SPEC_HARD)
def test_every_hard_decline_of_the_spec_is_hard_and_never_retried(code: str) -> None:
    assert classify_decline(code) == "hard"
    assert decline_type(code) == "hard"
    assert not is_retryable(code)
    assert next_action(code) == "update_payment_method"


# SPEC §8's channels add the declines only the customer can cure: a frozen account, a debit beyond the agreement
# the customer signed, a currency the channel cannot take (docs/channels.md).
CHANNEL_HARD = ["account_frozen", "agreement_limit_exceeded", "currency_not_supported"]


def test_the_hard_list_is_exactly_the_spec() -> None:
    assert set(SPEC_HARD) | set(CHANNEL_HARD) == HARD_DECLINE_CODES


def test_expired_card_waits_for_a_new_card_and_shows_as_hard() -> None:
    assert classify_decline("expired_card") == "expired"
    assert decline_type("expired_card") == "hard"
    assert not is_retryable("expired_card")
    assert next_action("expired_card") == "update_payment_method"


@pytest.mark.parametrize(
    "code", ["generic_decline", "insufficient_funds", "card_declined", "do_not_honor", "x_new"]
)
def test_other_declines_are_soft_and_retried_later(code: str) -> None:
    assert classify_decline(code) == "soft"
    assert decline_type(code) == "soft"
    assert is_retryable(code)
    assert next_action(code) == "retry_later"


@pytest.mark.parametrize("code", ["processing_error", "gateway_unavailable", "gateway_timeout"])
def test_technical_errors_are_not_declines(code: str) -> None:
    assert classify_decline(code) == "technical"
    assert decline_type(code) is None
    assert is_retryable(code)


def test_classification_ignores_case_and_spaces() -> None:
    assert classify_decline(" Stolen_Card ") == "hard"


def test_insufficient_funds_says_why_and_what_to_do_in_both_languages() -> None:
    assert failure_message("insufficient_funds", "en") == (
        "Your card has insufficient funds. Use another card or try again later."
    )
    assert failure_message("insufficient_funds", "zh-CN") == "您的卡余额不足。请更换银行卡或稍后重试。"


@pytest.mark.parametrize(
    "code", ["stolen_card", "lost_card", "pickup_card", "fraudulent", "highest_risk_level"]
)
def test_fraud_codes_are_not_revealed_to_the_person_paying(code: str) -> None:
    assert failure_message(code, "en") == failure_message("generic_decline", "en")
    assert "stolen" not in failure_message(code, "en").lower()
    assert "被盗" not in failure_message(code, "zh-CN")


def test_every_code_has_a_message_in_each_locale_and_unknown_codes_fall_back_by_class() -> None:
    for code in [*SPEC_HARD, "expired_card", "insufficient_funds", "processing_error", "never_seen_before"]:
        english, chinese = failure_message(code, "en"), failure_message(code, "zh-CN")
        assert english and chinese and english != chinese
        assert any("\u4e00" <= ch <= "\u9fff" for ch in chinese)
    assert pending_message("zh-CN") != pending_message("en")


@pytest.mark.parametrize(
    ("code", "method", "en", "zh"),
    [
        ("insufficient_funds", "alipay", "Your Alipay balance is too low", "您的支付宝余额不足"),
        ("account_frozen", "alipay", "Your Alipay account is frozen", "您的支付宝账户已被冻结"),
        (
            "revocation_of_authorization",
            "wechat_pay",
            "The WeChat Pay automatic payment agreement with this merchant has ended",
            "您与该商户的微信支付自动扣款协议已解除",
        ),
        (
            "agreement_limit_exceeded",
            "wechat_pay",
            "above the limit of your WeChat Pay agreement",
            "超出您微信支付扣款协议的限额",
        ),
        ("currency_not_supported", "alipay", "Alipay pays in Chinese yuan (CNY) only", "支付宝仅支持人民币"),
        ("do_not_honor", "wechat_pay", "WeChat Pay declined this payment", "微信支付拒绝了本次扣款"),
        (
            "fraudulent",
            "alipay",
            "Alipay declined this payment and your agreement cannot be used",
            "支付宝拒绝了本次扣款",
        ),
    ],
)
def test_agreement_declines_name_the_channel_in_both_languages(
    code: str, method: str, en: str, zh: str
) -> None:
    assert en in failure_message(code, "en", method)
    assert zh in failure_message(code, "zh-CN", method)
    assert "your card" not in failure_message(code, "en", method).lower()


def test_a_technical_failure_reads_the_same_for_cards_and_channels() -> None:
    for code in ("processing_error", "gateway_unavailable"):
        assert failure_message(code, "zh-CN", "alipay") == failure_message(code, "zh-CN")
