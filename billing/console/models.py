"""Console tables: finance users, their login sessions, and the audit log of every console action."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, id_column, seq_column


class ConsoleUser(Base):
    """A person of a merchant's finance team. Only an argon2id hash of the password is stored. Consecutive
    failed logins lock the account for a while (billing.console.users)."""

    __tablename__ = "console_users"
    __table_args__ = (
        CheckConstraint("role IN ('finance', 'admin')", name="role"),
        CheckConstraint("failed_logins >= 0", name="failed_logins"),
        # One account per email within a merchant; the same person may belong to two merchants.
        Index("uq_console_users_merchant_email", "merchant_id", "email", unique=True),
        Index("ix_console_users_email", "email"),
    )

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(200))
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)
    password_changed_at: Mapped[datetime]
    created_at: Mapped[datetime]


class ConsoleSession(Base):
    """A logged-in browser. The cookie holds a random token; only its SHA-256 is stored, so a copy of the
    database opens no session. Every form of the session carries its CSRF token."""

    __tablename__ = "console_sessions"
    __table_args__ = (Index("ix_console_sessions_user", "user_id"),)

    id: Mapped[str] = id_column()
    user_id: Mapped[str] = mapped_column(ForeignKey("console_users.id"))
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(8), default=None)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None] = mapped_column(default=None)


class AuditEntry(Base):
    """Who did what to which object, when, and the object before and after: written in the transaction of the
    action itself, so an action and its entry commit together or not at all. Append-only (a trigger refuses
    UPDATE and DELETE)."""

    __tablename__ = "console_audit_log"
    __table_args__ = (
        Index("ix_console_audit_log_merchant_seq", "merchant_id", "seq"),
        Index("ix_console_audit_log_object", "merchant_id", "object_id"),
    )

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    # The console user who acted; None for the command line (`billing users ...`, `billing keys ...`).
    user_id: Mapped[str | None] = mapped_column(ForeignKey("console_users.id"), default=None)
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str | None] = mapped_column(String(60), default=None)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONB, default=None)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONB, default=None)
    ip: Mapped[str | None] = mapped_column(String(64), default=None)
    detail: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime]
