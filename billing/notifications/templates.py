"""Customer emails as text: plain text and a simple HTML part, from values already formatted for the locale.

No database here: `billing.notifications.emails` gathers and formats the facts (amounts and dates by babel
through `billing.invoices.documents`), these functions only arrange the words of `billing.notifications.texts`.
Every value is escaped in the HTML part.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from billing.invoices.labels import label
from billing.notifications.texts import text
from billing.settings.branding import Branding


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class Letter:
    """Paragraphs and links that make both parts of an email."""

    locale: str
    merchant: str
    customer_name: str | None
    subject: str
    paragraphs: tuple[str, ...]
    # (label, url): a button in HTML, "label\nurl" in text.
    action: tuple[str, str] | None = None
    details: tuple[tuple[str, str], ...] = ()
    after: tuple[str, ...] = ()
    # The merchant's brand (settings.branding): its logo on top, its colour on the button, its support address.
    brand: Branding | None = None


def _greeting(letter: Letter) -> str:
    if letter.customer_name:
        return text("greeting", letter.locale, name=letter.customer_name)
    return text("greeting_anonymous", letter.locale)


def render(letter: Letter) -> RenderedEmail:
    locale = letter.locale
    # The first paragraph says what happened; the figures follow it, then the rest.
    first, rest = letter.paragraphs[:1], letter.paragraphs[1:]
    lines = [_greeting(letter), ""]
    for paragraph in first:
        lines += [paragraph, ""]
    if letter.details:
        lines += [text("detail", locale, name=name, value=value) for name, value in letter.details] + [""]
    for paragraph in rest:
        lines += [paragraph, ""]
    if letter.action:
        lines += [letter.action[0], letter.action[1], ""]
    for paragraph in letter.after:
        lines += [paragraph, ""]
    brand = letter.brand
    support = text("support", locale, email=brand.support_email) if brand and brand.support_email else None
    lines += [text("signature", locale, merchant=letter.merchant), ""]
    if support:
        lines += [support, ""]
    lines += [text("footer", locale, merchant=letter.merchant)]
    accent = brand.accent_color if brand else "#1a56db"

    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{e(locale)}"><head><meta charset="utf-8"><title>{e(letter.subject)}</title></head>',
        "<body style=\"font-family:-apple-system,Segoe UI,Helvetica,Arial,'PingFang SC','Microsoft YaHei',"
        'sans-serif;color:#1a1a1a;line-height:1.5;max-width:600px;margin:0 auto;padding:24px">',
        *(
            [
                f'<p><img src="{e(brand.logo_url)}" alt="{e(letter.merchant)}" style="max-height:48px;max-width:200px"></p>'
            ]
            if brand and brand.logo_url
            else []
        ),
        f"<p>{e(_greeting(letter))}</p>",
        *(f"<p>{e(p)}</p>" for p in first),
    ]
    if letter.details:
        parts.append('<table style="border-collapse:collapse;margin:8px 0 16px">')
        parts += [
            f'<tr><td style="padding:2px 16px 2px 0;color:#555">{e(name)}</td><td><strong>{e(value)}</strong></td></tr>'
            for name, value in letter.details
        ]
        parts.append("</table>")
    parts += [f"<p>{e(p)}</p>" for p in rest]
    if letter.action:
        label_text, url = letter.action
        parts.append(
            f'<p><a href="{e(url)}" style="display:inline-block;background:{e(accent)};color:#fff;padding:10px 18px;'
            f'border-radius:4px;text-decoration:none">{e(label_text)}</a></p>'
            f'<p style="font-size:12px;color:#555;word-break:break-all">{e(url)}</p>'
        )
    parts += [f"<p>{e(p)}</p>" for p in letter.after]
    parts += [
        f"<p>{e(text('signature', locale, merchant=letter.merchant))}</p>",
        *([f'<p style="font-size:13px;color:#555">{e(support)}</p>'] if support else []),
        f'<p style="font-size:12px;color:#777">{e(text("footer", locale, merchant=letter.merchant))}</p>',
        "</body></html>",
    ]
    return RenderedEmail(subject=letter.subject, text="\n".join(lines).strip() + "\n", html="\n".join(parts))


def payment_failed(
    *,
    branding: Branding | None = None,
    locale: str,
    merchant: str,
    customer_name: str | None,
    number: str,
    amount: str,
    card: str | None,
    why: str,
    portal_url: str,
    portal_expires: str,
    next_attempt: str | None,
    wait_for_new_card: bool,
    final: bool,
    invoice_url: str | None,
    method: str = "card",
) -> RenderedEmail:
    """Payment failed: how much, for which invoice, why, what to do (the portal link), and what happens next.
    `method` is the failed payment's method type: a customer who pays by a debit agreement is asked to update
    their payment method, not a card they do not use."""
    # The texts that name the card have a "_method" twin for every other method type.
    variant = "" if method == "card" else "_method"
    subject_key = "payment_failed_final_subject" if final else "payment_failed_subject"
    intro = (
        text("payment_failed_intro", locale, amount=amount, number=number, card=card)
        if card
        else text("payment_failed_intro_no_card", locale, amount=amount, number=number)
    )
    if final:
        then = text("final_notice" + variant, locale)
    elif wait_for_new_card:
        then = text("no_retry" + variant, locale)
    elif next_attempt is not None:
        then = text("next_attempt" + variant, locale, date=next_attempt)
    else:
        then = ""
    after = (text("view_invoice", locale, url=invoice_url),) if invoice_url else ()
    return render(
        Letter(
            brand=branding,
            locale=locale,
            merchant=merchant,
            customer_name=customer_name,
            subject=text(subject_key, locale, number=number),
            paragraphs=tuple(
                p
                for p in (
                    intro,
                    text("why", locale, reason=why),
                    then,
                    text(
                        "what_to_do",
                        locale,
                        action=text(
                            "update_method" if variant else "update_card", locale, expires=portal_expires
                        ),
                    ),
                )
                if p
            ),
            details=((label("number", locale), number), (label("amount_due", locale), amount)),
            action=(text("update_method_button" if variant else "update_card_button", locale), portal_url),
            after=after,
        )
    )


def card_expiring(
    *,
    branding: Branding | None = None,
    locale: str,
    merchant: str,
    customer_name: str | None,
    brand: str,
    last4: str,
    month: str,
    portal_url: str,
    portal_expires: str,
) -> RenderedEmail:
    return render(
        Letter(
            brand=branding,
            locale=locale,
            merchant=merchant,
            customer_name=customer_name,
            subject=text("card_expiring_subject", locale, last4=last4),
            paragraphs=(
                text("card_expiring_body", locale, brand=brand, last4=last4, month=month),
                text("update_card", locale, expires=portal_expires),
            ),
            action=(text("update_card_button", locale), portal_url),
        )
    )


@dataclass(frozen=True)
class TrialEnd:
    """What every trial-ending email says, already formatted for `locale`: the trial ends on `date`; the first
    invoice, for `period`, will be `amount`."""

    locale: str
    merchant: str
    customer_name: str | None
    plan: str
    date: str
    amount: str
    period: str
    branding: Branding | None = None


def _trial_ending_letter(
    trial: TrialEnd, then: tuple[str, ...], action: tuple[str, str] | None = None
) -> RenderedEmail:
    locale = trial.locale
    return render(
        Letter(
            brand=trial.branding,
            locale=locale,
            merchant=trial.merchant,
            customer_name=trial.customer_name,
            subject=text("trial_ending_subject", locale, plan=trial.plan, date=trial.date),
            paragraphs=(
                text(
                    "trial_ending_body",
                    locale,
                    plan=trial.plan,
                    date=trial.date,
                    amount=trial.amount,
                    period=trial.period,
                ),
                *then,
            ),
            action=action,
        )
    )


def trial_ending(trial: TrialEnd, *, card: str | None, portal_url: str, portal_expires: str) -> RenderedEmail:
    """The trial of a subscription charged automatically ends: the card that will pay the first invoice (or that
    one is needed) and the link to manage it."""
    locale = trial.locale
    card_paragraph = (
        text("trial_ending_card", locale, card=card) if card else text("trial_ending_no_card", locale)
    )
    return _trial_ending_letter(
        trial,
        (card_paragraph, text("update_card", locale, expires=portal_expires)),
        action=(text("trial_ending_manage", locale), portal_url),
    )


def trial_ending_invoiced(trial: TrialEnd, *, due_in: str | None) -> RenderedEmail:
    """The trial of a subscription paid by invoice (send_invoice) ends: the first invoice will be sent, and by
    when it is due. No card is asked for: this customer pays the invoices it is sent."""
    locale = trial.locale
    when_due = (
        text("trial_ending_invoice_due", locale, days=due_in)
        if due_in
        else text("trial_ending_invoice_now", locale)
    )
    return _trial_ending_letter(trial, (when_due,))


def invoice_issued(
    *,
    locale: str,
    merchant: str,
    customer_name: str | None,
    number: str,
    status: str,
    amount: str,
    due_date: str | None,
    automatic: bool,
    invoice_url: str,
    pdf_url: str | None,
) -> RenderedEmail:
    """The invoice itself: what it asks (or that it is paid), when it is due, and the link to its page."""
    values = {"merchant": merchant, "number": number, "amount": amount}
    if status == "paid":
        first = text("invoice_body_paid", locale, **values)
    elif status == "uncollectible":
        first = text("invoice_body_uncollectible", locale, **values)
    elif due_date is not None:
        first = text("invoice_body_open", locale, due_date=due_date, **values)
    else:
        first = text("invoice_body_open_no_due", locale, **values)
    paragraphs = (first, text("invoice_automatic", locale)) if automatic and status == "open" else (first,)
    button = "invoice_view_paid_button" if status == "paid" else "invoice_view_button"
    return render(
        Letter(
            locale=locale,
            merchant=merchant,
            customer_name=customer_name,
            subject=text("invoice_subject", locale, number=number, merchant=merchant),
            paragraphs=paragraphs,
            details=((label("number", locale), number), (label("amount_due", locale), amount)),
            action=(text(button, locale), invoice_url),
            after=(f"{label('download_pdf', locale)}: {pdf_url}",) if pdf_url else (),
        )
    )
