"""Invoice documents for people: an invoice seen in one locale (`invoice_document`), rendered as a PDF
(`render_pdf`, reportlab) or as a self-contained HTML page (`render_html`). No Litestar here.

The data view does all the formatting, so both renderers show the same words and figures and tests can check
exact strings without parsing a PDF:

* Amounts are integer minor units turned into an exact `Decimal` of major units (``minor / 10**exponent`` by
  `Decimal.scaleb`, never a float) and formatted by babel for the locale: "$1,234.56" in English and
  "US$1,234.56" in Simplified Chinese, "¥1,234.56" for CNY in Chinese, JPY without decimals, KWD with three.
  Unit prices keep every digit they have (a price of 0.125 cents is "$0.00125").
* Dates are calendar dates in the customer's time zone, as babel writes them in the locale ("Jan 5, 2027",
  "2027年1月5日"). A period shows its start and end instants' dates, as Stripe does ("Jan 1 – Feb 1, 2027").
* Words come from `billing.invoices.labels`.

Chinese text in the PDF uses reportlab's built-in CID font STSong-Light (no font file to ship); Latin text
uses Helvetica. Each run of characters gets the font that has its glyphs, so a Chinese customer name on an
English invoice still renders.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any
from xml.sax.saxutils import escape as xml_escape
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_date, format_interval
from babel.numbers import format_currency, format_decimal
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog.coupons import get_coupon
from billing.customers.billing_details import address_lines, tax_id_label
from billing.customers.models import Customer
from billing.invoices.labels import (
    BABEL_LOCALES,
    Locale,
    label,
    line_description,
    normalize_locale,
    status_label,
)
from billing.invoices.models import Invoice, InvoiceLine
from billing.invoices.service import invoice_lines, invoice_tax_by_rate
from billing.merchants.models import Merchant
from billing.settings.branding import DEFAULT_ACCENT
from billing.settings.service import issuer_details, merchant_branding
from plans.money import currency_exponent

# --- the data view -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fact:
    """One labelled fact in the document's header (number, status, a date)."""

    key: str
    label: str
    value: str


@dataclass(frozen=True)
class DocumentLine:
    description: str
    period: str | None
    quantity: str
    unit_price: str | None
    amount: str


@dataclass(frozen=True)
class TotalRow:
    key: str
    label: str
    amount: str
    strong: bool = False


@dataclass(frozen=True)
class TaxShare:
    """The tax one rate of the invoice comes to, with what a reader needs to recognise it."""

    display_name: str
    percentage: Decimal
    inclusive: bool
    amount: int


def tax_label(share: TaxShare, locale: str) -> str:
    """ "VAT 20% (incl.)", "Sales tax 8.875%": the rate's name, its exact percentage, and whether included."""
    percentage = str(
        format_decimal(
            share.percentage.normalize(),
            locale=BABEL_LOCALES.get(locale, "en_US"),
            decimal_quantization=False,
        )
    )
    key = "tax_rate_included" if share.inclusive else "tax_rate_added"
    return label(key, locale).format(name=share.display_name or label("tax", locale), percentage=percentage)


@dataclass(frozen=True)
class InvoiceDocument:
    """An invoice as a person reads it, every word and figure already in `locale`."""

    locale: Locale
    invoice_id: str
    number: str | None
    status: str
    status_label: str
    title: str
    merchant_name: str
    watermark: str | None
    notice: str | None
    bill_to: tuple[str, ...]
    # The seller: legal name, address, tax ids (settings.business as frozen at finalization).
    issuer: tuple[str, ...]
    facts: tuple[Fact, ...]
    description: str | None
    lines: tuple[DocumentLine, ...]
    totals: tuple[TotalRow, ...]
    # The figure a reader looks for first (what is left to pay; the total once nothing is), and what to do.
    headline_amount: str
    payment_notes: tuple[str, ...]
    timezone_note: str
    filename: str
    labels: Mapping[str, str]
    amount_remaining_minor: int = 0
    # The merchant's brand (settings.branding): the accent colour, where to write, whether a logo is set.
    accent_color: str = DEFAULT_ACCENT
    support_note: str | None = None
    logo_url: str | None = None
    footer: str | None = None

    @property
    def is_draft(self) -> bool:
        return self.status == "draft"

    @property
    def payable(self) -> bool:
        """Open with something left to pay: the hosted page offers to pay it online."""
        return self.status == "open" and self.amount_remaining_minor > 0

    def fact(self, key: str) -> str | None:
        return next((f.value for f in self.facts if f.key == key), None)

    def total(self, key: str) -> str | None:
        return next((t.amount for t in self.totals if t.key == key), None)


