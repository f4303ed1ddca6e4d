"""Portal pages as HTML: Jinja templates (billing/portal/templates), autoescaped, every word from
`billing.portal.texts`, and the headers every page is sent with.

The pages run no script. The stylesheet is a file of ours (`/portal/static/portal.css`); the merchant's accent
colour is one inline `<style>` allowed by a per-response nonce, so the Content-Security-Policy names no other
host and allows nothing inline but that.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from billing.invoices.labels import LOCALES
from billing.portal.texts import plural, text
from billing.settings.branding import Branding

LANGUAGE_NAMES = {"en": "English", "zh-CN": "简体中文"}


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("billing.portal", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@cache
def stylesheet() -> bytes:
    return resources.files("billing.portal").joinpath("static/portal.css").read_bytes()


@dataclass(frozen=True)
class Frame:
    """What the layout of every page needs: language, brand, the login's CSRF token, navigation."""

    locale: str
    brand: Branding
    logo_src: str | None = None
    csrf: str | None = None
    # "overview", "payment_methods", "invoices", "billing" (the nav marks it), or "" for no navigation.
    section: str = ""
    navigation: bool = False
    return_url: str | None = None
    session_until: str | None = None
    path: str = "/portal/"
    notice: str | None = None
    error: str | None = None
    warnings: tuple[str, ...] = ()
    nonce: str = field(default_factory=lambda: secrets.token_urlsafe(16))

    @property
    def other_locales(self) -> list[tuple[str, str]]:
        return [(code, LANGUAGE_NAMES[code]) for code in LOCALES if code != self.locale]


def render(template: str, frame: Frame, **data: Any) -> str:
    locale = frame.locale

    def t(key: str, **values: object) -> str:
        return text(key, locale, **values)

    def tn(key: str, count: int, **values: object) -> str:
        return plural(key, count, locale, **values)

    return (
        _environment().get_template(template).render(frame=frame, t=t, tn=tn, new_key=_new_form_key, **data)
    )


def _new_form_key() -> str:
    """A form's idempotency key (billing.portal.guard): random per rendered form."""
    return secrets.token_urlsafe(18)


def page_headers(frame: Frame, *, images: bool = True) -> dict[str, str]:
    """No caching, no referrer (URLs may carry ids), no framing, and a CSP that allows our own files only."""
    img = "img-src 'self' data:; " if images else ""
    return {
        "Cache-Control": "private, no-store",
        "Referrer-Policy": "no-referrer",
        "X-Robots-Tag": "noindex, nofollow",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'self' 'nonce-{frame.nonce}'; {img}form-action 'self'; "
            "base-uri 'none'; frame-ancestors 'none'"
        ),
    }
