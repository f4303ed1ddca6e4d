"""How an email leaves: an SMTP server given by `SMTP_URL`, or, with none configured, an `.eml` file in
`BILLING_DATA_DIR/outbox-mail/` that a developer opens with any mail reader or text editor.

`SMTP_URL` forms: ``smtp://host:port`` (plain; add ``?starttls=true`` to upgrade with STARTTLS),
``smtps://host:port`` (implicit TLS, port 465 by default), with optional ``user:password@`` (percent-encoded)
and ``?timeout=SECONDS`` (default 30). smtplib is blocking, so each message is sent on a thread.
"""

from __future__ import annotations

import asyncio
import os
import smtplib
import ssl
import tempfile
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from billing.config import Settings


class PermanentFailure(Exception):
    """The server refused the message for good (5xx): sending it again cannot succeed."""


@dataclass(frozen=True)
class Outgoing:
    """One email ready to leave, detached from the database."""

    id: str
    to: str
    sender: str
    sender_name: str | None
    locale: str
    subject: str
    text: str
    html: str | None
    kind: str


def build_message(mail: Outgoing, *, date: datetime, eight_bit: bool = False) -> EmailMessage:
    """An RFC 5322 message (UTF-8): plain text, plus the HTML alternative when there is one. `eight_bit`
    keeps the body readable as it is (for files); SMTP gets quoted-printable, which any server accepts."""
    message = EmailMessage()
    message["From"] = formataddr((mail.sender_name, mail.sender)) if mail.sender_name else mail.sender
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(date)
    domain = mail.sender.rpartition("@")[2] or "localhost"
    # Stable across attempts: a copy sent again after a lost acknowledgement is recognisably the same message.
    message["Message-ID"] = f"<{mail.id}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"
    message["X-Billing-Email-Id"] = mail.id
    message["X-Billing-Email-Kind"] = mail.kind
    cte = "8bit" if eight_bit else "quoted-printable"
    message.set_content(mail.text, charset="utf-8", cte=cte)
    if mail.html:
        message.add_alternative(mail.html, subtype="html", charset="utf-8", cte=cte)
    # After the body: setting content clears every Content-* header.
    message["Content-Language"] = mail.locale
    return message


class Transport(Protocol):
    description: str

    async def send(self, mail: Outgoing, date: datetime) -> None:
        """Deliver or raise: PermanentFailure when retrying is pointless, anything else to retry later."""


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    username: str | None
    password: str | None
    timeout: float


def parse_smtp_url(url: str) -> SmtpConfig:
    """Read `SMTP_URL`; ValueError with what to write instead when it is malformed."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError(
            "SMTP_URL must look like smtp://user:password@host:587?starttls=true or smtps://host:465, "
            f"not {parts.scheme or '(no scheme)'}://..."
        )
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    starttls = query.get("starttls", "false").lower() in ("1", "true", "yes")
    try:
        port = parts.port or (465 if parts.scheme == "smtps" else 25)
        timeout = float(query.get("timeout", "30"))
    except ValueError:
        raise ValueError("SMTP_URL has a port or timeout that is not a number.") from None
    return SmtpConfig(
        host=parts.hostname,
        port=port,
        implicit_tls=parts.scheme == "smtps",
        starttls=starttls and parts.scheme == "smtp",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        timeout=timeout,
    )


class SmtpTransport:
    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self.description = f"SMTP server {config.host}:{config.port}"

    def _send_blocking(self, message: EmailMessage, recipient: str) -> None:
        c = self.config
        context = ssl.create_default_context()
        client: smtplib.SMTP = (
            smtplib.SMTP_SSL(c.host, c.port, timeout=c.timeout, context=context)
            if c.implicit_tls
            else smtplib.SMTP(c.host, c.port, timeout=c.timeout)
        )
        with client:
            if c.starttls:
                client.starttls(context=context)
            if c.username is not None:
                client.login(c.username, c.password or "")
            try:
                client.send_message(message, to_addrs=[recipient])
            except smtplib.SMTPRecipientsRefused as exc:
                codes = [code for code, _ in exc.recipients.values()]
                if codes and all(500 <= code < 600 for code in codes):
                    raise PermanentFailure(f"recipient refused: {exc.recipients}") from exc
                raise
            except smtplib.SMTPResponseException as exc:
                if 500 <= exc.smtp_code < 600:
                    raise PermanentFailure(f"{exc.smtp_code} {exc.smtp_error!r}") from exc
                raise

    async def send(self, mail: Outgoing, date: datetime) -> None:
        await asyncio.to_thread(self._send_blocking, build_message(mail, date=date), mail.to)


class FileTransport:
    """Writes each email as `<time>-<kind>-<id>.eml`, atomically (a reader never sees half a file)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.description = f"files in {folder}"

    def _write(self, mail: Outgoing, date: datetime) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        data = build_message(mail, date=date, eight_bit=True).as_bytes()
        target = self.folder / f"{date:%Y%m%dT%H%M%S}-{mail.kind}-{mail.id}.eml"
        fd, temporary = tempfile.mkstemp(dir=self.folder, prefix=".writing-", suffix=".eml")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return target

    async def send(self, mail: Outgoing, date: datetime) -> None:
        await asyncio.to_thread(self._write, mail, date)


def outbox_folder(settings: Settings) -> Path:
    return settings.data_dir / "outbox-mail"


def transport_for(settings: Settings) -> Transport:
    """SMTP when `SMTP_URL` is set, else files in `BILLING_DATA_DIR/outbox-mail/`."""
    if settings.smtp_url:
        return SmtpTransport(parse_smtp_url(settings.smtp_url))
    return FileTransport(outbox_folder(settings))