_RENDER_LABELS = (
    "bill_to",
    "from",
    "description",
    "period",
    "quantity",
    "unit_price",
    "amount",
    "no_lines",
    "page",
    "download_pdf",
    "language",
    "amount_remaining",
    "total",
)
_UNSAFE_FILENAME = re.compile(r"[^0-9A-Za-z._-]+")


def format_amount(minor: int, currency: str, locale: str) -> str:
    """`minor` units of `currency` as a person in `locale` reads them ("$1,234.56", "US$1,234.56")."""
    major = Decimal(minor).scaleb(-currency_exponent(currency))
    return str(format_currency(major, currency.upper(), locale=BABEL_LOCALES.get(locale, "en_US")))


def format_unit_amount(minor: Decimal, currency: str, locale: str) -> str:
    """A unit price in minor units (up to 12 decimals of one) with every digit it has: "$0.00125"."""
    major = minor.normalize().scaleb(-currency_exponent(currency))
    return str(
        format_currency(
            major, currency.upper(), locale=BABEL_LOCALES.get(locale, "en_US"), decimal_quantization=False
        )
    )


def format_quantity(quantity: Decimal, locale: str) -> str:
    return str(
        format_decimal(
            quantity.normalize(), locale=BABEL_LOCALES.get(locale, "en_US"), decimal_quantization=False
        )
    )


def customer_zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def format_local_date(moment: datetime, zone: ZoneInfo, locale: str) -> str:
    """The calendar date of `moment` in `zone`, written for `locale` ("Jan 5, 2027", "2027年1月5日")."""
    return str(
        format_date(moment.astimezone(zone).date(), "medium", locale=BABEL_LOCALES.get(locale, "en_US"))
    )


def format_period(start: datetime, end: datetime, zone: ZoneInfo, locale: str) -> str:
    """A period by the local dates of its start and end ("Jan 1 – Feb 1, 2027", "2027年1月1日至2月1日")."""
    return str(
        format_interval(
            start.astimezone(zone).date(),
            end.astimezone(zone).date(),
            "yMMMd",
            locale=BABEL_LOCALES.get(locale, "en_US"),
        )
    )


