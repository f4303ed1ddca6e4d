"""Matching a settlement listing against the engine's transactions: pure, no I/O.

A settlement row is matched to the engine transaction of the same kind that sent its idempotency key (a payment
or refund id) or, failing that, that carries its gateway reference. Every settlement row lands in exactly one
bucket: `matched`, `amount_mismatch` (found, but amount or currency differ), or `missing_in_engine` (no such
transaction, or one already matched by an earlier row: a duplicate). Every engine transaction of the day that no
row matched is `missing_in_settlement`. Fees and net are summed per currency from the listing (what the gateway
says it paid out): net = charges - refunds - fees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from billing.gateways.base import SettlementRow

Bucket = Literal["matched", "missing_in_engine", "missing_in_settlement", "amount_mismatch"]
BUCKETS: tuple[Bucket, ...] = ("matched", "missing_in_engine", "missing_in_settlement", "amount_mismatch")


@dataclass(frozen=True)
class EngineTransaction:
    """A succeeded payment (charge) or refund of the connection, as the engine recorded it."""

    kind: Literal["charge", "refund"]
    id: str
    reference: str | None
    amount: int
    currency: str
    # Whether it belongs to the reconciled day (an engine transaction of a neighbouring day is fetched only
    # because a row names it, and is never reported missing here).
    in_day: bool = True


@dataclass(frozen=True)
class ReconciledRow:
    bucket: Bucket
    kind: Literal["charge", "refund"]
    # The engine's id (from the engine's side, else the key the row carries) and the gateway's reference.
    id: str
    reference: str | None
    currency: str
    settlement_amount: int | None
    engine_amount: int | None
    engine_currency: str | None
    fee: int | None


@dataclass(frozen=True)
class CurrencyTotals:
    currency: str
    charges: int
    refunds: int
    fees: int
    net: int


@dataclass(frozen=True)
class Reconciliation:
    rows: tuple[ReconciledRow, ...]
    totals: tuple[CurrencyTotals, ...]

    def count(self, bucket: Bucket) -> int:
        return sum(1 for row in self.rows if row.bucket == bucket)


def _totals(settlement: Sequence[SettlementRow]) -> tuple[CurrencyTotals, ...]:
    sums: dict[str, list[int]] = {}
    for row in settlement:
        charges, refunds, fees = sums.setdefault(row.currency, [0, 0, 0])
        if row.kind == "charge":
            charges += row.amount
        else:
            refunds += row.amount
        sums[row.currency] = [charges, refunds, fees + row.fee]
    return tuple(CurrencyTotals(currency, c, r, f, c - r - f) for currency, (c, r, f) in sorted(sums.items()))


def reconcile(settlement: Sequence[SettlementRow], engine: Sequence[EngineTransaction]) -> Reconciliation:
    """The listing against the engine's transactions (see the module's docstring)."""
    by_id = {(t.kind, t.id): t for t in engine}
    by_reference = {(t.kind, t.reference): t for t in engine if t.reference}
    used: set[tuple[str, str]] = set()
    rows: list[ReconciledRow] = []
    for line in settlement:
        found = by_id.get((line.kind, line.idempotency_key)) or by_reference.get((line.kind, line.reference))
        if found is not None and (found.kind, found.id) in used:
            found = None
        if found is None:
            bucket: Bucket = "missing_in_engine"
        else:
            used.add((found.kind, found.id))
            same = found.amount == line.amount and found.currency == line.currency
            bucket = "matched" if same else "amount_mismatch"
        rows.append(
            ReconciledRow(
                bucket=bucket,
                kind=line.kind,
                id=found.id if found is not None else line.idempotency_key,
                reference=line.reference,
                currency=line.currency,
                settlement_amount=line.amount,
                engine_amount=found.amount if found is not None else None,
                engine_currency=found.currency if found is not None else None,
                fee=line.fee,
            )
        )
    for transaction in engine:
        if transaction.in_day and (transaction.kind, transaction.id) not in used:
            rows.append(
                ReconciledRow(
                    bucket="missing_in_settlement",
                    kind=transaction.kind,
                    id=transaction.id,
                    reference=transaction.reference,
                    currency=transaction.currency,
                    settlement_amount=None,
                    engine_amount=transaction.amount,
                    engine_currency=transaction.currency,
                    fee=None,
                )
            )
    return Reconciliation(tuple(rows), _totals(settlement))
