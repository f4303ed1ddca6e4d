"""Customer emails (payment failed, card expiring, trial ending) through a real SMTP server on loopback
(aiosmtpd) or into .eml files, and the portal's payment-method page that their links open."""

from __future__ import annotations

import email
import email.policy
import logging
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage as ParsedEmail
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from billing.clock import SYSTEM_CLOCK
from billing.db.engine import transaction
from billing.invoices.models import Invoice
from billing.notifications import sender as email_sender
from billing.notifications.emails import queue_payment_failed_email
from billing.notifications.jobs import send_emails
from billing.notifications.models import EmailMessage
from billing.notifications.transport import SmtpTransport, Transport, outbox_folder, parse_smtp_url
from billing.services import Services
from billing.settings.service import SANDBOX_CONNECTION
from tests.billing.channel_helpers import configure_channels, sign_agreement
from tests.billing.payment_helpers import configure_gateways, free_port
from tests.billing.portal_helpers import form, sign_in, visible_text, visitor
from tests.billing.world import Billing

GOOD = "4242424242424242"
DECLINES = "4000000000000341"  # attaches, every charge declined card_declined (soft)
T0 = datetime(2027, 3, 1, 10, tzinfo=UTC)
SENDER = "billing@example.com"


# --- a real SMTP server ---------------------------------------------------------------------------------------


@dataclass
class Inbox:
    """What the SMTP server on loopback accepted: (recipients, parsed message)."""

    received: list[tuple[list[str], ParsedEmail]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, ParsedEmail)
        self.received.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def to(self, address: str, kind: str = "payment_failed") -> list[ParsedEmail]:
        return [
            message
            for recipients, message in self.received
            if address in recipients and message["X-Billing-Email-Kind"] == kind
        ]


@dataclass
class SmtpServer:
    port: int
    inbox: Inbox
    controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(port=free_port(), inbox=Inbox())
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def drain(services: Services, transport: Transport, now: datetime | None = None) -> None:
    """Send everything due (other tests' emails too: each test looks only at its own recipients)."""
    while True:
        report = await email_sender.send_due_emails(services.sessions, transport, sender=SENDER, now=now)
        if report.sent + report.retried + report.failed == 0:
            return


def body(message: ParsedEmail, subtype: str = "plain") -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


async def emails_of(services: Services, customer: str, kind: str | None = None) -> list[EmailMessage]:
    async with services.sessions() as session:
        query = select(EmailMessage).where(EmailMessage.customer_id == customer).order_by(EmailMessage.seq)
        if kind is not None:
            query = query.where(EmailMessage.kind == kind)
        return list((await session.scalars(query)).all())


def address() -> str:
    return f"cust-{secrets.token_hex(6)}@example.com"


async def attach(
    api: httpx.AsyncClient, customer: str, number: str, *, month: int = 12, year: int = 2040
) -> str:
    created = await api.post(
        "/v1/payment_methods",
        json={
            "customer": customer,
            "card": {"number": number, "exp_month": month, "exp_year": year, "cvc": "123"},
        },
    )
    assert created.status_code == 200, created.text
    pm: str = created.json()["id"]
    updated = await api.patch(f"/v1/customers/{customer}", json={"default_payment_method": pm})
    assert updated.status_code == 200, updated.text
    return pm


async def failed_renewal(
    api: httpx.AsyncClient, services: Services, *, locale: str, name: str | None = "Ada"
) -> tuple[Billing, str, str, dict[str, Any]]:
    """A customer whose 7-day trial converts with a declining card: the first renewal fails on the clock."""
    await configure_gateways(api, dict(SANDBOX_CONNECTION))
    world = Billing(api, services)
    await world.start(T0)
    to = address()
    fields: dict[str, Any] = {"email": to, "locale": locale, "currency": "USD"}
    if name:
        fields["name"] = name
    customer = await world.customer(**fields)
    await attach(api, customer, DECLINES)
    plan = await world.plan(2500, name="Team")
    sub = await world.post("/v1/subscriptions", {"customer": customer, "plan": plan, "trial_period_days": 7})
    await world.advance(T0 + timedelta(days=8))
    after = await world.get(f"/v1/subscriptions/{sub['id']}")
    assert after["status"] == "past_due"
    invoice = await world.get(f"/v1/invoices/{after['latest_invoice']}")
    assert invoice["status"] == "open"
    return world, customer, to, invoice


