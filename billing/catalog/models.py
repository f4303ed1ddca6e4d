"""Catalog tables: meters, plans (charges as JSONB), coupons and tax rates, all merchant-level."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, Numeric, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, id_column, seq_column

#: Exact storage for a price of up to 10^15 minor units with 12 decimal places (plans.money).
PRICE = Numeric(27, 12)
#: Exact storage for a percentage 0..100 with 4 decimal places (plans.money.MAX_PERCENT_DECIMAL_PLACES).
PERCENT = Numeric(7, 4)


class Aggregation(StrEnum):
    """How a meter turns a period's usage events into a quantity (SPEC §4 meters)."""

    COUNT = "count"  # the number of events
    SUM = "sum"  # the sum of the events' value
    MAX = "max"  # the largest value
    LAST = "last"  # the value of the latest event
    UNIQUE_COUNT = "unique_count"  # the number of distinct properties[property]
    AVG = "avg"  # the mean of the events' value


class Meter(Base):
    __tablename__ = "meters"
    __table_args__ = (
        # Plans and usage events name a meter by its code, so a code names one meter, archived or not.
        Index("uq_meters_merchant_code", "merchant_id", "code", unique=True),
        Index("ix_meters_merchant_seq", "merchant_id", "seq"),
        CheckConstraint(
            "aggregation IN ('count', 'sum', 'max', 'last', 'unique_count', 'avg')", name="aggregation"
        ),
    )

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    code: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(256))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    aggregation: Mapped[str] = mapped_column(String(16))
    property: Mapped[str | None] = mapped_column(String(256), default=None)
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", default=dict, server_default="{}")
    in_use_since: Mapped[datetime | None] = mapped_column(default=None)
    archived_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Plan(Base):
    __tablename__ = "plans"
    __table_args__ = (
        Index("uq_plans_merchant_code", "merchant_id", "code", unique=True),
        Index("ix_plans_merchant_seq", "merchant_id", "seq"),
        CheckConstraint("interval IN ('day', 'week', 'month', 'year')", name="interval"),
        CheckConstraint("interval_count >= 1", name="interval_count"),
        CheckConstraint("amount_decimal >= 0", name="amount_decimal"),
        CheckConstraint("minimum_commitment IS NULL OR minimum_commitment > 0", name="minimum_commitment"),
    )

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    code: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(256))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    currency: Mapped[str] = mapped_column(String(3))
    interval: Mapped[str] = mapped_column(String(8))
    interval_count: Mapped[int] = mapped_column(Integer)
    # The advance price per unit, exact; the API shows it as `amount` too when it is whole.
    amount_decimal: Mapped[Decimal] = mapped_column(PRICE)
    trial_period_days: Mapped[int | None] = mapped_column(Integer, default=None)
    # The metered charges in their canonical stored form (billing.catalog.plans.stored_charge), validated by
    # plans.pricing before they are written.
    charges: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list, server_default="[]")
    # The least a period bills (fixed fee + usage, before discounts and taxes); a true-up line makes up the rest
    # (plans.commitment). None: no minimum.
    minimum_commitment: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # Offered to customers in the hosted portal as a plan to change to (plans of the same currency).
    portal_visible: Mapped[bool] = mapped_column(default=False, server_default="false")
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", default=dict, server_default="{}")
    in_use_since: Mapped[datetime | None] = mapped_column(default=None)
    archived_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Coupon(Base):
    __tablename__ = "coupons"
    __table_args__ = (
        Index("ix_coupons_merchant_seq", "merchant_id", "seq"),
        CheckConstraint("(percent_off IS NULL) <> (amount_off IS NULL)", name="one_discount"),
        CheckConstraint("duration IN ('once', 'repeating', 'forever')", name="duration"),
        CheckConstraint(
            "max_redemptions IS NULL OR times_redeemed <= max_redemptions", name="max_redemptions"
        ),
    )

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    name: Mapped[str | None] = mapped_column(String(256), default=None)
    percent_off: Mapped[Decimal | None] = mapped_column(PERCENT, default=None)
    amount_off: Mapped[int | None] = mapped_column(BigInteger, default=None)
    currency: Mapped[str | None] = mapped_column(String(3), default=None)
    duration: Mapped[str] = mapped_column(String(16))
    duration_in_periods: Mapped[int | None] = mapped_column(Integer, default=None)
    max_redemptions: Mapped[int | None] = mapped_column(Integer, default=None)
    redeem_by: Mapped[datetime | None] = mapped_column(default=None)
    times_redeemed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", default=dict, server_default="{}")
    archived_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TaxRate(Base):
    __tablename__ = "tax_rates"
    __table_args__ = (Index("ix_tax_rates_merchant_seq", "merchant_id", "seq"),)

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    display_name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    percentage: Mapped[Decimal] = mapped_column(PERCENT)
    inclusive: Mapped[bool]
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", default=dict, server_default="{}")
    in_use_since: Mapped[datetime | None] = mapped_column(default=None)
    archived_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
