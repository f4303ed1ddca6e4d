"""The hosted invoice page and its PDF, outside /v1 and without an API key: the link's token is the secret.

`GET /i/{token}` (HTML) and `GET /i/{token}/pdf`; the locale comes from `?locale=` or the customer's. Every
wrong token (malformed, unknown, or of a draft, which has none) gets the same plain 404 page, so the page says
nothing about which invoices exist. These are pages for people, not API operations: they are left out of the
OpenAPI document, and the API points at them through `hosted_invoice_url` and `invoice_pdf`.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Annotated, Any
from urllib.parse import quote

from litestar import Response, Router, get
from litestar.params import PathParameter, QueryParameter

from billing.invoices.documents import (
    InvoiceDocument,
    load_invoice_document,
    render_html,
    render_not_found_html,
    render_pdf,
)
from billing.invoices.hosted import find_invoice_by_token
from billing.invoices.labels import LOCALES, normalize_locale
from billing.services import Services
from billing.settings.logo import load_logo

# The URL is a bearer secret: keep it out of Referer headers, caches and search engines.
_PRIVATE_HEADERS = {
    "Cache-Control": "private, no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
}
_PAGE_HEADERS = {
    **_PRIVATE_HEADERS,
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
}


Token = Annotated[str, PathParameter(description="The secret of the hosted invoice link.")]
PageLocale = Annotated[str | None, QueryParameter(description="en or zh-CN; otherwise the customer's.")]


def pdf_response(doc: InvoiceDocument, content: bytes) -> Response[bytes]:
    """A PDF shown in the browser, named after the invoice number (or id, for a draft)."""
    return Response(
        content,
        media_type="application/pdf",
        headers={**_PRIVATE_HEADERS, "Content-Disposition": f'inline; filename="{doc.filename}"'},
    )


async def render_pdf_off_loop(doc: InvoiceDocument) -> bytes:
    """Drawing a long invoice takes a while of pure CPU: do it on a thread, not on the event loop. The
    merchant's logo (settings.branding) is fetched first, or taken from this process's cache."""
    logo = await load_logo(doc.logo_url)
    return await asyncio.to_thread(partial(render_pdf, logo=logo.content if logo else None), doc)


def make_hosted_invoice_router(services: Services) -> Router:
    async def document(token: str, locale: str | None) -> InvoiceDocument | None:
        async with services.sessions() as session:
            invoice = await find_invoice_by_token(session, token)
            if invoice is None:
                return None
            return await load_invoice_document(session, invoice, locale=normalize_locale(locale))

    def not_found() -> Response[str]:
        return Response(
            render_not_found_html(),
            status_code=404,
            media_type="text/html; charset=utf-8",
            headers=_PAGE_HEADERS,
        )

    @get("/{token:str}", include_in_schema=False, security=[])
    async def hosted_invoice(token: Token, locale: PageLocale = None) -> Response[Any]:
        doc = await document(token, locale)
        if doc is None:
            return not_found()
        page = render_html(
            doc,
            pdf_href=f"/i/{quote(token)}/pdf?locale={quote(doc.locale)}",
            locale_hrefs={code: f"/i/{quote(token)}?locale={quote(code)}" for code in LOCALES},
            # Paying goes through a portal session that may pay this invoice only (billing.portal.routes).
            pay_href=f"/portal/pay/{quote(token)}?locale={quote(doc.locale)}" if doc.payable else None,
            logo_href=f"/i/{quote(token)}/logo",
        )
        return Response(page, media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)

    @get("/{token:str}/pdf", include_in_schema=False, security=[])
    async def hosted_invoice_pdf(token: Token, locale: PageLocale = None) -> Response[Any]:
        doc = await document(token, locale)
        if doc is None:
            return not_found()
        return pdf_response(doc, await render_pdf_off_loop(doc))

    @get("/{token:str}/logo", include_in_schema=False, security=[])
    async def hosted_invoice_logo(token: Token) -> Response[Any]:
        """The merchant's logo, served from here so the page loads nothing from other hosts."""
        doc = await document(token, None)
        logo = await load_logo(doc.logo_url) if doc is not None else None
        if logo is None:
            return not_found()
        return Response(
            logo.content,
            media_type=logo.media_type,
            headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    return Router(path="/i", route_handlers=[hosted_invoice, hosted_invoice_pdf, hosted_invoice_logo])