def portal_path(text: str) -> str:
    match = re.search(r"https?://\S+/portal/s/ps_[0-9A-Za-z]{24}\.[0-9]+\.[A-Za-z0-9_-]{43}", text)
    assert match is not None, text
    return urlsplit(match.group(0)).path


# --- payment failed ---------------------------------------------------------------------------------------------


async def test_a_failed_renewal_emails_the_customer_in_english_through_smtp(
    api: httpx.AsyncClient, services: Services, smtp: SmtpServer
) -> None:
    _, customer, to, invoice = await failed_renewal(api, services, locale="en")
    queued = await emails_of(services, customer, "payment_failed")
    assert len(queued) == 1 and queued[0].status == "pending"

    await drain(services, SmtpTransport(parse_smtp_url(smtp.url)))

    [message] = smtp.inbox.to(to)
    assert message["To"] == to
    assert message["From"].addresses[0].addr_spec == SENDER
    assert message["Subject"] == f"Payment failed for invoice {invoice['number']}"
    assert message["Content-Language"] == "en"
    text = body(message)
    assert "Hello Ada," in text
    assert (
        f"We could not collect $25.00 for invoice {invoice['number']} from your card Visa •••• 0341." in text
    )
    assert "Your card was declined." in text  # dunning.messages, the customer's words for card_declined
    # The trial ends on Mar 9 (the first midnight 7 days after Mar 1 10:00), the renewal is declined, and the
    # day-1 retry of the schedule falls on Mar 10.
    assert invoice["next_payment_attempt"].startswith("2027-03-10T")
    assert "We will try again on Mar 10, 2027." in text
    assert portal_path(text).startswith("/portal/")
    html_part = body(message, "html")
    assert "$25.00" in html_part and portal_path(text) in html_part
    sent = await emails_of(services, customer, "payment_failed")
    assert sent[0].status == "sent" and sent[0].attempts == 1 and sent[0].sent_at is not None


async def test_the_payment_failed_email_is_in_simplified_chinese_for_a_zh_cn_customer(
    api: httpx.AsyncClient, services: Services, smtp: SmtpServer
) -> None:
    _, _, to, invoice = await failed_renewal(api, services, locale="zh-CN", name="李雷")
    await drain(services, SmtpTransport(parse_smtp_url(smtp.url)))
    [message] = smtp.inbox.to(to)
    assert message["Subject"] == f"发票 {invoice['number']} 付款失败"
    assert message["Content-Language"] == "zh-CN"
    text = body(message)
    assert "李雷，您好：" in text
    assert f"我们未能从您的银行卡 Visa •••• 0341 收取发票 {invoice['number']} 的款项 US$25.00。" in text
    assert "您的银行卡被拒绝。" in text
    assert invoice["next_payment_attempt"].startswith("2027-03-10T")
    assert "我们将于 2027年3月10日 再次尝试扣款" in text
    assert "更新银行卡" in body(message, "html")


