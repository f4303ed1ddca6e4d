"""Invoice documents (SPEC §4 invoices: `GET .../pdf`, hosted page): the PDF in English and Simplified Chinese,
amounts per locale and currency, dates in the customer's time zone, drafts marked as drafts, and the hosted page
reached by its unguessable link without an API key.

Exact words and figures are checked on the data view (`invoice_document`) that both renderers draw from; the
PDF bytes are checked for what a reader gets: a PDF, its pages, and the text in its content streams."""

from __future__ import annotations

import base64
import html
import re
import zlib
from string import Formatter
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from billing.invoices.documents import (
    InvoiceDocument,
    format_amount,
    format_unit_amount,
    load_invoice_document,
    render_html,
    render_pdf,
)
from billing.invoices.hosted import TOKEN_LENGTH
from billing.invoices.labels import label
from billing.invoices.models import Invoice
from billing.services import Services

# 04:00 on Feb 1 in Shanghai, still Jan 31 in UTC and in Los Angeles.
CLOCK_TIME = "2027-01-31T20:00:00Z"


# --- helpers -----------------------------------------------------------------------------------------------


async def customer(api: httpx.AsyncClient, **fields: object) -> dict[str, Any]:
    response = await api.post("/v1/customers", json={"currency": "USD", **fields})
    assert response.status_code == 200, response.text
    return response.json()


async def clock_customer(api: httpx.AsyncClient, **fields: object) -> dict[str, Any]:
    clock = (await api.post("/v1/test_clocks", json={"frozen_time": CLOCK_TIME})).json()
    return await customer(api, test_clock=clock["id"], **fields)


async def draft(api: httpx.AsyncClient, customer_id: str, lines: list[dict], **fields: object) -> dict:
    response = await api.post("/v1/invoices", json={"customer": customer_id, "lines": lines, **fields})
    assert response.status_code == 200, response.text
    return response.json()


async def finalize(api: httpx.AsyncClient, invoice_id: str) -> dict:
    response = await api.post(f"/v1/invoices/{invoice_id}/finalize")
    assert response.status_code == 200, response.text
    return response.json()


async def document(services: Services, invoice_id: str, locale: str | None = None) -> InvoiceDocument:
    async with services.sessions() as session:
        invoice = await session.get(Invoice, invoice_id)
        assert invoice is not None
        return await load_invoice_document(session, invoice, locale=locale)