def invoice_document(
    invoice: Invoice,
    lines: list[InvoiceLine],
    customer: Customer,
    merchant: Merchant,
    locale: str | None = None,
    taxes: Sequence[TaxShare] = (),
    coupon_name: str | None = None,
) -> InvoiceDocument:
    """The invoice in `locale` ("en" or "zh-CN"; by default the customer's), dates in the customer's zone.
    `taxes`: the tax rate by rate (`invoice_tax_by_rate`); without it the tax is one figure. `coupon_name` names the
    discount.

    It says what is true for the invoice's status: what remains to pay, by when and how (open); when it was paid;
    that nothing is owed and no amount due (void); what remains and who to ask (uncollectible)."""
    loc: Locale = normalize_locale(locale) or normalize_locale(customer.locale) or "en"
    zone = customer_zone(customer.timezone)
    currency = invoice.currency

    def money(minor: int) -> str:
        return format_amount(minor, currency, loc)

    def day(moment: datetime) -> str:
        return format_local_date(moment, zone, loc)

    draft = invoice.status == "draft"
    facts = [
        Fact("number", label("number", loc), invoice.number or label("no_number", loc)),
        Fact("status", label("status", loc), status_label(invoice.status, loc)),
    ]
    if invoice.finalized_at is not None:
        facts.append(Fact("date_of_issue", label("date_of_issue", loc), day(invoice.finalized_at)))
    else:
        facts.append(Fact("date_created", label("date_created", loc), day(invoice.created_at)))
    if invoice.due_date is not None:
        facts.append(Fact("due_date", label("due_date", loc), day(invoice.due_date)))
    if invoice.period_start is not None and invoice.period_end is not None:
        facts.append(
            Fact(
                "billing_period",
                label("billing_period", loc),
                format_period(invoice.period_start, invoice.period_end, zone, loc),
            )
        )
    if invoice.paid_at is not None:
        facts.append(Fact("date_paid", label("date_paid", loc), day(invoice.paid_at)))
    if invoice.voided_at is not None:
        facts.append(Fact("date_voided", label("date_voided", loc), day(invoice.voided_at)))

    document_lines = tuple(
        DocumentLine(
            description=line_description(line.description, line.type, loc),
            period=(
                format_period(line.period_start, line.period_end, zone, loc)
                if line.period_start is not None and line.period_end is not None
                else None
            ),
            quantity=format_quantity(line.quantity, loc),
            unit_price=(
                format_unit_amount(line.unit_amount_decimal, currency, loc)
                if line.unit_amount_decimal is not None
                else money(line.amount)
                if line.quantity == 1
                else None
            ),
            amount=money(line.amount),
        )
        for line in lines
    )

    # With inclusive tax the lines are gross and the subtotal net of it: say so, or the sum looks wrong.
    tax_included = any(share.inclusive for share in taxes)
    subtotal_label = label("subtotal_excl_tax" if tax_included else "subtotal", loc)
    totals = [TotalRow("subtotal", subtotal_label, money(invoice.subtotal))]
    if invoice.discount:
        discount_label = (
            label("discount_named", loc).format(name=coupon_name) if coupon_name else label("discount", loc)
        )
        totals.append(TotalRow("discount", discount_label, money(-invoice.discount)))
    if taxes:
        totals += [
            TotalRow("tax" if index == 0 else f"tax_{index}", tax_label(share, loc), money(share.amount))
            for index, share in enumerate(taxes)
        ]
    else:
        totals.append(TotalRow("tax", label("tax", loc), money(invoice.tax)))
    totals.append(TotalRow("total", label("total", loc), money(invoice.total), strong=True))
    if invoice.status != "void":
        # A void invoice is owed by nobody: no amount due, paid or remaining is shown for it.
        if invoice.balance_applied:
            # Shown with the sign it has on the way from total to amount due (credit consumed is negative).
            totals.append(
                TotalRow("balance_applied", label("balance_applied", loc), money(-invoice.balance_applied))
            )
        if invoice.prepaid_credit_amount:
            totals.append(
                TotalRow(
                    "prepaid_credit_amount",
                    label("prepaid_credit_amount", loc),
                    money(-invoice.prepaid_credit_amount),
                )
            )
        totals.append(
            TotalRow("amount_due", label("amount_due", loc), money(invoice.amount_due), strong=True)
        )
        totals.append(TotalRow("amount_paid", label("amount_paid", loc), money(invoice.amount_paid)))
        totals.append(
            TotalRow(
                "amount_remaining",
                label("amount_remaining", loc),
                money(invoice.amount_remaining),
                strong=invoice.status in ("open", "uncollectible"),
            )
        )

    brand = merchant_branding(merchant)
    # A draft shows the seller as the merchant's profile is now; an issued invoice keeps the one it was issued by.
    issuer = invoice.issuer_details or issuer_details(merchant)
    remaining = money(invoice.amount_remaining)
    notes: list[str] = []
    if invoice.status == "open":
        if invoice.due_date is not None:
            notes.append(label("pay_open_due", loc).format(amount=remaining, due_date=day(invoice.due_date)))
        else:
            notes.append(label("pay_open", loc).format(amount=remaining))
        if invoice.collection_method == "send_invoice":
            notes.append(
                label("pay_by_transfer", loc).format(
                    amount=remaining, merchant=brand.name, number=invoice.number or invoice.id
                )
            )
            if issuer.get("payment_instructions"):
                notes.append(label("payment_instructions", loc).format(text=issuer["payment_instructions"]))
        elif invoice.next_payment_attempt is not None:
            notes.append(
                label("pay_automatic_on", loc).format(
                    merchant=brand.name, date=day(invoice.next_payment_attempt)
                )
            )
        elif invoice.attempt_count:
            notes.append(label("pay_automatic_failed", loc).format(merchant=brand.name))
        else:
            notes.append(label("pay_automatic", loc))
    elif invoice.status == "paid":
        notes.append(
            label("paid_on", loc).format(date=day(invoice.paid_at))
            if invoice.paid_at is not None
            else label("paid", loc)
        )
    elif invoice.status == "void":
        notes.append(label("voided_on", loc).format(date=day(invoice.voided_at or invoice.created_at)))
    elif invoice.status == "uncollectible":
        notes.append(label("uncollectible", loc).format(amount=remaining, merchant=brand.name))
    if tax_included:
        notes.append(label("tax_included_note", loc))

    return InvoiceDocument(
        locale=loc,
        invoice_id=invoice.id,
        number=invoice.number,
        status=invoice.status,
        status_label=status_label(invoice.status, loc),
        title=label("title", loc),
        merchant_name=brand.name,
        watermark=label("draft_watermark", loc) if draft else None,
        notice=label("draft_notice", loc) if draft else None,
        bill_to=bill_to_lines(invoice, customer, loc),
        issuer=party_lines(issuer.get("legal_name"), None, issuer.get("address"), issuer.get("tax_ids"), loc),
        facts=tuple(facts),
        description=invoice.description,
        lines=document_lines,
        totals=tuple(totals),
        # What the customer pays (or paid): after the balance and prepaid credits, not the invoice's total.
        headline_amount=(
            remaining
            if invoice.status in ("open", "uncollectible")
            else label("void_headline", loc)
            if invoice.status == "void"
            else money(invoice.amount_paid)
            if invoice.status == "paid"
            else money(invoice.total)
        ),
        payment_notes=tuple(notes),
        timezone_note=label("times_in", loc).format(timezone=zone.key),
        filename=_UNSAFE_FILENAME.sub("_", invoice.number or invoice.id) + ".pdf",
        labels={key: label(key, loc) for key in _RENDER_LABELS},
        amount_remaining_minor=invoice.amount_remaining,
        accent_color=brand.accent_color,
        support_note=label("questions", loc).format(email=brand.support_email)
        if brand.support_email
        else None,
        logo_url=brand.logo_url,
        footer=issuer.get("invoice_footer"),
    )


