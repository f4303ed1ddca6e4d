"""The invoice state machine as data: every allowed (status, action) → status. Anything else is a 409."""

from __future__ import annotations

from billing.errors import Conflict

DRAFT = "draft"
OPEN = "open"
PAID = "paid"
VOID = "void"
UNCOLLECTIBLE = "uncollectible"
STATUSES = (DRAFT, OPEN, PAID, VOID, UNCOLLECTIBLE)

TRANSITIONS: dict[tuple[str, str], str] = {
    (DRAFT, "finalize"): OPEN,
    # A finalized invoice whose amount due is zero (a balance or a 100% coupon covered it) is paid at once.
    (OPEN, "settle"): PAID,
    (OPEN, "pay"): PAID,
    (OPEN, "void"): VOID,
    (OPEN, "mark_uncollectible"): UNCOLLECTIBLE,
    (UNCOLLECTIBLE, "pay"): PAID,
    (UNCOLLECTIBLE, "void"): VOID,
}

_WHY: dict[str, str] = {
    DRAFT: "it is still a draft: finalize it first",
    PAID: "it is paid; to give money back, create a credit note",
    VOID: "it is void and can no longer change",
    UNCOLLECTIBLE: "it is marked uncollectible",
    OPEN: "it is open",
}


def transition(invoice_id: str, status: str, action: str) -> str:
    """The status after `action`, or a Conflict that says why the action is not possible now."""
    try:
        return TRANSITIONS[(status, action)]
    except KeyError:
        allowed = sorted(a for (s, a) in TRANSITIONS if s == status and a != "settle")
        hint = f" Possible now: {', '.join(allowed)}." if allowed else ""
        raise Conflict(
            f"Invoice {invoice_id} cannot {action.replace('_', ' ')}: {_WHY[status]}.{hint}",
            code="invoice_status_conflict",
        ) from None