async def test_a_customer_paying_by_debit_agreement_is_asked_to_update_the_payment_method_not_a_card(
    api: httpx.AsyncClient, services: Services
) -> None:
    """A UnionPay agreement whose debits fail for lack of balance: the email names the payment method, not a card
    the customer does not have, in the customer's language."""
    await configure_channels(api, {"id": "unionpay", "type": "unionpay", "url": None})
    world = Billing(api, services)
    await world.start(T0)
    customer = await world.customer(email=address(), locale="zh-CN", currency="CNY", name="韩梅梅")
    pm = await sign_agreement(api, customer, "unionpay", buyer="buyer_poor")
    await api.patch(f"/v1/customers/{customer}", json={"default_payment_method": pm["id"]})
    plan = await world.plan(9900, name="团队版", currency="CNY")
    sub = await world.post("/v1/subscriptions", {"customer": customer, "plan": plan, "trial_period_days": 7})
    await world.advance(T0 + timedelta(days=8))
    assert (await world.get(f"/v1/subscriptions/{sub['id']}"))["status"] == "past_due"
    [sent] = await emails_of(services, customer, "payment_failed")
    assert (
        "我们将于 2027年3月10日 再次尝试扣款。如果您在此之前添加新的付款方式，我们会立即使用它扣款。"
        in sent.text_body
    )
    assert "请在以下安全页面更新您的付款方式" in sent.text_body
    assert "更新付款方式" in sent.html_body
    assert "银行卡" not in sent.text_body and "银行卡" not in sent.html_body


async def test_hard_declines_and_the_final_notice_say_what_happens_next(
    api: httpx.AsyncClient, services: Services
) -> None:
    _, customer, _, invoice_json = await failed_renewal(api, services, locale="en")
    async with transaction(services.sessions) as session:
        invoice = await session.get(Invoice, invoice_json["id"])
        assert invoice is not None
        await queue_payment_failed_email(
            session, invoice, SYSTEM_CLOCK, decline_class="hard", next_attempt=None, final=False
        )
        await queue_payment_failed_email(
            session, invoice, SYSTEM_CLOCK, decline_class="soft", next_attempt=None, final=True
        )
        # The same call again (a task that runs twice) queues nothing more.
        await queue_payment_failed_email(
            session, invoice, SYSTEM_CLOCK, decline_class="soft", next_attempt=None, final=True
        )
    emails = await emails_of(services, customer, "payment_failed")
    texts = [e.text_body for e in emails]
    assert len(emails) == 2  # the dunning one and the final notice (the "hard" call shares the first's key)
    assert emails[1].subject.startswith("Final notice: ")
    assert "This was our last automatic attempt" in texts[1]


async def test_a_customer_without_an_email_address_gets_nothing_queued(
    api: httpx.AsyncClient, services: Services
) -> None:
    await configure_gateways(api, dict(SANDBOX_CONNECTION))
    world = Billing(api, services)
    await world.start(T0)
    customer = await world.customer(currency="USD")
    await attach(api, customer, DECLINES)
    sub = await world.post(
        "/v1/subscriptions", {"customer": customer, "plan": await world.plan(2500), "trial_period_days": 7}
    )
    await world.advance(T0 + timedelta(days=8))
    assert (await world.get(f"/v1/subscriptions/{sub['id']}"))["status"] == "past_due"
    assert await emails_of(services, customer) == []


# --- transports -------------------------------------------------------------------------------------------------


async def test_without_smtp_url_the_worker_writes_eml_files_into_outbox_mail(
    api: httpx.AsyncClient, services: Services
) -> None:
    assert services.settings.smtp_url is None
    _, customer, to, invoice = await failed_renewal(api, services, locale="zh-CN", name="韩梅梅")
    [queued] = await emails_of(services, customer, "payment_failed")

    # The worker's own job, with the process's settings: no SMTP_URL, so files.
    while (await send_emails({"services": services}))["sent"]:
        pass

    folder = outbox_folder(services.settings)
    [path] = [p for p in folder.glob("*.eml") if queued.id in p.name]
    raw = path.read_bytes()
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, ParsedEmail)
    assert message["To"] == to
    assert message["Subject"] == f"发票 {invoice['number']} 付款失败"
    # Readable as it is: the UTF-8 body is in the file, not base64.
    assert "韩梅梅，您好：".encode() in raw
    assert "US$25.00" in body(message)
    assert not list(folder.glob(".writing-*"))
    assert {row.status for row in await emails_of(services, customer)} == {"sent"}


