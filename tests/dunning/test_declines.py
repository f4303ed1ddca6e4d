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


def test_the_hard_list_is_exactly_the_spec() -> None:
    assert set(SPEC_HARD) == HARD_DECLINE_CODES


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
