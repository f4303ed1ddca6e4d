"""Money as integer minor units of an ISO 4217 currency, and the one rounding rule (SPEC §3).

Every amount that leaves this package is an ``int`` of minor units (cents for USD, yen for JPY, fils for KWD).
Intermediate results are exact: ``Decimal`` for prices (``unit_amount_decimal`` carries up to 12 decimal
places of a minor unit) and ``Fraction`` for ratios (proration, inclusive tax). Floats are refused at every
entry point: a binary float cannot hold 0.1, and a cent lost to it is a cent that finance has to explain.

The rounding rule: **half-up at the line**, implemented once, in `round_minor`.

* *At the line*: each invoice line (a priced charge, a proration, one tax rate on one line, a discount) is
  computed exactly and rounded once, from the exact value, to whole minor units. Nothing rounded is ever
  rounded again, so there is no double rounding, and a line's figure can be recomputed by hand from what the
  invoice shows.
* *Half-up*: a tie goes to the larger magnitude (0.5 → 1, 2.5 → 3, -2.5 → -3), i.e. ``ROUND_HALF_UP`` in
  ``decimal``'s terms. It is the commercial rounding that customers, accountants and tax authorities compute
  with a calculator; banker's rounding (half-even) is statistically fairer but surprises a person checking an
  invoice, and its bias advantage is negligible when at most half a minor unit moves per line.
* It is symmetric: ``round_minor(-x) == -round_minor(x)``. A credit for unused time is therefore exactly the
  negative of the charge for the same time, which is what makes "credit + charge of an unchanged plan is zero"
  hold to the minor unit.

Where a rounded whole must be split into parts that add up exactly (a discount spread over lines, an inclusive
tax split over several rates), `allocate_pro_rata` uses the largest-remainder method rather than rounding each
part.

Currency exponents come from the Unicode CLDR data shipped with babel
(`babel.numbers.get_currency_precision`), not a hand-kept table: JPY 0, USD 2, KWD 3, CNY 2, CLF 4. CLDR
states the digits in everyday use, which for a handful of currencies differs from the ISO 4217 table (IQD:
ISO 3, CLDR 0); upgrading babel is how a change of exponent reaches us.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow
from fractions import Fraction
from functools import cache
from typing import Any

from babel.core import get_global
from babel.numbers import get_currency_precision, list_currencies

from plans.errors import CatalogError

#: Catalog amounts (unit, flat and coupon amounts) must be below this many minor units. It keeps every price
#: far inside PostgreSQL's bigint after multiplication by realistic quantities, and keeps `EXACT_CONTEXT`
#: exact.
MAX_AMOUNT = 10**15

#: ``unit_amount_decimal`` may have at most this many decimal places of a minor unit (SPEC §4, as Stripe).
MAX_DECIMAL_PLACES = 12

#: Percentages (tax rates, percent_off coupons) may have at most this many decimal places, as Stripe's tax rates.
MAX_PERCENT_DECIMAL_PLACES = 4

#: Decimal arithmetic on prices runs in this context: 200 significant digits is far more than any bounded
#: catalog input needs, and `Inexact` is trapped so that a result which would have to be rounded raises
#: instead of being silently rounded. Use it as ``with decimal.localcontext(EXACT_CONTEXT): ...``.
EXACT_CONTEXT = Context(
    prec=200,
    rounding=ROUND_HALF_UP,
    Emax=999_999,
    Emin=-999_999,
    traps=[InvalidOperation, DivisionByZero, Overflow, Inexact],
)

_CODE_SHAPE = re.compile(r"[A-Za-z]{3}")
_PLAIN_DECIMAL = re.compile(r"([0-9]+)(?:\.([0-9]+))?")
_NOT_FINITE = {"nan", "snan", "inf", "infinity"}


@cache
def _known_currencies() -> frozenset[str]:
    """Every currency code CLDR knows: the ISO 4217 list, current and historic."""
    return frozenset(list_currencies())


@cache
def _legal_tender_now() -> frozenset[str]:
    """Codes that CLDR lists as legal tender, with no end date, in at least one territory."""
    in_use: set[str] = set()
    territories: Mapping[str, Any] = get_global("territory_currencies")
    for currencies in territories.values():
        for code, _start, end, is_tender in currencies:
            if end is None and is_tender:
                in_use.add(code)
    return frozenset(in_use)


def currency_exponent(code: str) -> int:
    """Return the minor-unit digits of an ISO 4217 currency (JPY 0, USD 2, KWD 3), from CLDR via babel.

    Any code in the ISO 4217 list is accepted, historic ones included, in either case; an unknown code raises
    `CatalogError`.
    """
    normalized = code.upper() if isinstance(code, str) else code
    if not isinstance(normalized, str) or normalized not in _known_currencies():
        raise CatalogError(
            f"currency {code!r} is not an ISO 4217 currency code; use a code such as 'USD', 'EUR' or 'JPY'",
            param="currency",
            code="currency_invalid",
        )
    return int(get_currency_precision(normalized))


def major_units_text(minor: int, currency: str) -> str:
    """`minor` units of `currency` as plain major units and the code, for messages read in any language:
    12345 USD -> "123.45 USD", 500 JPY -> "500 JPY"."""
    exponent = currency_exponent(currency)
    major = Decimal(minor).scaleb(-exponent)
    return f"{major:,.{exponent}f} {currency.upper()}"


def validate_currency(code: object, *, param: str = "currency") -> str:
    """Return `code` as the upper-case ISO 4217 code of a currency customers can be billed in, or raise.

    Accepted: codes that CLDR lists as current legal tender somewhere (USD, EUR, JPY, KWD, CNY, XOF, ...), in
    any case. Refused with a message saying what to do: anything that is not three letters, unknown codes,
    withdrawn currencies (DEM, FRF, HRK) and non-tender codes (fund codes such as USN or CLF, precious metals
    such as XAU, XTS for testing, XXX for "no currency").
    """
    if not isinstance(code, str) or not _CODE_SHAPE.fullmatch(code):
        raise CatalogError(
            f"{param} must be a three-letter ISO 4217 code such as 'USD', 'EUR' or 'JPY'; got {code!r}",
            param=param,
            code="currency_invalid",
        )
    normalized = code.upper()
    if normalized not in _known_currencies():
        raise CatalogError(
            f"{param} {code!r} is not an ISO 4217 currency code; use a code such as 'USD', 'EUR' or 'JPY'",
            param=param,
            code="currency_invalid",
        )
    if normalized not in _legal_tender_now():
        raise CatalogError(
            f"{param} {normalized!r} is not a currency customers can pay in today (it is withdrawn, or a "
            "fund, precious-metal or testing code); use the legal tender of the customer's country, "
            "e.g. 'USD' or 'EUR'",
            param=param,
            code="currency_invalid",
        )
    return normalized


def validate_amount(value: object, *, param: str, minimum: int = 0) -> int:
    """Return `value` if it is an int of minor units in ``[minimum, MAX_AMOUNT)``, else raise `CatalogError`.

    Floats, bools and decimal strings are refused: an amount on the wire is an integer of minor units (SPEC
    §3).
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise CatalogError(
            f"{param} must be an integer number of minor units (e.g. 1999 for 19.99 USD); got {value!r}",
            param=param,
        )
    if value < minimum:
        if minimum == 0:
            raise CatalogError(f"{param} must not be negative; got {value}", param=param)
        raise CatalogError(f"{param} must be at least {minimum}; got {value}", param=param)
    if value >= MAX_AMOUNT:
        raise CatalogError(f"{param} must be less than 10^15 minor units; got {value}", param=param)
    return value


