"""CNY amounts as the channels write them: yuan strings with two decimals ("12.34"), never floats.

The engine keeps integer fen (minor units, SPEC §3); Alipay writes yuan strings in requests, responses,
notifications and bills; WeChat Pay writes fen integers in its API but yuan strings in its bills, where fees have
five decimals ("0.06000"), rounded half up to the fen here.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

_YUAN = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]{1,2})?$")


def to_yuan(fen: int) -> str:
    """`1234` → `"12.34"` (negative amounts keep their sign: bills write refunds as "-12.34")."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError("an amount in fen is an int")
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def from_yuan(text: str) -> int:
    """`"12.34"` → `1234`; at most two decimals (a channel never writes fractions of a fen in an amount)."""
    value = text.strip()
    if not _YUAN.match(value):
        raise ValueError(f"{text!r} is not an amount in yuan with at most two decimals")
    negative = value.startswith("-")
    whole, _, cents = value.lstrip("-").partition(".")
    fen = int(whole) * 100 + int((cents + "00")[:2])
    return -fen if negative else fen


def yuan_to_fen_rounded(text: str) -> int:
    """A bill's yuan figure with any number of decimals (WeChat fees: "0.06000"), rounded half up to the fen."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a decimal amount") from None
    if not value.is_finite():
        raise ValueError(f"{text!r} is not a finite amount")
    return int((value * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def fee_for(amount: int, rate_per_mille: Decimal) -> int:
    """The service fee a channel keeps on `amount` fen at `rate_per_mille` (6 = 0.6 %), rounded half up."""
    return int((Decimal(amount) * rate_per_mille / 1000).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def mask_account(account: str) -> str:
    """A buyer's account as channels show it to merchants: `13800138000` → `138****8000`, `li@example.com` →
    `l***@example.com`. Nothing more of it is ever stored."""
    name, at, domain = account.partition("@")
    if at:
        return f"{name[:1]}***@{domain}"
    if len(account) >= 7:
        return f"{account[:3]}****{account[-4:]}"
    return account[:1] + "*" * max(0, len(account) - 1)