async def test_an_email_is_kept_and_retried_while_the_smtp_server_is_down(
    api: httpx.AsyncClient, services: Services
) -> None:
    _, customer, to, _ = await failed_renewal(api, services, locale="en")
    down = SmtpServer(port=free_port(), inbox=Inbox())  # nothing listens there yet
    transport = SmtpTransport(parse_smtp_url(down.url + "?timeout=5"))
    now = datetime.now(UTC)

    await drain(services, transport, now=now)
    [row] = await emails_of(services, customer, "payment_failed")
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error and "Connection" in row.last_error
    assert row.next_attempt_at == now + email_sender.retry_delay(1)
    # Not due yet: nothing is attempted before the backoff.
    await drain(services, transport, now=now + timedelta(seconds=30))
    assert (await emails_of(services, customer, "payment_failed"))[0].attempts == 1

    down.start()
    try:
        await drain(services, transport, now=now + timedelta(minutes=2))
    finally:
        down.stop()
    [row] = await emails_of(services, customer, "payment_failed")
    assert (row.status, row.attempts) == ("sent", 2)
    assert len(down.inbox.to(to)) == 1


async def test_an_email_is_given_up_after_max_attempts(api: httpx.AsyncClient, services: Services) -> None:
    _, customer, _, _ = await failed_renewal(api, services, locale="en")
    transport = SmtpTransport(parse_smtp_url(f"smtp://127.0.0.1:{free_port()}?timeout=5"))
    moment = datetime.now(UTC)
    for _ in range(email_sender.MAX_ATTEMPTS):
        await drain(services, transport, now=moment)
        moment += timedelta(days=2)
    [row] = await emails_of(services, customer, "payment_failed")
    assert (row.status, row.attempts) == ("failed", email_sender.MAX_ATTEMPTS)
    assert row.last_error


def test_smtp_urls_are_read_with_their_tls_mode_and_credentials() -> None:
    plain = parse_smtp_url("smtp://mailer:p%40ss@mail.example.com:587?starttls=true&timeout=7")
    assert (plain.host, plain.port, plain.starttls, plain.implicit_tls) == (
        "mail.example.com",
        587,
        True,
        False,
    )
    assert (plain.username, plain.password, plain.timeout) == ("mailer", "p@ss", 7.0)
    tls = parse_smtp_url("smtps://mail.example.com")
    assert (tls.port, tls.implicit_tls, tls.starttls, tls.username) == (465, True, False, None)
    with pytest.raises(ValueError, match="SMTP_URL must look like"):
        parse_smtp_url("http://mail.example.com")


# --- card expiring and trial ending -------------------------------------------------------------------------------


async def test_a_card_about_to_expire_is_warned_about_once(
    api: httpx.AsyncClient, services: Services
) -> None:
    await configure_gateways(api, dict(SANDBOX_CONNECTION))
    world = Billing(api, services)
    start = datetime(2027, 1, 10, 9, tzinfo=UTC)
    await world.start(start)
    customer = await world.customer(email=address(), currency="USD", name="Grace")
    pm = await attach(api, customer, GOOD, month=2, year=2027)
    await world.subscribe(customer, await world.plan(1000), collection_method="charge_automatically")

    # The card is good until the end of February: 30 days before that is January 30.
    await world.advance(datetime(2027, 1, 29, 12, tzinfo=UTC))
    assert await emails_of(services, customer, "card_expiring") == []
    await world.advance(datetime(2027, 1, 31, 12, tzinfo=UTC))
    [warning] = await emails_of(services, customer, "card_expiring")
    assert warning.subject == "Your card ending in 4242 expires soon"
    assert "expires at the end of February 2027" in warning.text_body
    assert warning.dedupe_key == f"card_expiring:{pm}:2027-02"
    portal_path(warning.text_body)
    # Every later daily scan sees the same card: still one email.
    await world.advance(datetime(2027, 2, 20, 12, tzinfo=UTC))
    assert len(await emails_of(services, customer, "card_expiring")) == 1