def validate_percent(value: object, *, param: str, example: str) -> Decimal:
    """Return `value` if it is a finite Decimal from 0 to 100 with at most `MAX_PERCENT_DECIMAL_PLACES`
    decimals (a tax rate, a charge's rate), else raise `CatalogError`; `example` shows a valid one."""
    if not isinstance(value, Decimal) or not value.is_finite():
        raise CatalogError(f"{param} must be a decimal number such as {example}; got {value!r}", param=param)
    if not 0 <= value <= 100:
        raise CatalogError(f"{param} must be between 0 and 100; got '{value}'", param=param)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_PERCENT_DECIMAL_PLACES:
        raise CatalogError(
            f"{param} may have at most {MAX_PERCENT_DECIMAL_PLACES} decimal places; got '{value}'",
            param=param,
        )
    return value


def validate_unit_amount_decimal(value: object, *, param: str = "unit_amount_decimal") -> Decimal:
    """Return `value` if it is a finite, non-negative Decimal below `MAX_AMOUNT` with at most 12 decimals.

    Use `parse_unit_amount_decimal` for the string that arrives on the wire; this checks a Decimal already
    built.
    """
    if not isinstance(value, Decimal):
        raise CatalogError(
            f"{param} must be a decimal number of minor units such as '0.25'; got {value!r}", param=param
        )
    if not value.is_finite():
        raise CatalogError(f"{param} must be a finite number; NaN and infinity are not prices", param=param)
    if value < 0:
        raise CatalogError(f"{param} must not be negative; got '{value}'", param=param)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_DECIMAL_PLACES:
        raise CatalogError(
            f"{param} has {-exponent} decimal places; at most {MAX_DECIMAL_PLACES} places of a minor unit "
            f"are allowed; got '{value}'",
            param=param,
        )
    if value >= MAX_AMOUNT:
        raise CatalogError(f"{param} must be less than 10^15 minor units; got '{value}'", param=param)
    return value