def party_lines(
    name: str | None,
    email: str | None,
    address: dict[str, Any] | None,
    tax_ids: Sequence[dict[str, str]] | None,
    locale: str,
) -> tuple[str, ...]:
    """A party to the invoice as printed: name, email, address lines, then each tax id with its kind."""
    lines = [str(v) for v in (name, email) if v]
    lines += address_lines(address, locale)
    colon = "：" if locale == "zh-CN" else ": "
    lines += [f"{tax_id_label(t['type'], locale)}{colon}{t['value']}" for t in tax_ids or []]
    return tuple(lines)


def bill_to_lines(invoice: Invoice, customer: Customer, locale: str) -> tuple[str, ...]:
    """Who the invoice is issued to: the details frozen at finalization (a draft shows the customer's now):
    name, email, address lines, then each tax id with its kind."""
    details = invoice.customer_details or {
        "name": customer.name,
        "email": customer.email,
        "address": customer.address,
        "tax_ids": customer.tax_ids or [],
    }
    lines = party_lines(
        details.get("name"), details.get("email"), details.get("address"), details.get("tax_ids"), locale
    )
    return lines or (customer.id,)


async def load_invoice_document(
    session: AsyncSession, invoice: Invoice, *, locale: str | None = None
) -> InvoiceDocument:
    """`invoice_document` for an invoice row, its lines, customer, merchant and tax rates read from `session`."""
    customer = await session.get(Customer, invoice.customer_id)
    merchant = await session.get(Merchant, invoice.merchant_id)
    assert customer is not None and merchant is not None  # foreign keys
    lines = await invoice_lines(session, invoice.id)
    taxes = tuple(
        TaxShare(
            share.tax_rate.display_name, share.tax_rate.percentage, share.tax_rate.inclusive, share.amount
        )
        for _, share in await invoice_tax_by_rate(session, invoice, lines) or ()
    )
    coupon_name = (
        (await get_coupon(session, invoice.merchant_id, invoice.coupon_id)).name
        if invoice.coupon_id is not None
        else None
    )
    return invoice_document(invoice, lines, customer, merchant, locale, taxes, coupon_name)


# --- PDF ---------------------------------------------------------------------------------------------------

LATIN_FONT = "Helvetica"
LATIN_BOLD = "Helvetica-Bold"
CJK_FONT = "STSong-Light"
_INK = colors.HexColor("#1f2328")
_MUTED = colors.HexColor("#59636e")
_RULE = colors.HexColor("#d1d9e0")
_HEAD_FILL = colors.HexColor("#f6f8fa")
# Spaces babel uses (thin, narrow no-break) that Helvetica's encoding lacks: drawn as a no-break space.
_SPACES = str.maketrans({"\u2009": "\u00a0", "\u202f": "\u00a0", "\u2007": "\u00a0"})


@cache
def _register_fonts() -> None:
    pdfmetrics.registerFont(UnicodeCIDFont(CJK_FONT))


def _latin(char: str) -> bool:
    """Whether Helvetica (WinAnsi encoding) has this character; everything else goes to the CJK font."""
    try:
        char.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


def _runs(text: str) -> Iterator[tuple[bool, str]]:
    """(is_latin, chunk) runs of `text`."""
    start = 0
    for index in range(1, len(text) + 1):
        if index == len(text) or _latin(text[index]) != _latin(text[start]):
            yield _latin(text[start]), text[start:index]
            start = index


def _has_cjk(text: str) -> bool:
    return any(not _latin(c) for c in text)


def _markup(text: str, *, bold: bool = False) -> str:
    """Paragraph markup for plain `text`: escaped, each run in a font that has its glyphs."""
    parts = []
    # The CJK font has no bold: a sentence mixing scripts keeps one weight rather than bold digits only.
    bold = bold and not _has_cjk(text)
    for latin, chunk in _runs(text.translate(_SPACES)):
        escaped = xml_escape(chunk).replace("\n", "<br/>")
        if not latin:
            parts.append(f'<font face="{CJK_FONT}">{escaped}</font>')
        else:
            parts.append(f"<b>{escaped}</b>" if bold else escaped)
    return "".join(parts)


def _para(text: str, style: ParagraphStyle, *, bold: bool = False) -> Paragraph:
    if _has_cjk(text):
        style = ParagraphStyle(style.name + "-cjk", parent=style, wordWrap="CJK")
    return Paragraph(_markup(text, bold=bold), style)


