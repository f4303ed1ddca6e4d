"""The merchant's final action when a dunning case is exhausted (SPEC §6, dunning.recovery.FINAL_EFFECTS): the
subscription canceled or left unpaid, the invoice marked uncollectible, then `dunning.exhausted`."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.invoices import states as invoice_states
from billing.invoices.models import Invoice
from billing.invoices.service import mark_uncollectible
from billing.subscriptions.service import end_after_dunning
from dunning import recovery
from dunning.cases import emit_case_event
from dunning.models import DunningCase

# The subscription's state-machine event for each status a final action leaves it in.
SUBSCRIPTION_EVENTS = {"canceled": "dunning_cancel", "unpaid": "dunning_unpaid"}


async def run_final_action(
    session: AsyncSession, dc: DunningCase, invoice: Invoice, clock: Clock, action: str
) -> None:
    """The merchant's final action, then `dunning.exhausted`. Called once per case: only the transition into
    `exhausted` leads here, under the case's row lock."""
    effect = recovery.FINAL_EFFECTS[action]  # type: ignore[index]
    event = SUBSCRIPTION_EVENTS.get(effect.subscription_status)
    if invoice.subscription_id is not None and event is not None:
        await end_after_dunning(session, invoice.subscription_id, clock, event)
    if effect.invoice_uncollectible and invoice.status == invoice_states.OPEN:
        await mark_uncollectible(session, invoice.merchant_id, invoice.id)
    emit_case_event(session, dc, "dunning.exhausted", clock)