def parse_unit_amount_decimal(text: str, *, param: str = "unit_amount_decimal") -> Decimal:
    """Parse a wire ``unit_amount_decimal`` ("0.25" = a quarter of a cent for USD) into an exact Decimal.

    The accepted form is plain digits with an optional point and at most 12 decimal places: ``"12"``,
    ``"0.5"``, ``"0.000000000001"``. Refused, each with a message saying how to write it instead: signs
    (negative prices included), exponents (``"1e3"``), NaN and infinity, missing digits around the point
    (``".5"``, ``"5."``), more than 12 decimal places, and values of 10^15 minor units or more.
    """
    if not isinstance(text, str):
        raise CatalogError(
            f"{param} must be a string of digits such as '0.25'; got {type(text).__name__} {text!r}",
            param=param,
        )
    if not text:
        raise CatalogError(
            f"{param} must not be empty; write a number of minor units such as '0.25'", param=param
        )
    bare = text.lstrip("+-").lower()
    if bare in _NOT_FINITE:
        raise CatalogError(
            f"{param} must be a finite number; NaN and infinity are not prices; got {text!r}", param=param
        )
    if "e" in bare:
        raise CatalogError(
            f"{param} must be written without an exponent, e.g. '1500' rather than '1.5e3'; got {text!r}",
            param=param,
        )
    if text.startswith("-"):
        raise CatalogError(f"{param} must not be negative; got {text!r}", param=param)
    if text.startswith("+"):
        raise CatalogError(f"{param} must be written without a sign; got {text!r}", param=param)
    match = _PLAIN_DECIMAL.fullmatch(text)
    if match is None:
        raise CatalogError(
            f"{param} must be plain digits with an optional decimal point, such as '0.25' or '12'; "
            f"got {text!r}",
            param=param,
        )
    integer_digits, fraction_digits = match.group(1), match.group(2) or ""
    if len(fraction_digits) > MAX_DECIMAL_PLACES:
        raise CatalogError(
            f"{param} has {len(fraction_digits)} decimal places; at most {MAX_DECIMAL_PLACES} places of a "
            f"minor unit are allowed; got {text!r}",
            param=param,
        )
    value = Decimal(f"{integer_digits}.{fraction_digits}" if fraction_digits else integer_digits)
    if value >= MAX_AMOUNT:
        raise CatalogError(f"{param} must be less than 10^15 minor units; got {text!r}", param=param)
    return value


def round_minor(value: Decimal | Fraction | int) -> int:
    """Round an exact amount of minor units to an int, half-up (ties away from zero): the one rounding rule.

    ``round_minor(Decimal("2.5")) == 3``, ``round_minor(Decimal("-2.5")) == -3``, ``round_minor(Fraction(7,
    3)) == 2``. Floats, bools, NaN and infinity raise: an amount that reaches this point must already be
    exact.
    """
    if isinstance(value, bool) or not isinstance(value, int | Decimal | Fraction):
        raise TypeError(f"round_minor takes an int, Decimal or Fraction, not {type(value).__name__}")
    if isinstance(value, Decimal) and not value.is_finite():
        raise ValueError(f"cannot round a non-finite amount: {value}")
    exact = Fraction(value)
    magnitude = (2 * abs(exact.numerator) + exact.denominator) // (2 * exact.denominator)
    return -magnitude if exact.numerator < 0 else magnitude


def allocate_pro_rata(total: int, weights: Sequence[Decimal | Fraction | int]) -> list[int]:
    """Split the int `total` in proportion to `weights` into ints that sum to `total` exactly.

    Largest-remainder method: each part is first the floor of its exact share, then the parts with the largest
    fractional remainders (earlier index first on ties) get one more minor unit until the total is reached, so
    every part is within one minor unit of its exact share. A negative total is split as the negative of the
    positive one, so a credit mirrors the matching charge. Weights may be negative (a credit line among
    charges) as long as they do not sum to zero.
    """
    if isinstance(total, bool) or not isinstance(total, int):
        raise TypeError(f"allocate_pro_rata splits an int of minor units, not {type(total).__name__}")
    exact_weights = [Fraction(weight) for weight in weights]
    weight_sum = sum(exact_weights, Fraction(0))
    if total == 0:
        return [0] * len(exact_weights)
    if weight_sum == 0:
        raise ValueError(f"cannot split {total} over weights that sum to zero")
    if total < 0:
        return [-part for part in allocate_pro_rata(-total, weights)]
    shares = [total * weight / weight_sum for weight in exact_weights]
    parts = [share.numerator // share.denominator for share in shares]
    remainder = total - sum(parts)
    by_remainder = sorted(range(len(shares)), key=lambda i: (parts[i] - shares[i], i))
    for index in by_remainder[:remainder]:
        parts[index] += 1
    return parts
