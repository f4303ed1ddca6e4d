"""A customer's billing details beyond name and email: a postal address and tax ids, as printed on invoices.

No I/O. Country codes are ISO 3166-1 alpha-2 as CLDR knows them (babel); tax ids are normalized (spaces, dots
and dashes out where the format has none, upper case) and checked against the shape of their type, so an invoice
never prints a number that cannot be one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

from babel import Locale

from billing.errors import InvalidRequest

ADDRESS_FIELDS: Final = ("line1", "line2", "city", "state", "postal_code", "country")
MAX_TAX_IDS: Final = 5

# CLDR territories that are groupings or placeholders, not countries an address can be in.
_NOT_COUNTRIES: Final = frozenset({"EU", "EZ", "UN", "ZZ", "QO", "XA", "XB"})


@dataclass(frozen=True)
class TaxIdType:
    """A kind of tax id: its shape, an example, and its names for people."""

    pattern: str
    example: str
    english: str
    chinese: str
    keep_dashes: bool = False


TAX_ID_TYPES: Final[dict[str, TaxIdType]] = {
    "cn_tin": TaxIdType(
        r"[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}",
        "91110000600037341L",
        "China unified social credit code",
        "统一社会信用代码",
    ),
    "eu_vat": TaxIdType(r"[A-Z]{2}[0-9A-Z+*]{2,12}", "DE123456789", "EU VAT number", "欧盟增值税号"),
    "gb_vat": TaxIdType(r"GB\d{9}(\d{3})?", "GB123456789", "UK VAT number", "英国增值税号"),
    "us_ein": TaxIdType(r"\d{2}-\d{7}", "12-3456789", "US EIN", "美国雇主识别号（EIN）", keep_dashes=True),
    "au_abn": TaxIdType(r"\d{11}", "12345678912", "Australian Business Number", "澳大利亚商业编号（ABN）"),
    "jp_cn": TaxIdType(r"\d{13}", "1234567891234", "Japanese corporate number", "日本法人编号"),
    "hk_br": TaxIdType(r"\d{8}", "12345678", "Hong Kong business registration", "香港商业登记号"),
    "sg_uen": TaxIdType(r"[0-9A-Z]{9,10}", "123456789F", "Singapore UEN", "新加坡实体识别号（UEN）"),
    "ca_bn": TaxIdType(r"\d{9}", "123456789", "Canadian business number", "加拿大商业号码"),
    "in_gst": TaxIdType(
        r"\d{2}[A-Z]{5}\d{4}[A-Z][1-9A-Z]Z[0-9A-Z]", "22AAAAA0000A1Z5", "Indian GSTIN", "印度商品及服务税号"
    ),
}


@cache
def countries() -> frozenset[str]:
    codes = (str(code) for code in Locale.parse("en").territories)
    return frozenset(
        code for code in codes if len(code) == 2 and code.isalpha() and code not in _NOT_COUNTRIES
    )


def country_name(code: str, locale: str) -> str:
    """The country's name in `locale` ("China", "中国"), or the code when CLDR has none."""
    babel_locale = Locale.parse("zh_CN" if locale == "zh-CN" else "en")
    return str(babel_locale.territories.get(code, code))


def tax_id_label(tax_type: str, locale: str) -> str:
    kind = TAX_ID_TYPES.get(tax_type)
    if kind is None:
        return tax_type
    return kind.chinese if locale == "zh-CN" else kind.english


def clean_address(fields: dict[str, Any], *, param: str = "address") -> dict[str, str] | None:
    """The address with its empty fields dropped and its country upper-cased, or None when nothing is left.
    A country is required as soon as any other field is given (invoices print it)."""
    cleaned = {
        name: str(fields[name]).strip()
        for name in ADDRESS_FIELDS
        if fields.get(name) is not None and str(fields[name]).strip()
    }
    if not cleaned:
        return None
    country = cleaned.get("country", "").upper()
    if country not in countries():
        raise InvalidRequest(
            f"{param}.country must be a two-letter ISO 3166-1 country code such as CN, US or DE"
            + (f", not {country[:10]!r}." if country else "; it is required with any other address field."),
            param=f"{param}.country",
        )
    cleaned["country"] = country
    return cleaned


def clean_tax_id(tax_type: str, value: str, *, param: str) -> dict[str, str]:
    """One tax id as stored: its type and its value normalized, or an error that shows the expected shape."""
    kind = TAX_ID_TYPES.get(tax_type)
    if kind is None:
        raise InvalidRequest(
            f"{param}.type must be one of {', '.join(TAX_ID_TYPES)}, not {tax_type[:20]!r}.",
            param=f"{param}.type",
        )
    removed = " ." if kind.keep_dashes else " .-"
    normalized = "".join(c for c in value.strip().upper() if c not in removed)
    if not re.fullmatch(kind.pattern, normalized):
        raise InvalidRequest(
            f"{param}.value is not a valid {kind.english} ({tax_type}): expected something like {kind.example}.",
            code="tax_id_invalid",
            param=f"{param}.value",
        )
    return {"type": tax_type, "value": normalized}


def clean_tax_ids(items: list[tuple[str, str]], *, param: str = "tax_ids") -> list[dict[str, str]]:
    if len(items) > MAX_TAX_IDS:
        raise InvalidRequest(f"{param} holds at most {MAX_TAX_IDS} tax ids.", param=param)
    cleaned = [clean_tax_id(t, v, param=f"{param}[{i}]") for i, (t, v) in enumerate(items)]
    seen: set[tuple[str, str]] = set()
    for index, item in enumerate(cleaned):
        key = (item["type"], item["value"])
        if key in seen:
            raise InvalidRequest(
                f"{param}[{index}] repeats a tax id already in the list.", param=f"{param}[{index}]"
            )
        seen.add(key)
    return cleaned


def address_lines(address: dict[str, Any] | None, locale: str) -> tuple[str, ...]:
    """The address as printed, one line each: street lines, then "city, state postal code", then the country
    by name. Chinese addresses are written from the largest place to the smallest (国家 省 市 街道)."""
    if not address:
        return ()
    country = country_name(str(address.get("country", "")), locale) if address.get("country") else ""
    street = tuple(str(address[k]) for k in ("line1", "line2") if address.get(k))
    if locale == "zh-CN":
        region = "".join(str(address[k]) for k in ("state", "city") if address.get(k))
        head = " ".join(part for part in (country, region) if part)
        tail = str(address.get("postal_code") or "")
        return tuple(line for line in (head, *street, tail) if line)
    city = str(address.get("city") or "")
    state_zip = " ".join(str(address[k]) for k in ("state", "postal_code") if address.get(k))
    place = ", ".join(part for part in (city, state_zip) if part)
    return tuple(line for line in (*street, place, country) if line)