def _unescape_pdf_string(raw: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(raw):
        byte = raw[i]
        if byte != 0x5C:  # backslash
            out.append(byte)
            i += 1
            continue
        nxt = raw[i + 1 : i + 2]
        if nxt.isdigit():
            digits = re.match(rb"[0-7]{1,3}", raw[i + 1 : i + 4])
            assert digits is not None
            out.append(int(digits.group(), 8) & 0xFF)
            i += 1 + len(digits.group())
        else:
            out += {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}.get(nxt, nxt)
            i += 2
    return bytes(out)


def pdf_streams(pdf: bytes) -> list[str]:
    """The page content streams, inflated (reportlab writes ASCII85 + Flate), as latin-1 text."""
    streams = []
    for match in re.finditer(rb"<<(.*?)>>\s*stream\r?\n(.*?)endstream", pdf, re.S):
        head, data = match.group(1), match.group(2).strip()
        if b"/ASCII85Decode" in head:
            data = base64.a85decode(data.removesuffix(b"~>"))
        if b"/FlateDecode" in head:
            data = zlib.decompress(data)
        streams.append(data.decode("latin-1"))
    return streams


def _cjk_font_names(pdf: bytes) -> set[str]:
    """Resource names (F3, ...) of the fonts whose strings are UCS-2 (reportlab's CID fonts)."""
    cid_objects = {
        number.decode()
        for number, body in re.findall(rb"(\d+) 0 obj\s*<<(.*?)>>", pdf, re.S)
        if b"/STSong-Light" in body
    }
    return {
        name.decode() for name, ref in re.findall(rb"/(F\d+) (\d+) 0 R", pdf) if ref.decode() in cid_objects
    }


def pdf_text(pdf: bytes) -> str:
    """The text drawn on the pages, one line per text object: each string decoded by the font that shows it
    (UCS-2 for the CJK font, Latin-1 for the others)."""
    cjk = _cjk_font_names(pdf)
    lines = []
    for stream in pdf_streams(pdf):
        for block in re.findall(r"\bBT\b(.*?)\bET\b", stream, re.S):
            font, shown = "", []
            for name, literal in re.findall(r"/(F\d+) [\d.]+ Tf|\(((?:\\.|[^\\)])*)\) Tj", block, re.S):
                if name:
                    font = name
                    continue
                raw = _unescape_pdf_string(literal.encode("latin-1"))
                shown.append(raw.decode("utf-16-be") if font in cjk else raw.decode("latin-1"))
            lines.append("".join(shown))
    return "\n".join(lines)


def page_count(pdf: bytes) -> int:
    return len(re.findall(rb"/Type /Page(?![s\w])", pdf))


# --- amounts and words -------------------------------------------------------------------------------------


def test_amounts_are_formatted_per_locale_with_the_currencys_minor_units() -> None:
    assert format_amount(123456, "USD", "en") == "$1,234.56"
    assert format_amount(123456, "USD", "zh-CN") == "US$1,234.56"
    assert format_amount(123456, "CNY", "zh-CN") == "¥1,234.56"
    assert format_amount(1234, "JPY", "en") == "¥1,234"
    assert format_amount(1234, "JPY", "zh-CN") == "JP¥1,234"
    kwd = format_amount(1234567, "KWD", "en")
    assert kwd.startswith("KWD") and kwd.endswith("1,234.567")
    assert format_amount(-1050, "EUR", "en") == "-€10.50"
    # A unit price keeps the fractions of a minor unit it was priced in.
    from decimal import Decimal

    assert format_unit_amount(Decimal("0.125"), "USD", "en") == "$0.00125"
    assert format_unit_amount(Decimal("2900.000000000000"), "USD", "zh-CN") == "US$29.00"


def test_every_label_is_translated_with_the_same_placeholders() -> None:
    from billing.invoices.labels import all_keys

    for key in all_keys():
        english, chinese = label(key, "en"), label(key, "zh-CN")
        assert english and chinese and english != chinese, key
        fields = {name for _, name, _, _ in Formatter().parse(english) if name}
        assert fields == {name for _, name, _, _ in Formatter().parse(chinese) if name}, key


def test_the_engines_own_line_wording_is_said_in_chinese_and_the_merchants_words_are_kept() -> None:
    from billing.invoices.labels import line_description

    assert line_description("Remaining time on 2 × Extra storage", "proration", "zh-CN") == (
        "2 × Extra storage 本周期剩余时间的费用"
    )
    assert line_description("Unused time on Pro", "proration", "zh-CN") == "Pro 未使用时间的抵扣"
    assert line_description("3 × Team (from the resume to the period end)", "subscription", "zh-CN") == (
        "3 × Team（自恢复之日至本周期结束）"
    )
    assert line_description("1 × Team (until the billing anchor)", "subscription", "zh-CN") == (
        "1 × Team（至计费锚定日）"
    )
    # English readers see what was stored; a merchant's own line is never reworded, whatever it says.
    assert line_description("Remaining time on Pro", "proration", "en") == "Remaining time on Pro"
    assert (
        line_description("Remaining time on the lease", "adjustment", "zh-CN")
        == "Remaining time on the lease"
    )
    assert line_description("1 × Team", "subscription", "zh-CN") == "1 × Team"


# --- the PDF through the API -------------------------------------------------------------------------------


async def test_the_pdf_comes_in_the_customers_locale_and_in_the_other_on_request(
    api: httpx.AsyncClient, services: Services
) -> None:
    cus = await customer(api, name="李雷", locale="zh-CN", timezone="Asia/Shanghai")
    invoice = await draft(
        api, cus["id"], [{"description": "Pro plan 专业版", "unit_amount": 2900, "quantity": "3"}]
    )
    invoice = await finalize(api, invoice["id"])
    number = invoice["number"]

    response = await api.get(f"/v1/invoices/{invoice['id']}/pdf")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == f'inline; filename="{number}.pdf"'
    chinese = response.content
    assert chinese.startswith(b"%PDF-")
    assert page_count(chinese) == 1
    text = pdf_text(chinese)
    assert number in text
    assert "发票" in text and "李雷" in text and "US$87.00" in text

    english = (await api.get(f"/v1/invoices/{invoice['id']}/pdf", params={"locale": "en"})).content
    text = pdf_text(english)
    assert "Invoice" in text and number in text and "$87.00" in text and "US$" not in text
    assert "李雷" in text  # a Chinese name on an English invoice is still drawn, in the CJK font

    doc = await document(services, invoice["id"])
    assert doc.locale == "zh-CN"
    assert doc.title == "发票"
    assert doc.fact("number") == number
    assert doc.fact("status") == "待支付"
    assert [(line.quantity, line.unit_price, line.amount) for line in doc.lines] == [
        ("3", "US$29.00", "US$87.00")
    ]
    assert doc.total("total") == "US$87.00"
    assert doc.total("amount_remaining") == "US$87.00"


async def test_an_unknown_locale_is_refused_with_the_parameter_named(api: httpx.AsyncClient) -> None:
    cus = await customer(api)
    invoice = await draft(api, cus["id"], [{"description": "x", "amount": 100}])
    response = await api.get(f"/v1/invoices/{invoice['id']}/pdf", params={"locale": "fr"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "locale"


async def test_dates_are_the_customers_local_dates(api: httpx.AsyncClient, services: Services) -> None:
    shanghai = await clock_customer(api, timezone="Asia/Shanghai", locale="zh-CN")
    lines = [
        {
            "description": "Seats",
            "amount": 5000,
            "period": {"start": "2027-01-31T16:00:00Z", "end": "2027-02-28T16:00:00Z"},
        }
    ]
    invoice = await draft(api, shanghai["id"], lines, collection_method="send_invoice", days_until_due=30)
    await finalize(api, invoice["id"])

    zh = await document(services, invoice["id"])
    assert zh.fact("date_of_issue") == "2027年2月1日"
    assert zh.fact("due_date") == "2027年3月3日"
    assert zh.lines[0].period == "2027年2月1日至3月1日"
    assert zh.payment_notes[0] == "尚有 US$50.00 待支付，请于 2027年3月3日 前付款。"
    assert zh.timezone_note == "日期以 Asia/Shanghai 时区为准。"
    en = await document(services, invoice["id"], "en")
    assert en.fact("date_of_issue") == "Feb 1, 2027"
    assert en.fact("due_date") == "Mar 3, 2027"
    assert en.lines[0].period == "Feb 1\u2009–\u2009Mar 1, 2027"
    assert en.payment_notes == (
        "$50.00 remains to be paid, due by Mar 3, 2027.",
        f"How to pay: online with a card on this invoice's page, or send $50.00 to Merchant A by the means "
        f"agreed with them (a bank transfer, for example), quoting invoice number {en.number} as the reference. "
        "Merchant A marks this invoice paid when the payment arrives.",
    )

    # The same instant is still Jan 31 for a customer in Los Angeles.
    los_angeles = await clock_customer(api, timezone="America/Los_Angeles")
    invoice = await draft(api, los_angeles["id"], [{"description": "x", "amount": 100}])
    await finalize(api, invoice["id"])
    assert (await document(services, invoice["id"])).fact("date_of_issue") == "Jan 31, 2027"


async def test_amounts_follow_the_invoice_currency(api: httpx.AsyncClient, services: Services) -> None:
    expected = {
        ("JPY", "en"): "¥1,234",
        ("JPY", "zh-CN"): "JP¥1,234",
        ("CNY", "zh-CN"): "¥12.34",
        ("KWD", "en"): "1.234",
    }
    for (currency, locale), figure in expected.items():
        cus = await customer(api, currency=currency, locale=locale)
        invoice = await draft(api, cus["id"], [{"description": "x", "amount": 1234}])
        doc = await document(services, invoice["id"])
        assert doc.total("total") is not None and doc.total("total").endswith(figure), (currency, doc.totals)


async def test_a_draft_says_it_is_a_draft(api: httpx.AsyncClient, services: Services) -> None:
    cus = await customer(api)
    invoice = await draft(api, cus["id"], [{"description": "x", "amount": 100}])
    response = await api.get(f"/v1/invoices/{invoice['id']}/pdf")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == f'inline; filename="{invoice["id"]}.pdf"'
    assert "DRAFT" in pdf_text(response.content)
    zh_pdf = (await api.get(f"/v1/invoices/{invoice['id']}/pdf", params={"locale": "zh-CN"})).content
    assert "草稿" in pdf_text(zh_pdf)

    doc = await document(services, invoice["id"])
    assert doc.watermark == "DRAFT"
    assert doc.notice == "Draft: this invoice is not final and is not payable yet."
    assert doc.fact("number") == "Not yet numbered"
    assert doc.fact("status") == "Draft"
    zh = await document(services, invoice["id"], "zh-CN")
    assert (zh.watermark, zh.fact("status")) == ("草稿", "草稿")
    assert 'class="watermark"' in render_html(doc)
    finalized = await document(services, (await finalize(api, invoice["id"]))["id"])
    assert finalized.watermark is None and finalized.notice is None


async def test_a_long_invoice_runs_over_numbered_pages(api: httpx.AsyncClient, services: Services) -> None:
    cus = await customer(api)
    lines = [{"description": f"Usage item {i}", "amount": 100 + i} for i in range(200)]
    invoice = await finalize(api, (await draft(api, cus["id"], lines))["id"])
    pdf = (await api.get(f"/v1/invoices/{invoice['id']}/pdf")).content
    pages = page_count(pdf)
    assert pages >= 4
    text = pdf_text(pdf)
    assert f"Page 1 of {pages}" in text and f"Page {pages} of {pages}" in text
    assert "Usage item 0" in text and "Usage item 199" in text
    # The table's header is repeated on every page.
    assert text.count("Unit price") == pages
    # Uncompressed on request: the number is right there in the content stream.
    plain = render_pdf(await document(services, invoice["id"]), compress=False)
    assert b"/FlateDecode" not in plain
    assert f"({invoice['number']})".encode() in plain


# --- the hosted page ---------------------------------------------------------------------------------------


async def test_only_finalized_invoices_get_an_unguessable_link(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BILLING_PUBLIC_URL", "https://pay.example.com/")
    cus = await customer(api)
    invoice = await draft(api, cus["id"], [{"description": "x", "amount": 100}])
    assert invoice["hosted_invoice_url"] is None and invoice["invoice_pdf"] is None

    finalized = await finalize(api, invoice["id"])
    url = finalized["hosted_invoice_url"]
    token = url.removeprefix("https://pay.example.com/i/")
    assert re.fullmatch(rf"[0-9A-Za-z]{{{TOKEN_LENGTH}}}", token), url
    assert finalized["invoice_pdf"] == f"{url}/pdf"
    event = (await api.get("/v1/events", params={"object_id": invoice["id"], "limit": 1})).json()["data"][0]
    assert event["type"] == "invoice.finalized"
    assert event["data"]["object"]["hosted_invoice_url"] == url
    other = await finalize(api, (await draft(api, cus["id"], [{"description": "y", "amount": 1}]))["id"])
    assert other["hosted_invoice_url"] != url

    monkeypatch.delenv("BILLING_PUBLIC_URL")
    again = (await api.get(f"/v1/invoices/{invoice['id']}")).json()
    assert again["hosted_invoice_url"] == f"http://127.0.0.1:8000/i/{token}"


async def test_the_hosted_page_and_pdf_need_no_api_key(
    api: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    cus = await customer(api, name="Han Meimei", locale="en", timezone="Asia/Shanghai")
    invoice = await draft(
        api,
        cus["id"],
        [{"description": "Onboarding", "amount": 4900}],
        collection_method="send_invoice",
        days_until_due=14,
    )
    invoice = await finalize(api, invoice["id"])
    path = urlsplit(invoice["hosted_invoice_url"]).path
    assert "authorization" not in client.headers

    page = await client.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "no-store" in page.headers["cache-control"]
    body = page.text
    assert '<html lang="en">' in body and "<script" not in body
    assert invoice["number"] in body and "Han Meimei" in body and "Onboarding" in body
    assert "$49.00 remains to be paid, due by" in body  # how to pay: what is left and by when
    assert f'href="{path}/pdf?locale=en"' in body and f'href="{path}?locale=zh-CN"' in body

    chinese = await client.get(path, params={"locale": "zh-CN"})
    assert '<html lang="zh-CN">' in chinese.text and "发票" in chinese.text and "US$49.00" in chinese.text
    pdf = await client.get(f"{path}/pdf", params={"locale": "zh-CN"})
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"] == f'inline; filename="{invoice["number"]}.pdf"'
    assert "发票" in pdf_text(pdf.content)

    # Once paid, the page says so and asks for nothing.
    await api.post(f"/v1/invoices/{invoice['id']}/pay", json={"paid_out_of_band": True})
    paid = (await client.get(path)).text
    assert "Paid on" in paid and "remains to be paid" not in paid


async def test_a_wrong_link_gets_the_same_plain_404_page(
    api: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    cus = await customer(api)
    invoice = await finalize(api, (await draft(api, cus["id"], [{"description": "x", "amount": 100}]))["id"])
    token = urlsplit(invoice["hosted_invoice_url"]).path.removeprefix("/i/")
    wrong = token[:-1] + ("a" if token[-1] != "a" else "b")
    bodies = set()
    for path in (f"/i/{wrong}", f"/i/{wrong}/pdf", "/i/short", f"/i/{token.lower()}x", f"/i/{invoice['id']}"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/html")
        bodies.add(response.text)
    assert len(bodies) == 1
    (body,) = bodies
    assert "This link is not valid" in body and "此链接无效" in body
    assert invoice["number"] not in body and invoice["id"] not in body
    # An API key does not open the page either way: the link is the secret.
    assert (await api.get(f"/i/{wrong}")).status_code == 404


async def test_the_hosted_page_escapes_what_customers_typed(
    api: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    cus = await customer(api, name="<script>alert('x')</script>", email="a&b@example.com")
    invoice = await draft(api, cus["id"], [{"description": '<img src=x onerror="alert(1)">', "amount": 100}])
    invoice = await finalize(api, invoice["id"])
    body = (await client.get(urlsplit(invoice["hosted_invoice_url"]).path)).text
    assert "<script" not in body and "<img" not in body
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in body
    assert "a&amp;b@example.com" in body
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in body
    # The PDF draws the same name as text (reportlab's markup is escaped too, so it cannot break the layout).
    pdf = (await api.get(f"/v1/invoices/{invoice['id']}/pdf")).content
    assert "<script>alert('x')</script>" in pdf_text(pdf)


async def test_another_merchant_cannot_fetch_the_pdf(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient
) -> None:
    cus = await customer(api)
    invoice = await finalize(api, (await draft(api, cus["id"], [{"description": "x", "amount": 100}]))["id"])
    response = await other_api.get(f"/v1/invoices/{invoice['id']}/pdf")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"


# --- the hosted page tells the truth for every status (issue 12 item 6) ----------------------------------------


async def hosted_page(client: httpx.AsyncClient, invoice: dict[str, Any], locale: str = "en") -> str:
    response = await client.get(urlsplit(invoice["hosted_invoice_url"]).path, params={"locale": locale})
    assert response.status_code == 200
    return response.text


def total_rows(page: str) -> dict[str, tuple[str, str]]:
    """The totals table of a hosted page: key → (label, amount), as a person reads them."""
    rows = re.findall(r'data-total="([^"]+)"><td>([^<]*)</td><td class="num">([^<]*)</td>', page)
    return {key: (html.unescape(name), html.unescape(amount)) for key, name, amount in rows}


async def test_a_void_invoice_page_shows_nothing_to_pay(
    api: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    cus = await clock_customer(api, timezone="UTC")
    invoice = await finalize(
        api, (await draft(api, cus["id"], [{"description": "Setup", "amount": 2000}]))["id"]
    )
    voided = await api.post(f"/v1/invoices/{invoice['id']}/void")
    assert voided.status_code == 200
    page = await hosted_page(client, invoice)
    assert "This invoice was voided on Jan 31, 2027: nothing is owed on it." in page
    rows = total_rows(page)
    assert rows["total"] == ("Total", "$20.00")
    assert not {"amount_due", "amount_paid", "amount_remaining"} & set(rows), rows
    assert '<p class="headline">Void</p>' in page
    chinese = await hosted_page(client, invoice, "zh-CN")
    assert "此发票已于 2027年1月31日 作废，无需支付。" in chinese
    assert "应付金额" not in chinese


async def test_an_uncollectible_invoice_page_says_what_remains_and_who_to_contact(
    api: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    cus = await clock_customer(api, timezone="UTC")
    invoice = await finalize(
        api, (await draft(api, cus["id"], [{"description": "Setup", "amount": 2000}]))["id"]
    )
    await api.post(f"/v1/invoices/{invoice['id']}/mark_uncollectible")
    page = await hosted_page(client, invoice)
    assert (
        "Merchant A no longer collects this invoice automatically: $20.00 remains unpaid. "
        "Contact Merchant A to settle it." in page
    )
    assert total_rows(page)["amount_remaining"] == ("Amount remaining", "$20.00")


async def test_an_open_send_invoice_page_says_how_to_pay(
    api: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    cus = await clock_customer(api, timezone="UTC")
    invoice = await draft(
        api,
        cus["id"],
        [{"description": "Consulting", "amount": 4900}],
        collection_method="send_invoice",
        days_until_due=14,
    )
    invoice = await finalize(api, invoice["id"])
    page = html.unescape(await hosted_page(client, invoice))
    assert "$49.00 remains to be paid, due by Feb 14, 2027." in page
    assert (
        f"How to pay: online with a card on this invoice's page, or send $49.00 to Merchant A by the means "
        f"agreed with them (a bank transfer, for example), quoting invoice number {invoice['number']} as the "
        "reference. Merchant A marks this invoice paid when the payment arrives." in page
    )
    chinese = html.unescape(await hosted_page(client, invoice, "zh-CN"))
    assert f"并在付款备注中注明发票编号 {invoice['number']}" in chinese


async def test_inclusive_tax_is_explained_with_the_rates_name_and_percentage(
    api: httpx.AsyncClient, services: Services, client: httpx.AsyncClient
) -> None:
    from tests.billing.world import Billing

    world = Billing(api, services)
    await world.start()
    vat = await world.post("/v1/tax_rates", {"display_name": "VAT", "percentage": "20", "inclusive": True})
    sub = await world.subscribe(await world.customer(), await world.plan(1200), tax_rates=[vat["id"]])
    [invoice] = await world.invoices(sub["id"])
    page = await hosted_page(client, invoice)
    rows = total_rows(page)
    # The line says 12.00; 10.00 of it is the price and 2.00 the VAT it includes.
    assert rows["subtotal"] == ("Subtotal (excl. tax)", "$10.00")
    assert rows["tax"] == ("VAT 20% (incl.)", "$2.00")
    assert rows["total"] == ("Total", "$12.00")
    assert "Line amounts include tax; the subtotal is shown without it." in page
    chinese = total_rows(await hosted_page(client, invoice, "zh-CN"))
    assert chinese["subtotal"] == ("小计（不含税）", "US$10.00")
    assert chinese["tax"] == ("VAT 20%（含税）", "US$2.00")


async def test_exclusive_taxes_are_listed_rate_by_rate(
    api: httpx.AsyncClient, services: Services, client: httpx.AsyncClient
) -> None:
    from tests.billing.world import Billing

    world = Billing(api, services)
    await world.start()
    state = await world.post("/v1/tax_rates", {"display_name": "State tax", "percentage": "6.25"})
    city = await world.post("/v1/tax_rates", {"display_name": "City tax", "percentage": "2.625"})
    sub = await world.subscribe(
        await world.customer(), await world.plan(10000), tax_rates=[state["id"], city["id"]]
    )
    [invoice] = await world.invoices(sub["id"])
    rows = total_rows(await hosted_page(client, invoice))
    # 6.25 % of 100.00 is 6.25; 2.625 % is 2.625, half-up 2.63.
    assert rows["subtotal"] == ("Subtotal", "$100.00")
    assert rows["tax"] == ("State tax 6.25%", "$6.25")
    assert rows["tax_1"] == ("City tax 2.625%", "$2.63")
    assert rows["total"] == ("Total", "$108.88")


# --- billing profiles: the seller on every invoice --------------------------------------------------------------

BUSINESS = {
    "legal_name": "上海云图信息技术有限公司",
    "address": {"line1": "世纪大道 100 号", "city": "上海", "postal_code": "200120", "country": "cn"},
    "tax_ids": [{"type": "cn_tin", "value": "91310000 6000 37341L"}],
    "invoice_footer": "Registered in Shanghai. 感谢您的惠顾。",
    "payment_instructions": "招商银行 上海分行 账号 6214 8301 2345 6789",
}


async def test_the_sellers_profile_is_printed_on_the_invoice_and_kept_as_it_was_when_issued(
    api: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    patched = await api.patch("/v1/settings", json={"business": BUSINESS})
    assert patched.status_code == 200, patched.text
    # Stored cleaned: the country upper-cased, the tax id without its spaces.
    assert patched.json()["business"] == {
        **BUSINESS,
        "address": {
            "line1": "世纪大道 100 号",
            "line2": None,
            "city": "上海",
            "state": None,
            "postal_code": "200120",
            "country": "CN",
        },
        "tax_ids": [{"type": "cn_tin", "value": "91310000600037341L"}],
    }
    cus = await clock_customer(
        api,
        name="韩梅梅",
        timezone="UTC",
        address={"line1": "1 Main St", "city": "Springfield", "country": "US"},
    )
    invoice = await draft(
        api,
        cus["id"],
        [{"description": "Consulting", "amount": 4900}],
        collection_method="send_invoice",
        days_until_due=14,
    )
    invoice = await finalize(api, invoice["id"])
    assert invoice["issuer_details"] == {
        "legal_name": "上海云图信息技术有限公司",
        "address": patched.json()["business"]["address"],
        "tax_ids": [{"type": "cn_tin", "value": "91310000600037341L"}],
        "invoice_footer": "Registered in Shanghai. 感谢您的惠顾。",
        "payment_instructions": "招商银行 上海分行 账号 6214 8301 2345 6789",
    }
    page = html.unescape(await hosted_page(client, invoice))
    assert "上海云图信息技术有限公司<br>世纪大道 100 号<br>上海, 200120<br>China<br>" in page
    assert "China unified social credit code: 91310000600037341L" in page
    assert "Payment instructions: 招商银行 上海分行 账号 6214 8301 2345 6789" in page
    assert "Registered in Shanghai. 感谢您的惠顾。</footer>" in page
    chinese = html.unescape(await hosted_page(client, invoice, "zh-CN"))
    assert "统一社会信用代码：91310000600037341L" in chinese
    assert "付款说明：招商银行 上海分行 账号 6214 8301 2345 6789" in chinese
    pdf = (await api.get(f"/v1/invoices/{invoice['id']}/pdf", params={"locale": "en"})).content
    text = pdf_text(pdf)
    assert "上海云图信息技术有限公司" in text and "91310000600037341L" in text
    assert "Registered in Shanghai." in text

    # The merchant moves: the issued invoice keeps the address it was issued from; a new draft shows the new one.
    moved = await api.patch(
        "/v1/settings",
        json={"business": {"address": {"line1": "1 Infinite Loop", "city": "Cupertino", "country": "US"}}},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["business"]["legal_name"] == "上海云图信息技术有限公司"  # untouched fields stay
    kept = html.unescape(await hosted_page(client, invoice))
    assert "世纪大道 100 号" in kept and "Infinite Loop" not in kept
    fresh = await draft(api, cus["id"], [{"description": "Support", "amount": 1000}])
    assert (await api.get(f"/v1/invoices/{fresh['id']}")).json()[
        "issuer_details"
    ] is None  # frozen only when issued
    fresh = await finalize(api, fresh["id"])
    assert fresh["issuer_details"]["address"]["line1"] == "1 Infinite Loop"
    # Without a legal name the seller is the name customers see; cleared fields print nothing.
    cleared = await api.patch("/v1/settings", json={"business": {"legal_name": None, "invoice_footer": None}})
    assert cleared.status_code == 200, cleared.text
    last = await finalize(api, (await draft(api, cus["id"], [{"description": "Extra", "amount": 500}]))["id"])
    assert last["issuer_details"]["legal_name"] == "Merchant A"
    assert last["issuer_details"]["invoice_footer"] is None
    assert "<footer" not in await hosted_page(client, last)


@pytest.mark.parametrize(
    ("business", "param", "words"),
    [
        (
            {"tax_ids": [{"type": "cn_tin", "value": "12345"}]},
            "business.tax_ids[0].value",
            "91110000600037341L",
        ),
        (
            {"tax_ids": [{"type": "cn_vat", "value": "1"}]},
            "business.tax_ids[0].type",
            "must be one of cn_tin",
        ),
        ({"address": {"line1": "1 Main St"}}, "business.address.country", "ISO 3166-1"),
        ({"legal_nme": "Acme"}, "business.legal_nme", "legal_nme"),
        ({"invoice_footer": "x" * 501}, "business.invoice_footer", "500"),
    ],
)
async def test_a_bad_business_profile_is_refused_naming_the_field(
    api: httpx.AsyncClient, business: dict[str, Any], param: str, words: str
) -> None:
    response = await api.patch("/v1/settings", json={"business": business})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param, error
    assert words in error["message"], error
    assert (await api.get("/v1/settings")).json()["business"]["tax_ids"] == []  # nothing half-written


async def test_the_discount_row_names_the_coupon(
    api: httpx.AsyncClient, services: Services, client: httpx.AsyncClient
) -> None:
    from tests.billing.world import Billing

    world = Billing(api, services)
    await world.start()
    coupon = await world.post(
        "/v1/coupons", {"name": "Launch 20% off", "percent_off": "20", "duration": "forever"}
    )
    sub = await world.subscribe(await world.customer(), await world.plan(1000), coupon=coupon["id"])
    [invoice] = await world.invoices(sub["id"])
    assert total_rows(await hosted_page(client, invoice))["discount"] == (
        "Discount (Launch 20% off)",
        "-$2.00",
    )
    assert total_rows(await hosted_page(client, invoice, "zh-CN"))["discount"] == (
        "折扣（Launch 20% off）",
        "-US$2.00",
    )