def _draw_text(
    canvas: Canvas,
    x: float,
    y: float,
    text: str,
    size: float,
    *,
    align: str = "left",
    bold: bool = False,
    outline: float = 0,
) -> None:
    """Draw one line of mixed Latin/CJK text directly on the canvas (headers, footers, the watermark);
    `outline` strokes the glyphs with that line width too, which thickens the CJK font that has no bold."""
    runs = [
        ((LATIN_BOLD if bold else LATIN_FONT) if latin else CJK_FONT, chunk)
        for latin, chunk in _runs(text.translate(_SPACES))
    ]
    width = sum(pdfmetrics.stringWidth(chunk, font, size) for font, chunk in runs)
    if align == "right":
        x -= width
    elif align == "center":
        x -= width / 2
    for font, chunk in runs:
        text_object = canvas.beginText(x, y)
        text_object.setFont(font, size)
        if outline:
            canvas.setLineWidth(outline)
            text_object.setTextRenderMode(2)
        text_object.textOut(chunk)
        canvas.drawText(text_object)
        x += pdfmetrics.stringWidth(chunk, font, size)


def _styles() -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("base", fontName=LATIN_FONT, fontSize=9, leading=12, textColor=_INK)
    return {
        "base": base,
        "muted": ParagraphStyle("muted", parent=base, textColor=_MUTED),
        "right": ParagraphStyle("right", parent=base, alignment=TA_RIGHT),
        "head": ParagraphStyle("head", parent=base, fontName=LATIN_BOLD, textColor=_MUTED, fontSize=8),
        "head_right": ParagraphStyle(
            "head_right", parent=base, fontName=LATIN_BOLD, textColor=_MUTED, fontSize=8, alignment=TA_RIGHT
        ),
        "merchant": ParagraphStyle("merchant", parent=base, fontSize=15, leading=19, fontName=LATIN_BOLD),
        "title": ParagraphStyle("title", parent=base, fontSize=22, leading=26, alignment=TA_RIGHT),
        "headline": ParagraphStyle("headline", parent=base, fontSize=13, leading=17, fontName=LATIN_BOLD),
        "notice": ParagraphStyle(
            "notice", parent=base, textColor=colors.HexColor("#9a3412"), alignment=TA_LEFT
        ),
    }


def _running_title(doc: InvoiceDocument) -> str:
    return f"{doc.title} {doc.number}" if doc.number else f"{doc.title} · {doc.status_label}"


def _numbered_canvas(doc: InvoiceDocument) -> type[Canvas]:
    """A canvas that knows the page count when it draws each page's footer ("Page 2 of 3")."""

    class NumberedCanvas(Canvas):  # type: ignore[misc]  # reportlab ships no types
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            count = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                self._footer(count)
                super().showPage()
            super().save()

        def _footer(self, count: int) -> None:
            width, _ = A4
            self.saveState()
            self.setFillColor(_MUTED)
            self.setStrokeColor(_RULE)
            self.line(18 * mm, 14 * mm, width - 18 * mm, 14 * mm)
            _draw_text(self, 18 * mm, 9 * mm, f"{doc.merchant_name} · {_running_title(doc)}", 8)
            page = doc.labels["page"].format(page=self._pageNumber, pages=count)
            _draw_text(self, width - 18 * mm, 9 * mm, page, 8, align="right")
            self.restoreState()

    return NumberedCanvas


def _decorate(doc: InvoiceDocument) -> Callable[[Canvas, Any], None]:
    def on_page(canvas: Canvas, template: Any) -> None:
        width, height = A4
        canvas.saveState()
        if doc.watermark:
            # Opaque and pale rather than translucent: it is drawn before the content, so it stays underneath,
            # and a translucent stroke would darken where it overlaps the fill.
            tint = colors.HexColor("#f7d9d9")
            canvas.setFillColor(tint)
            canvas.setStrokeColor(tint)
            canvas.translate(width / 2, height / 2)
            canvas.rotate(40)
            _draw_text(canvas, 0, -40, doc.watermark, 120, align="center", bold=True, outline=3)
        canvas.restoreState()
        if canvas.getPageNumber() > 1:
            canvas.saveState()
            canvas.setFillColor(_MUTED)
            _draw_text(canvas, 18 * mm, height - 12 * mm, doc.merchant_name, 8)
            _draw_text(canvas, width - 18 * mm, height - 12 * mm, _running_title(doc), 8, align="right")
            canvas.restoreState()

    return on_page