async def test_the_trial_ending_email_goes_with_trial_will_end_on_the_test_clock(
    api: httpx.AsyncClient, services: Services
) -> None:
    await configure_gateways(api, dict(SANDBOX_CONNECTION))
    world = Billing(api, services)
    await world.start(T0)
    customer = await world.customer(email=address(), currency="USD", locale="zh-CN")
    await attach(api, customer, GOOD)
    plan = await world.plan(2500, name="Team")
    sub = await world.post("/v1/subscriptions", {"customer": customer, "plan": plan, "trial_period_days": 14})
    trial_end = datetime.fromisoformat(sub["trial_end"])
    await world.advance(trial_end - timedelta(days=3) - timedelta(hours=1))
    assert await emails_of(services, customer, "trial_ending") == []
    await world.advance(trial_end - timedelta(days=2))
    events = await world.get("/v1/events", object_id=sub["id"], type="subscription.trial_will_end")
    assert len(events["data"]) == 1
    [mail] = await emails_of(services, customer, "trial_ending")
    # 14 days after Mar 1 10:00, the first midnight is Mar 16.
    assert sub["trial_end"] == "2027-03-16T00:00:00Z"
    assert mail.subject == "您的 Team 试用将于 2027年3月16日 结束"
    assert "首张发票（2027年3月16日至4月16日）金额为 US$25.00。" in mail.text_body
    assert "Visa •••• 4242" in mail.text_body
    assert mail.locale == "zh-CN"


# --- the portal the emails link to ------------------------------------------------------------------------------


