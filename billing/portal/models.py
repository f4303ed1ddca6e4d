"""Portal sessions: links into the hosted portal for one customer."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, id_column, seq_column


class PortalSession(Base):
    """A link into the hosted portal for one customer. The URL's token is the only credential, so only its
    SHA-256 is stored; the form nonce guards the page's POST forms."""

    __tablename__ = "portal_sessions"
    __table_args__ = (
        CheckConstraint("flow IN ('payment_method_update')", name="flow"),
        Index("ix_portal_sessions_merchant_seq", "merchant_id", "seq"),
    )

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    form_nonce: Mapped[str] = mapped_column(String(64))
    flow: Mapped[str] = mapped_column(String(32), default="payment_method_update")
    return_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    # Why the session exists: "api" (POST /v1/portal_sessions) or the email kind that carries its link.
    origin: Mapped[str] = mapped_column(String(32))
    # Both in the customer's clock time (a test clock's customer sees its links expire as its clock advances).
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
