"""Decline classification (SPEC §6): what a gateway's failure code means for the next attempt.

- `hard`: the card will not work again (stolen, closed, refused for fraud). Never retried; the customer must add a
  new payment method.
- `expired`: the card is past its expiry date. Like hard, it waits for a new card (or new expiry date), but it is
  kept apart because the message to the customer is different ("update the expiry date").
- `soft`: this attempt failed, a later one may succeed (insufficient funds, a generic refusal). Retried on the
  dunning schedule.
- `technical`: the gateway did not process the charge (an error on its side, an outage). Not a decline at all: it
  fails over to the next gateway at once and never counts as a dunning attempt.

A pure function over the code, so the dunning policy, the payment records and the finance console agree.
"""

from __future__ import annotations

from typing import Final, Literal

DeclineClass = Literal["hard", "soft", "expired", "technical"]

HARD_DECLINE_CODES: Final[frozenset[str]] = frozenset(
    {
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
        # Debit agreements (SPEC §8): the channel account cannot pay at all (frozen), the debit is beyond what
        # the customer agreed to, or the channel cannot take the currency. Only the customer can change that.
        "account_frozen",
        "agreement_limit_exceeded",
        "currency_not_supported",
    }
)

# A UnionPay token past its validity is an expired credential: only a new authentication renews it.
EXPIRED_DECLINE_CODES: Final[frozenset[str]] = frozenset({"expired_card", "token_expired"})

# Failures of the processing chain rather than answers about the card: the charge was not made.
TECHNICAL_ERROR_CODES: Final[frozenset[str]] = frozenset(
    {
        "processing_error",
        "gateway_unavailable",
        "gateway_unreachable",
        "gateway_error",
        "gateway_timeout",
        "gateway_request_invalid",
        "gateway_refused",
        "issuer_not_available",
        "try_again_later",
    }
)


def classify_decline(code: str) -> DeclineClass:
    """Classify a gateway failure code; unknown codes are soft declines (SPEC §6: "all other declines soft")."""
    normalized = code.strip().lower()
    if normalized in HARD_DECLINE_CODES:
        return "hard"
    if normalized in EXPIRED_DECLINE_CODES:
        return "expired"
    if normalized in TECHNICAL_ERROR_CODES:
        return "technical"
    return "soft"


def decline_type(code: str) -> Literal["hard", "soft"] | None:
    """The `decline_type` a payment shows: expired cards count as hard (they wait for the customer); technical
    errors are not declines (None)."""
    kind = classify_decline(code)
    if kind == "technical":
        return None
    return "soft" if kind == "soft" else "hard"


def is_retryable(code: str) -> bool:
    """Whether the same card may be charged again later without the customer doing anything."""
    return classify_decline(code) in ("soft", "technical")


def classify_failure(
    reason: str, *, charged: bool, decline_type: str | None, failure_code: str | None
) -> DeclineClass:
    """Classify a failed collection attempt. `charged`: a payment was made (it may have failed). A payment that
    failed without a decline type never reached a card network (every gateway failed technically); an attempt
    that could not start needs a payment method (`payment_method...`: hard) or is our side's problem
    (technical)."""
    if charged:
        if decline_type is None:
            return "technical"
        return classify_decline(failure_code or reason)
    if reason.startswith("payment_method"):
        return "hard"
    return "technical"