def _logo_flowable(logo: bytes | None, max_width: float, max_height: float) -> Image | None:
    """The merchant's logo scaled into the box, or None when there is none or reportlab cannot read it."""
    if not logo:
        return None
    try:
        reader = ImageReader(io.BytesIO(logo))
        width, height = reader.getSize()
    except Exception:  # an image reportlab cannot decode: the name stands alone
        return None
    scale = min(max_width / width, max_height / height, 1.0)
    return Image(io.BytesIO(logo), width=width * scale, height=height * scale, hAlign="LEFT")


def render_pdf(doc: InvoiceDocument, *, compress: bool = True, logo: bytes | None = None) -> bytes:
    """The document as an A4 PDF: header (the merchant's logo when given, its name in the accent colour),
    bill-to and facts, the lines (the table continues over as many pages as it needs, its header repeated),
    the totals, what to do, and "Page n of N" on every page. `compress=False` leaves content streams readable
    (tests look for the number in them)."""
    _register_fonts()
    styles = _styles()
    styles["merchant"] = ParagraphStyle(
        "merchant-brand", parent=styles["merchant"], textColor=colors.HexColor(doc.accent_color)
    )
    buffer = io.BytesIO()
    width, _ = A4
    usable = width - 36 * mm
    template = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=18 * mm,
        bottomMargin=22 * mm,
        title=f"{doc.title} {doc.number or doc.invoice_id}",
        author=doc.merchant_name,
        subject=f"{_running_title(doc)} · {doc.merchant_name}",
        creator="billing engine",
        pageCompression=1 if compress else 0,
        invariant=1,
    )
    story: list[Any] = []

    brand: list[Any] = [_para(doc.merchant_name, styles["merchant"], bold=True)]
    brand += [_para(value, styles["muted"]) for value in doc.issuer]
    image = _logo_flowable(logo, usable * 0.4, 16 * mm)
    if image is not None:
        brand = [image, Spacer(0, 2 * mm), *brand]
    header = Table(
        [[brand, _para(doc.title, styles["title"])]],
        colWidths=[usable * 0.6, usable * 0.4],
    )
    header.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (0, 0), 0)]))
    story += [header, Spacer(0, 4 * mm)]
    if doc.notice:
        story += [_para(doc.notice, styles["notice"], bold=True), Spacer(0, 3 * mm)]

    bill_to = [_para(doc.labels["bill_to"], styles["head"])] + [_para(v, styles["base"]) for v in doc.bill_to]
    facts = Table(
        [[_para(f.label, styles["muted"]), _para(f.value, styles["right"])] for f in doc.facts],
        colWidths=[usable * 0.2, usable * 0.3],
    )
    facts.setStyle(TableStyle([("TOPPADDING", (0, 0), (-1, -1), 1), ("BOTTOMPADDING", (0, 0), (-1, -1), 1)]))
    parties = Table([[bill_to, facts]], colWidths=[usable * 0.5, usable * 0.5])
    parties.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (0, 0), 0),
                ("RIGHTPADDING", (-1, 0), (-1, 0), 0),
            ]
        )
    )
    story += [parties, Spacer(0, 5 * mm)]

    if doc.payment_notes:
        story.append(_para(doc.payment_notes[0], styles["headline"], bold=True))
        story += [_para(note, styles["base"]) for note in doc.payment_notes[1:]]
        story.append(Spacer(0, 4 * mm))
    if doc.description:
        story += [_para(doc.description, styles["base"]), Spacer(0, 4 * mm)]

    labels = doc.labels
    rows: list[list[Any]] = [
        [
            _para(labels["description"], styles["head"]),
            _para(labels["period"], styles["head"]),
            _para(labels["quantity"], styles["head_right"]),
            _para(labels["unit_price"], styles["head_right"]),
            _para(labels["amount"], styles["head_right"]),
        ]
    ]
    for line in doc.lines:
        rows.append(
            [
                _para(line.description, styles["base"]),
                _para(line.period or "", styles["muted"]),
                _para(line.quantity, styles["right"]),
                _para(line.unit_price or "", styles["right"]),
                _para(line.amount, styles["right"]),
            ]
        )
    if not doc.lines:
        rows.append([_para(labels["no_lines"], styles["muted"]), "", "", "", ""])
    table = Table(
        rows,
        # The period gets room for a Chinese period across two months on one line ("2027年3月11日至4月1日").
        colWidths=[usable * 0.34, usable * 0.25, usable * 0.09, usable * 0.16, usable * 0.16],
        repeatRows=1,
    )
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("BACKGROUND", (0, 0), (-1, 0), _HEAD_FILL),
                ("LINEBELOW", (0, 0), (-1, 0), 0.75, _RULE),
                ("LINEBELOW", (0, 1), (-1, -1), 0.25, _RULE),
                ("TOPPADDING", (0, 0), (-1, -1), 4),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 4),
            ]
        )
    )
    story += [table, Spacer(0, 5 * mm)]

    totals = Table(
        [
            [
                _para(row.label, styles["base"], bold=row.strong),
                _para(row.amount, styles["right"], bold=row.strong),
            ]
            for row in doc.totals
        ],
        colWidths=[usable * 0.25, usable * 0.2],
        hAlign="RIGHT",
    )
    strong_rows = [i for i, row in enumerate(doc.totals) if row.strong]
    totals.setStyle(
        TableStyle(
            [("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2)]
            + [("LINEABOVE", (0, i), (-1, i), 0.5, _RULE) for i in strong_rows]
        )
    )
    story += [totals, Spacer(0, 6 * mm), _para(doc.timezone_note, styles["muted"])]
    if doc.support_note:
        story.append(_para(doc.support_note, styles["muted"]))
    if doc.footer:
        story += [Spacer(0, 3 * mm), _para(doc.footer, styles["muted"])]

    on_page = _decorate(doc)
    template.build(story, onFirstPage=on_page, onLaterPages=on_page, canvasmaker=_numbered_canvas(doc))
    return buffer.getvalue()


# --- HTML --------------------------------------------------------------------------------------------------

_CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f6f8fa;color:#1f2328;font:15px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",
 "PingFang SC","Hiragino Sans GB","Microsoft YaHei","Noto Sans CJK SC",Helvetica,Arial,sans-serif}
main{position:relative;max-width:820px;margin:32px auto;padding:40px;background:#fff;border:1px solid #d1d9e0;
 border-radius:8px;overflow:hidden}
.watermark{position:absolute;top:38%;left:0;right:0;text-align:center;font-size:120px;font-weight:700;
 color:rgba(204,26,26,.12);transform:rotate(-30deg);pointer-events:none;user-select:none}
.actions{display:flex;gap:16px;justify-content:flex-end;font-size:14px;margin-bottom:16px}
.actions a{color:#0969da}
header{display:flex;justify-content:space-between;align-items:baseline;gap:16px}
.merchant{font-size:22px;font-weight:700;color:var(--accent,#1f2328);display:flex;align-items:center;gap:10px}
.merchant img.logo{max-height:40px;max-width:160px}
.issuer{margin:6px 0 0;color:#59636e;font-size:13px}
.invoice-footer{margin-top:24px;padding-top:12px;border-top:1px solid #eaeef2;color:#59636e;font-size:13px;
 white-space:pre-line}
h1{margin:0;font-size:28px;font-weight:400;color:#59636e}
.notice{color:#9a3412;font-weight:600}
.parties{display:flex;justify-content:space-between;gap:24px;margin:24px 0}
h2{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:#59636e;margin:0 0 4px}
.parties p{margin:0}
dl{display:grid;grid-template-columns:auto auto;gap:2px 16px;margin:0}
dt{color:#59636e}
dd{margin:0;text-align:right}
.summary{border:1px solid #d1d9e0;border-radius:6px;padding:16px;margin:0 0 24px}
.summary .headline{font-size:26px;font-weight:700;margin:0}
.summary p{margin:4px 0 0}
.summary a.pay{display:inline-block;margin-top:8px;padding:10px 18px;border-radius:8px;background:var(--accent);color:#fff;
 font-weight:600;text-decoration:none}
table{width:100%;border-collapse:collapse}
th{font-size:12px;text-align:left;color:#59636e;background:#f6f8fa;padding:6px 8px;border-bottom:1px solid #d1d9e0}
td{padding:6px 8px;border-bottom:1px solid #eaeef2;vertical-align:top}
.num{text-align:right;white-space:nowrap}
.period{color:#59636e;font-size:13px}
table.totals{width:auto;margin:16px 0 0 auto}
table.totals td{border:0;padding:3px 8px}
table.totals tr.strong td{font-weight:700;border-top:1px solid #d1d9e0}
.tz{color:#59636e;font-size:13px;margin-top:24px}
@media print{
 body{background:#fff}
 main{margin:0;border:0;padding:0;max-width:none}
 .actions{display:none}
 thead{display:table-header-group}
 tr{break-inside:avoid}
}
"""


def render_html(
    doc: InvoiceDocument,
    *,
    pdf_href: str | None = None,
    locale_hrefs: Mapping[str, str] | None = None,
    pay_href: str | None = None,
    logo_href: str | None = None,
) -> str:
    """The document as one self-contained page (inline CSS, no script, no external resource), every value
    escaped. `pdf_href` and `locale_hrefs` ({"en": ..., "zh-CN": ...}) add a download link and a language
    switch."""
    e = html.escape
    parts: list[str] = [
        "<!DOCTYPE html>",
        f'<html lang="{e(doc.locale)}">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="robots" content="noindex, nofollow">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>{e(doc.title)} {e(doc.number or '')} · {e(doc.merchant_name)}</title>",
        f"<style>{_CSS}:root{{--accent:{e(doc.accent_color)}}}</style>",
        "</head>",
        "<body>",
        f'<main class="invoice status-{e(doc.status)}">',
    ]
    if doc.watermark:
        parts.append(f'<div class="watermark" aria-hidden="true">{e(doc.watermark)}</div>')
    actions = []
    if pdf_href:
        actions.append(f'<a href="{e(pdf_href)}">{e(doc.labels["download_pdf"])}</a>')
    if locale_hrefs:
        names = {"en": "English", "zh-CN": "简体中文"}
        for locale, href in locale_hrefs.items():
            if locale == doc.locale:
                continue
            actions.append(
                f'<a href="{e(href)}" hreflang="{e(locale)}" lang="{e(locale)}">{e(names[locale])}</a>'
            )
    if actions:
        parts.append(f'<nav class="actions">{"".join(actions)}</nav>')
    logo = f'<img class="logo" src="{e(logo_href)}" alt="">' if logo_href and doc.logo_url else ""
    issuer = (
        f'<p class="issuer" aria-label="{e(doc.labels["from"])}">{"<br>".join(e(v) for v in doc.issuer)}</p>'
        if doc.issuer
        else ""
    )
    parts += [
        "<header>",
        f'<div><div class="merchant">{logo}{e(doc.merchant_name)}</div>{issuer}</div>',
        f"<h1>{e(doc.title)}</h1>",
        "</header>",
    ]
    if doc.notice:
        parts.append(f'<p class="notice">{e(doc.notice)}</p>')
    parts += [
        '<section class="parties">',
        f'<div class="bill-to"><h2>{e(doc.labels["bill_to"])}</h2><p>',
        "<br>".join(e(value) for value in doc.bill_to),
        "</p></div>",
        "<dl>",
        *(f"<dt>{e(f.label)}</dt><dd>{e(f.value)}</dd>" for f in doc.facts),
        "</dl>",
        "</section>",
    ]
    if doc.payment_notes:
        parts += [
            '<section class="summary">',
            f'<p class="headline">{e(doc.headline_amount)}</p>',
            *(f"<p>{e(note)}</p>" for note in doc.payment_notes),
            *(
                [f'<p><a class="pay" href="{e(pay_href)}">{e(label("pay_online", doc.locale))}</a></p>']
                if pay_href
                else []
            ),
            "</section>",
        ]
    if doc.description:
        parts.append(f'<p class="description">{e(doc.description)}</p>')
    labels = doc.labels
    parts += [
        '<table class="lines"><thead><tr>',
        f"<th>{e(labels['description'])}</th><th>{e(labels['period'])}</th>",
        f'<th class="num">{e(labels["quantity"])}</th><th class="num">{e(labels["unit_price"])}</th>',
        f'<th class="num">{e(labels["amount"])}</th>',
        "</tr></thead><tbody>",
    ]
    for line in doc.lines:
        parts.append(
            f"<tr><td>{e(line.description)}</td>"
            f'<td class="period">{e(line.period or "")}</td>'
            f'<td class="num">{e(line.quantity)}</td>'
            f'<td class="num">{e(line.unit_price or "")}</td>'
            f'<td class="num">{e(line.amount)}</td></tr>'
        )
    if not doc.lines:
        parts.append(f'<tr><td colspan="5">{e(labels["no_lines"])}</td></tr>')
    parts.append('</tbody></table><table class="totals"><tbody>')
    for row in doc.totals:
        css = ' class="strong"' if row.strong else ""
        parts.append(
            f'<tr{css} data-total="{e(row.key)}"><td>{e(row.label)}</td><td class="num">{e(row.amount)}</td></tr>'
        )
    parts += [
        "</tbody></table>",
        f'<p class="tz">{e(doc.timezone_note)}</p>',
        *([f'<p class="tz">{e(doc.support_note)}</p>'] if doc.support_note else []),
        *([f'<footer class="invoice-footer">{e(doc.footer)}</footer>'] if doc.footer else []),
        "</main>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts)


def render_not_found_html() -> str:
    """The page for a link that leads nowhere: the same for every wrong token, in both languages."""
    e = html.escape
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            '<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta name="robots" content="noindex, nofollow">',
            f"<title>{e(label('not_found_title', 'en'))}</title>",
            f"<style>{_CSS}</style></head>",
            "<body><main>",
            f"<h1>{e(label('not_found_title', 'en'))}</h1><p>{e(label('not_found_body', 'en'))}</p>",
            f'<h1 lang="zh-CN">{e(label("not_found_title", "zh-CN"))}</h1>',
            f'<p lang="zh-CN">{e(label("not_found_body", "zh-CN"))}</p>',
            "</main></body></html>",
        ]
    )