async def test_the_email_link_opens_the_payment_method_page_and_a_new_card_recovers_the_invoice(
    api: httpx.AsyncClient, app: Any, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    world, customer, _, invoice = await failed_renewal(api, services, locale="en")
    [mail] = await emails_of(services, customer, "payment_failed")
    link = portal_path(mail.text_body)

    async with visitor(app) as browser:
        landing = await sign_in(browser, link)
        assert landing == "/portal/payment_methods"
        page = await browser.get(landing)
        assert page.status_code == 200
        assert page.headers["cache-control"] == "private, no-store"
        words = visible_text(page.text)
        assert "Visa •••• 0341" in words and "12/2040" in words and "Default" in words

        caplog.set_level(logging.DEBUG)
        added = await browser.post(
            landing,
            data={
                **form(page.text, landing),
                "number": GOOD,
                "exp_month": "11",
                "exp_year": "2041",
                "cvc": "123",
            },
        )
        assert added.status_code == 303
        shown = await browser.get(added.headers["location"])
        assert "Your card was added and is now your default." in visible_text(shown.text)
        assert GOOD not in shown.text and GOOD not in caplog.text

    customer_now = await world.get(f"/v1/customers/{customer}")
    new_pm = await world.get(f"/v1/payment_methods/{customer_now['default_payment_method']}")
    assert (new_pm["card"]["last4"], new_pm["card"]["exp_year"]) == ("4242", 2041)
    # The same use cases as the API: dunning's retry of the open invoice ran at once.
    assert (await world.get(f"/v1/invoices/{invoice['id']}"))["status"] == "paid"
    sub = await world.get(f"/v1/subscriptions/{invoice['subscription']}")
    assert sub["status"] == "active"


async def test_an_email_link_opens_again_for_seven_days_of_the_customers_clock(
    api: httpx.AsyncClient, app: Any, services: Services
) -> None:
    world, customer, _, _ = await failed_renewal(api, services, locale="zh-CN")
    [mail] = await emails_of(services, customer, "payment_failed")
    link = portal_path(mail.text_body)
    # People click an email twice, and mail scanners fetch links first: an email link opens each time.
    for _ in range(2):
        async with visitor(app) as browser:
            landing = await sign_in(browser, link)
            assert "支付方式" in (await browser.get(landing)).text
    now = datetime.fromisoformat((await world.get(f"/v1/test_clocks/{world.clock}"))["frozen_time"])
    await world.advance(now + timedelta(days=7, minutes=1))
    async with visitor(app) as browser:
        expired = await browser.get(link)
        assert expired.status_code == 410 and "此链接已过期" in expired.text


async def test_portal_sessions_are_validated_like_every_api_call(api: httpx.AsyncClient) -> None:
    missing = await api.post("/v1/portal_sessions", json={"customer": "cus_" + "x" * 24})
    assert missing.status_code == 404
    customer = (await api.post("/v1/customers", json={})).json()["id"]
    bad = await api.post(
        "/v1/portal_sessions", json={"customer": customer, "return_url": "javascript:alert(1)"}
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "return_url"


async def test_the_trial_ending_email_quotes_what_the_first_invoice_will_charge(
    api: httpx.AsyncClient, services: Services
) -> None:
    """The plan's list price is 25.00; a 20 % coupon and a 10 % sales tax make the first invoice 22.00."""
    await configure_gateways(api, dict(SANDBOX_CONNECTION))
    world = Billing(api, services)
    await world.start(T0)
    customer = await world.customer(email=address(), currency="USD", locale="en")
    await attach(api, customer, GOOD)
    coupon = await world.post("/v1/coupons", {"percent_off": "20", "duration": "forever"})
    tax = await world.post("/v1/tax_rates", {"display_name": "Sales tax", "percentage": "10"})
    sub = await world.post(
        "/v1/subscriptions",
        {
            "customer": customer,
            "plan": await world.plan(2500, name="Team"),
            "trial_period_days": 14,
            "coupon": coupon["id"],
            "tax_rates": [tax["id"]],
        },
    )
    assert sub["trial_end"] == "2027-03-16T00:00:00Z"
    await world.advance(datetime(2027, 3, 13, 1, tzinfo=UTC))
    [mail] = await emails_of(services, customer, "trial_ending")
    assert mail.subject == "Your Team trial ends on Mar 16, 2027"
    assert "Your first invoice, for Mar 16\u2009–\u2009Apr 16, 2027, will be $22.00." in mail.text_body
    assert "$25.00" not in mail.text_body
    assert "We will charge your card Visa •••• 4242 on that date." in mail.text_body


async def test_a_send_invoice_trial_is_not_asked_for_a_card(
    api: httpx.AsyncClient, services: Services
) -> None:
    world = Billing(api, services)
    await world.start(T0)
    customer = await world.customer(email=address(), currency="USD", locale="zh-CN")
    sub = await world.subscribe(
        customer, await world.plan(2500, name="Team"), trial_period_days=14, days_until_due=10
    )
    assert sub["collection_method"] == "send_invoice"
    await world.advance(datetime(2027, 3, 13, 1, tzinfo=UTC))
    [mail] = await emails_of(services, customer, "trial_ending")
    assert "首张发票（2027年3月16日至4月16日）金额为 US$25.00。" in mail.text_body
    assert "届时我们将向您发送发票，请在 10 天内付款。" in mail.text_body
    # No card is asked for, nor offered to manage: this customer pays the invoices it is sent.
    assert "银行卡" not in mail.text_body and "/portal/" not in mail.text_body


async def test_no_trial_ending_email_for_a_subscription_that_cancels_when_its_trial_ends(
    api: httpx.AsyncClient, services: Services
) -> None:
    await configure_gateways(api, dict(SANDBOX_CONNECTION))
    world = Billing(api, services)
    await world.start(T0)
    customer = await world.customer(email=address(), currency="USD")
    await attach(api, customer, GOOD)
    sub = await world.post(
        "/v1/subscriptions",
        {"customer": customer, "plan": await world.plan(2500, name="Team"), "trial_period_days": 14},
    )
    await world.post(f"/v1/subscriptions/{sub['id']}/cancel", {"at_period_end": True})
    await world.advance(datetime(2027, 3, 17, tzinfo=UTC))
    assert await emails_of(services, customer, "trial_ending") == []
    # The app is still told the trial ends (the event is about the subscription, not a message to the customer).
    events = await world.get("/v1/events", object_id=sub["id"], type="subscription.trial_will_end")
    assert len(events["data"]) == 1
    assert (await world.subscription(sub["id"]))["status"] == "canceled"
