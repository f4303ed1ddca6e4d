"""Card numbers checked before they reach the vault: Luhn, brand, length, expiry, CVC length.

Every failure is a `card_error` (402) naming the field and saying what to fix, and never repeats the number.
Card numbers travel through the code as `SecretPan`, whose str() and repr() are masked, so an f-string, a log
line or a traceback that touches one shows only the last four digits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from billing.errors import CardError
from billing.luhn import luhn_valid

BRANDS = ("visa", "mastercard", "amex", "unionpay", "jcb", "discover")

_SEPARATORS = re.compile(r"[ \-]")


class SecretPan:
    """A primary account number that will not print itself."""

    __slots__ = ("_digits",)

    def __init__(self, digits: str) -> None:
        self._digits = digits

    def reveal(self) -> str:
        """The digits: only for encryption and for the gateway request body."""
        return self._digits

    @property
    def last4(self) -> str:
        return self._digits[-4:]

    def __repr__(self) -> str:
        return f"SecretPan(****{self.last4})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretPan) and other._digits == self._digits

    def __hash__(self) -> int:
        return hash(("SecretPan", self._digits))

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a card number cannot be pickled")


@dataclass(frozen=True)
class CardDetails:
    """A checked card: what the vault stores (the number, encrypted) and what the API shows (the rest)."""

    pan: SecretPan
    brand: str
    exp_month: int
    exp_year: int

    @property
    def last4(self) -> str:
        return self.pan.last4


def detect_brand(digits: str) -> str | None:
    """The card brand from the number's prefix (IIN ranges), or None when no supported brand issues it."""
    two, four, six = int(digits[:2]), int(digits[:4]), int(digits[:6])
    if digits.startswith("4"):
        return "visa"
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return "mastercard"
    if two in (34, 37):
        return "amex"
    if 3528 <= four <= 3589:
        return "jcb"
    # 622126-622925 is both Discover and UnionPay; these are UnionPay-issued cards, which is what a Chinese
    # acquirer routes them as.
    if two in (62, 81):
        return "unionpay"
    if four == 6011 or 644 <= int(digits[:3]) <= 649 or two == 65 or 622126 <= six <= 622925:
        return "discover"
    return None


_LENGTHS = {
    "visa": frozenset({13, 16, 19}),
    "mastercard": frozenset({16}),
    "amex": frozenset({15}),
    "jcb": frozenset({16, 17, 18, 19}),
    "unionpay": frozenset({16, 17, 18, 19}),
    "discover": frozenset({16, 17, 18, 19}),
}


def cvc_length(brand: str) -> int:
    return 4 if brand == "amex" else 3


def parse_pan(raw: str, *, param: str = "card[number]") -> tuple[SecretPan, str]:
    """The number's digits and brand, or a card_error: not digits, wrong length, failed Luhn, unknown brand."""
    digits = _SEPARATORS.sub("", raw.strip())
    if not digits.isdigit() or not 12 <= len(digits) <= 19:
        raise CardError(
            "The card number must be 13 to 19 digits (spaces and dashes are ignored). Check the number and try "
            "again.",
            code="invalid_number",
            param=param,
        )
    brand = detect_brand(digits)
    if brand is None:
        raise CardError(
            "This card brand is not supported. Use a Visa, Mastercard, American Express, UnionPay, JCB or "
            "Discover card.",
            code="card_brand_unsupported",
            param=param,
        )
    if len(digits) not in _LENGTHS[brand] or not luhn_valid(digits):
        raise CardError(
            "The card number is incorrect (it fails the check digit). Check the number and try again.",
            code="incorrect_number",
            param=param,
        )
    return SecretPan(digits), brand


def check_expiry(exp_month: int, exp_year: int, now: datetime, *, prefix: str = "card") -> tuple[int, int]:
    """Month 1-12, a four-digit year (two digits mean 20YY), not past the end of its month, at most 20 years
    ahead. A card is valid through the last day of its expiry month."""
    if not 1 <= exp_month <= 12:
        raise CardError(
            "The expiry month must be a number from 1 to 12.",
            code="invalid_expiry_month",
            param=f"{prefix}[exp_month]",
        )
    if 0 <= exp_year < 100:
        exp_year += 2000
    if exp_year > now.year + 20 or exp_year < 2000:
        raise CardError(
            "The expiry year is not valid. Use the four-digit year printed on the card, e.g. 2030.",
            code="invalid_expiry_year",
            param=f"{prefix}[exp_year]",
        )
    if (exp_year, exp_month) < (now.year, now.month):
        raise CardError(
            f"The card expired at the end of {exp_month:02d}/{exp_year}. Use a card that has not expired.",
            code="expired_card",
            param=f"{prefix}[exp_year]",
        )
    return exp_month, exp_year


def check_cvc(cvc: str, brand: str, *, param: str = "card[cvc]") -> str:
    expected = cvc_length(brand)
    if not cvc.isdigit() or len(cvc) != expected:
        raise CardError(
            f"The security code (CVC) of a {brand_label(brand)} card is {expected} digits. Check the code on the "
            "card and try again.",
            code="invalid_cvc",
            param=param,
        )
    return cvc


def brand_label(brand: str) -> str:
    return {
        "visa": "Visa",
        "mastercard": "Mastercard",
        "amex": "American Express",
        "unionpay": "UnionPay",
        "jcb": "JCB",
        "discover": "Discover",
    }[brand]


def check_card(
    number: str, exp_month: int, exp_year: int, cvc: str | None, now: datetime
) -> tuple[CardDetails, str | None]:
    """Every check, in the order a person fixes a form: number, expiry, CVC."""
    pan, brand = parse_pan(number)
    month, year = check_expiry(exp_month, exp_year, now)
    checked_cvc = check_cvc(cvc, brand) if cvc is not None else None
    return CardDetails(pan=pan, brand=brand, exp_month=month, exp_year=year), checked_cvc
