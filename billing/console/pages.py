"""Rendering the console's pages: Jinja templates stored in the package (autoescaped), with the words of
`billing.console.texts` and amounts and dates formatted by babel for the page's locale. No I/O here."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from importlib.resources import files
from typing import Any

from babel.dates import format_datetime
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from billing.console.texts import text
from billing.invoices.documents import format_amount, format_quantity, format_unit_amount
from billing.invoices.labels import BABEL_LOCALES, status_label
from plans.money import currency_exponent

_env = Environment(
    loader=PackageLoader("billing.console", "templates"),
    autoescape=select_autoescape(["jinja", "html"], default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

STYLESHEET = files("billing.console").joinpath("static/console.css").read_bytes()
NAV = (
    ("invoices", "/console/invoices", "nav_invoices", False),
    ("reports", "/console/reports", "nav_reports", False),
    ("exports", "/console/exports", "nav_exports", False),
    ("reconciliation", "/console/reconciliation", "nav_reconciliation", False),
    ("risk", "/console/risk", "nav_risk", False),
    ("audit", "/console/audit", "nav_audit", False),
    ("keys", "/console/keys", "nav_keys", True),
    ("settings", "/console/settings", "nav_settings", True),
)


def money(minor: int | None, currency: str, locale: str) -> str:
    if minor is None:
        return ""
    return format_amount(minor, currency, locale)


def when(moment: datetime | None, locale: str) -> str:
    """An instant in UTC, as a person of `locale` reads it."""
    if moment is None:
        return ""
    return str(
        format_datetime(
            moment.astimezone(UTC), "yyyy-MM-dd HH:mm", tzinfo=UTC, locale=BABEL_LOCALES.get(locale, "en_US")
        )
    )


def day(moment: datetime | None) -> str:
    return moment.astimezone(UTC).date().isoformat() if moment is not None else ""


def major(minor: int | None, currency: str) -> str:
    """Minor units as the plain decimal a form field shows (1250 USD → "12.50")."""
    if minor is None:
        return ""
    exponent = currency_exponent(currency)
    return f"{Decimal(minor).scaleb(-exponent):.{exponent}f}"


def parse_major(value: str | None, currency: str | None) -> int | None:
    """A typed amount ("12.50", "1,250") in minor units of `currency` (2 decimals when none is known); None when
    empty; ValueError when it is not an amount with at most the currency's decimals."""
    if value is None or not value.strip():
        return None
    exponent = currency_exponent(currency) if currency else 2
    try:
        amount = Decimal(value.strip().replace(",", "").replace(" ", ""))
    except InvalidOperation:
        raise ValueError(value) from None
    if not amount.is_finite():
        raise ValueError(value)
    minor = amount.scaleb(exponent)
    if minor != minor.to_integral_value() or abs(minor) >= 10**15:
        raise ValueError(value)
    return int(minor)


def decimals(currency: str) -> int:
    return currency_exponent(currency)


def format_number(value: Decimal, locale: str) -> str:
    return format_quantity(value, locale)


def unit_price(minor: Decimal, currency: str, locale: str) -> str:
    return format_unit_amount(minor, currency, locale)


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=1, ensure_ascii=False, sort_keys=True) if value is not None else ""


def render(template: str, locale: str, **context: Any) -> str:
    """The page `template` in `locale`, with the helpers every template uses."""

    def t(key: str, **values: object) -> str:
        return text(key, locale, **values)

    return _env.get_template(template).render(
        locale=locale,
        t=t,
        money=lambda minor, currency: money(minor, currency, locale),
        when=lambda moment: when(moment, locale),
        day=day,
        major=major,
        status=lambda value: status_label(value, locale),
        pretty_json=pretty_json,
        svg=Markup,  # charts are markup built by billing.console.charts, which escapes every value
        nav=NAV,
        **context,
    )
