from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, String, func
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, id_column, seq_column


class Merchant(Base):
    __tablename__ = "merchants"

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    name: Mapped[str] = mapped_column(String(200))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ApiKey(Base):
    """Only a SHA-256 of each key is stored: keys are 256-bit random strings, so a fast hash is enough (there is
    no dictionary to attack) and lets every request find its key with one indexed lookup."""

    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint("kind IN ('secret', 'publishable')", name="kind"),)

    id: Mapped[str] = id_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    redacted: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    # A rolled key keeps working until this instant (its replacement works at once); None: no expiry.
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    # The key this one replaced by a roll, for people reading the key list.
    rolled_from: Mapped[str | None] = mapped_column(String(40), default=None)
