"""A reconciliation run as the API and the `reconciliation.completed` event show it."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

import msgspec


class ReconciliationRow(msgspec.Struct, kw_only=True):
    """One row with both sides: the settlement listing's (settlement_amount, fee) and the engine's."""

    status: Literal["matched", "missing_in_engine", "missing_in_settlement", "amount_mismatch"]
    kind: Literal["charge", "refund"]
    id: str
    reference: str | None
    currency: str
    settlement_amount: int | None
    engine_amount: int | None
    engine_currency: str | None
    fee: int | None


class ReconciliationTotals(msgspec.Struct, kw_only=True):
    """Per currency, from the listing, in minor units: net = charges - refunds - fees."""

    currency: str
    charges: int
    refunds: int
    fees: int
    net: int


class ReconciliationCounts(msgspec.Struct, kw_only=True):
    """How many payments matched, were missing on either side, or differed in amount."""

    matched: int
    missing_in_engine: int
    missing_in_settlement: int
    amount_mismatch: int


class Reconciliation(msgspec.Struct, kw_only=True):
    """A comparison of the engine's payments with a gateway's settlement file for one day."""

    id: str
    object: Literal["reconciliation"] = "reconciliation"
    created_at: datetime
    connection: str
    date: date
    counts: ReconciliationCounts
    totals: list[ReconciliationTotals]
    rows: list[ReconciliationRow]
