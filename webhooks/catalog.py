"""Every event type the engine emits, with what it means. Code may only emit a type listed here, so this
catalog (and docs generated from it) cannot go stale."""

from __future__ import annotations

EVENT_TYPES: dict[str, str] = {
    "customer.created": "A customer was created.",
    "customer.updated": "A customer's fields or metadata changed.",
    "customer.deleted": "A customer was deleted.",
    "invoice.created": "A draft invoice was created.",
    "invoice.deleted": "A draft invoice was deleted.",
    "invoice.finalized": "An invoice was finalized: it has its number and can no longer change.",
    "invoice.paid": "An invoice was paid in full.",
    "invoice.voided": "An open invoice was voided.",
    "invoice.marked_uncollectible": "An open invoice was marked uncollectible.",
    "test_clock.created": "A test clock was created.",
    "test_clock.advancing": "A test clock started advancing to a new time.",
    "test_clock.ready": "A test clock finished running every piece of work due up to its new time.",
    "test_clock.internal_failure": "A test clock stopped advancing because a due task failed.",
    "test_clock.deleted": "A test clock and the customers living in its time were deleted.",
}
