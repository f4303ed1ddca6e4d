"""Portal tables: the links made for a customer (portal sessions), the browser logins they open, the forms those
logins submitted (each once), and the card attempts counted against a link."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Identity, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, id_column, seq_column

FLOWS = ("payment_method_update", "subscription_cancel", "subscription_update", "invoice_pay")


class PortalSession(Base):
    """A link into the hosted portal for one customer. The link carries a token signed over this row's id, its
    customer and its expiry (billing.portal.tokens); only the token's SHA-256 is stored. `scope` "invoice" is a
    session made from a hosted invoice page: it may pay that one invoice and see nothing else."""

    __tablename__ = "portal_sessions"
    __table_args__ = (
        CheckConstraint(
            "flow IS NULL OR flow IN ('payment_method_update', 'subscription_cancel', 'subscription_update', "
            "'invoice_pay')",
            name="flow",
        ),
        CheckConstraint("scope IN ('customer', 'invoice')", name="scope"),
        CheckConstraint("locale IS NULL OR locale IN ('en', 'zh-CN', 'auto')", name="locale"),
        Index("ix_portal_sessions_merchant_seq", "merchant_id", "seq"),
    )

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The one task the link opens on (None: the overview), and the subscription or invoice it is about.
    flow: Mapped[str | None] = mapped_column(String(32), default=None)
    flow_target: Mapped[str | None] = mapped_column(String(40), default=None)
    locale: Mapped[str | None] = mapped_column(String(8), default=None)
    return_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    # Why the session exists: "api" (POST /v1/portal_sessions), "hosted_invoice", or the email kind.
    origin: Mapped[str] = mapped_column(String(32))
    scope: Mapped[str] = mapped_column(String(16), default="customer", server_default="customer")
    # Links made over the API open once (the app redirects the customer at once); email links may be opened
    # again until they expire (people click twice, and mail scanners fetch links before people do).
    single_use: Mapped[bool] = mapped_column(default=False, server_default="false")
    opened_at: Mapped[datetime | None] = mapped_column(default=None)
    # Both in the customer's clock time (a test clock's customer sees its links expire as its clock advances).
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class PortalLogin(Base):
    """One browser's short session, opened by a link: the cookie's secret (only its SHA-256 is stored) and the
    CSRF token every form of this login carries."""

    __tablename__ = "portal_logins"
    __table_args__ = (CheckConstraint("locale IS NULL OR locale IN ('en', 'zh-CN')", name="locale"),)

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    portal_session_id: Mapped[str] = mapped_column(ForeignKey("portal_sessions.id"), index=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    # The language chosen with the switcher (None: the link's, then the customer's).
    locale: Mapped[str | None] = mapped_column(String(8), default=None)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None] = mapped_column(default=None)


class PortalFormSubmission(Base):
    """A form this login submitted, under the random key the page put in it: the same form posted twice (a
    double click, a reload) finds this row and gets the first post's outcome (where it redirected)."""

    __tablename__ = "portal_form_submissions"

    login_id: Mapped[str] = mapped_column(ForeignKey("portal_logins.id"), primary_key=True)
    form_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    action: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str | None] = mapped_column(String(2048), default=None)
    created_at: Mapped[datetime]


class PortalCardAttempt(Base):
    """A card number submitted through a link's pages (to add a card or to pay with one), counted for the rate
    limit on card attempts."""

    __tablename__ = "portal_card_attempts"
    __table_args__ = (Index("ix_portal_card_attempts_session_time", "portal_session_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    portal_session_id: Mapped[str] = mapped_column(ForeignKey("portal_sessions.id"))
    created_at: Mapped[datetime]
