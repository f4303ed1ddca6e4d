"""Prepaid credits (wallets): which credits an invoice burns, what the balance is in credits, and when a burn
crosses a threshold. Pure: no I/O; amounts are minor units of the wallet's currency.

The burn takes what is asked, up to what the live credit holds, from the credits that expire first (credits
without an expiry last), the oldest first among equal expiries, so that free credits granted with an expiry are
used before bought credits that never expire (Lago burns granted credits before purchased ones for the same
reason). Credits whose expiry has passed are never burned: the expiry task removes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from plans.errors import CatalogError

# Stands in for the expiry of credits that never expire (sorted after every real expiry by the flag before it).
_NEVER = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class CreditLot:
    """Credits that came in together (a grant, a purchase) and what is left of them."""

    id: str
    remaining: int
    expires_at: datetime | None
    seq: int


def live(lot: CreditLot, at: datetime) -> bool:
    return lot.remaining > 0 and (lot.expires_at is None or lot.expires_at > at)


def burn_order(lots: Sequence[CreditLot]) -> list[CreditLot]:
    """Soonest expiry first, never-expiring last, oldest first among equals."""
    return sorted(lots, key=lambda lot: (lot.expires_at is None, lot.expires_at or _NEVER, lot.seq))


def plan_burn(lots: Sequence[CreditLot], wanted: int, at: datetime) -> list[tuple[str, int]]:
    """What to take from which lot to burn up to `wanted` at `at`: [(lot id, amount > 0), ...] in burn order;
    the amounts add up to min(wanted, live credit)."""
    if wanted < 0:
        raise ValueError(f"cannot burn a negative amount ({wanted})")
    drawn: list[tuple[str, int]] = []
    left = wanted
    for lot in burn_order([lot for lot in lots if live(lot, at)]):
        if left == 0:
            break
        take = min(left, lot.remaining)
        drawn.append((lot.id, take))
        left -= take
    return drawn


def prepaid_credit_applied(amount_due: int, lots: Sequence[CreditLot], at: datetime) -> list[tuple[str, int]]:
    """The credits an invoice with `amount_due` left after the customer balance burns when it is finalized at
    `at`: [(lot id, amount)] in burn order, adding up to min(amount_due, live credit); nothing when nothing is due.
    Finalization burns exactly this; the upcoming invoice shows its sum as the estimate for the renewal's time."""
    if amount_due <= 0:
        return []
    return plan_burn(lots, amount_due, at)


def next_expiry(lots: Sequence[CreditLot], at: datetime) -> tuple[datetime, int] | None:
    """The soonest moment after `at` at which live credits expire, and how much expires then (None: nothing
    live expires)."""
    expiring = [lot for lot in lots if live(lot, at) and lot.expires_at is not None]
    if not expiring:
        return None
    soonest = min(lot.expires_at for lot in expiring if lot.expires_at is not None)
    return soonest, sum(lot.remaining for lot in expiring if lot.expires_at == soonest)


def parse_rate_amount(text: str) -> Decimal:
    """The price of one credit in major units: a positive decimal string with at most 12 decimals."""
    try:
        rate = Decimal(text)
    except ArithmeticError:
        rate = Decimal(0)
    exponent = rate.as_tuple().exponent
    if not rate.is_finite() or rate <= 0 or rate >= 10**12 or (isinstance(exponent, int) and exponent < -12):
        raise CatalogError(
            f"rate_amount {text!r} must be a positive decimal string below 10^12 with at most 12 decimals, "
            "e.g. '1' (one credit costs one unit of the currency) or '0.01'.",
            param="rate_amount",
            code="parameter_invalid",
        )
    return rate


def credits_of(balance: int, rate_amount: Decimal, exponent: int) -> Decimal:
    """A balance of minor units in credits: balance / 10^exponent / rate_amount, to 6 decimals (rounded down, so
    the credits shown are never more than the money held)."""
    major = Decimal(balance).scaleb(-exponent)
    return (major / rate_amount).quantize(Decimal("0.000001"), rounding="ROUND_DOWN")


def crossed_below(before: int, after: int, threshold: int) -> bool:
    """A movement from `before` to `after` took the balance below `threshold` (from at or above it)."""
    return before >= threshold > after
