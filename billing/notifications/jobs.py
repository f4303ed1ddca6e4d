"""The worker's email job: drain the due part of the email outbox through the configured transport."""

from __future__ import annotations

from typing import Any

from billing.notifications.sender import send_due_emails
from billing.notifications.transport import transport_for
from billing.services import Services


async def send_emails(ctx: dict[str, Any]) -> dict[str, int]:
    """Send due customer emails (SMTP_URL, or .eml files in BILLING_DATA_DIR/outbox-mail/). Idempotent: the
    messages' rows say what is left to send, so a run that happens twice or not at all loses nothing."""
    services = ctx["services"]
    assert isinstance(services, Services)
    transport = ctx.get("email_transport")
    if transport is None:
        transport = ctx["email_transport"] = transport_for(services.settings)
    report = await send_due_emails(services.sessions, transport, sender=services.settings.mail_from)
    return dict(report.__dict__)
