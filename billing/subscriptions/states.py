"""The subscription status machine (SPEC §4) as data: (status, event) → status. Any other pair is a 409."""

from __future__ import annotations

from billing.errors import Conflict

TRIALING = "trialing"
ACTIVE = "active"
PAST_DUE = "past_due"
UNPAID = "unpaid"
PAUSED = "paused"
CANCELED = "canceled"
INCOMPLETE = "incomplete"
INCOMPLETE_EXPIRED = "incomplete_expired"
STATUSES = (TRIALING, ACTIVE, PAST_DUE, UNPAID, PAUSED, CANCELED, INCOMPLETE, INCOMPLETE_EXPIRED)
ENDED = frozenset({CANCELED, INCOMPLETE_EXPIRED})
# Statuses in which the subscription keeps renewing (paused ones do not; ended ones never again).
RENEWING = frozenset({TRIALING, ACTIVE, PAST_DUE, UNPAID})

TRANSITIONS: dict[tuple[str, str], str] = {
    # the first invoice of a subscription without trial
    (INCOMPLETE, "first_invoice_paid"): ACTIVE,
    (INCOMPLETE, "expire"): INCOMPLETE_EXPIRED,
    (INCOMPLETE, "cancel"): CANCELED,
    # renewals and trial ends
    (TRIALING, "invoice_paid"): ACTIVE,
    # a trial converted to a send_invoice subscription: active while its invoice awaits payment
    (TRIALING, "trial_ended"): ACTIVE,
    (TRIALING, "payment_failed"): PAST_DUE,
    (ACTIVE, "invoice_paid"): ACTIVE,
    (ACTIVE, "payment_failed"): PAST_DUE,
    (PAST_DUE, "invoice_paid"): ACTIVE,
    (PAST_DUE, "payment_failed"): PAST_DUE,
    (UNPAID, "invoice_paid"): ACTIVE,
    (UNPAID, "payment_failed"): UNPAID,
    # dunning's final actions (the dunning issue drives these)
    (PAST_DUE, "dunning_unpaid"): UNPAID,
    (PAST_DUE, "dunning_cancel"): CANCELED,
    (UNPAID, "dunning_cancel"): CANCELED,
    # customer or merchant actions
    (TRIALING, "pause"): PAUSED,
    (ACTIVE, "pause"): PAUSED,
    (PAST_DUE, "pause"): PAUSED,
    (UNPAID, "pause"): PAUSED,
    (PAUSED, "resume"): ACTIVE,
    # resumed before the end of the trial it was paused in: the trial goes on
    (PAUSED, "resume_trial"): TRIALING,
    (TRIALING, "cancel"): CANCELED,
    (ACTIVE, "cancel"): CANCELED,
    (PAST_DUE, "cancel"): CANCELED,
    (UNPAID, "cancel"): CANCELED,
    (PAUSED, "cancel"): CANCELED,
}

_WHY = {
    CANCELED: "it is canceled; create a new subscription instead",
    INCOMPLETE_EXPIRED: "its first payment never arrived and it expired; create a new subscription",
    INCOMPLETE: "its first invoice is not paid yet; pay it (or cancel the subscription) first",
    PAUSED: "it is paused; resume it first",
}


def transition(subscription_id: str, status: str, event: str) -> str:
    """The status after `event`, or a Conflict that says why the change is not possible now."""
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        why = _WHY.get(status, f"it is {status}")
        raise Conflict(
            f"Subscription {subscription_id} cannot {event.replace('_', ' ')}: {why}.",
            code="subscription_status_conflict",
        ) from None


def can(status: str, event: str) -> bool:
    return (status, event) in TRANSITIONS
