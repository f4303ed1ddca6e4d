"""Features and their values on plans (a customer's last announced set lives on the customer row)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, id_column, seq_column


class Feature(Base):
    __tablename__ = "features"
    __table_args__ = (
        # Plans and customers' entitlements name a feature by its code, so a code names one feature.
        Index("uq_features_merchant_code", "merchant_id", "code", unique=True),
        Index("ix_features_merchant_seq", "merchant_id", "seq"),
        CheckConstraint("type IN ('boolean', 'limit', 'enum')", name="type"),
    )

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    code: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(256))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    type: Mapped[str] = mapped_column(String(16))
    # An enum feature's options, from the lowest tier to the highest; empty for the other types.
    options: Mapped[list[str]] = mapped_column(JSONB, default=list, server_default="[]")
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", default=dict, server_default="{}")
    archived_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class PlanEntitlement(Base):
    """A plan's value for a feature: true/false, a limit, or one of the feature's options (JSON)."""

    __tablename__ = "plan_entitlements"
    __table_args__ = (Index("ix_plan_entitlements_feature", "feature_id"),)

    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"), primary_key=True)
    feature_id: Mapped[str] = mapped_column(ForeignKey("features.id"), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    value: Mapped[Any] = mapped_column(JSONB)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
