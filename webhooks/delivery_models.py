"""Tables of webhook delivery: the endpoints merchants register, one delivery per (event, endpoint), and one row
per HTTP attempt. Delivery state lives here, in PostgreSQL, never only in Redis: a lost queue loses nothing."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, id_column, seq_column


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        CheckConstraint("status IN ('enabled', 'disabled')", name="status"),
        CheckConstraint(
            "disabled_reason IS NULL OR disabled_reason IN ('requested', 'gone', 'failing')",
            name="disabled_reason",
        ),
        Index("ix_webhook_endpoints_merchant_seq", "merchant_id", "seq"),
        # Fan-out reads the enabled endpoints of one merchant in every transaction that writes an event.
        Index(
            "ix_webhook_endpoints_enabled",
            "merchant_id",
            postgresql_where=text("status = 'enabled' AND deleted_at IS NULL"),
        ),
    )

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(String(500), default=None)
    # Event types, or ["*"] for every type.
    enabled_events: Mapped[list[str]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16), default="enabled")
    # requested (the merchant), gone (the endpoint answered 410), failing (no success for three days).
    disabled_reason: Mapped[str | None] = mapped_column(String(16), default=None)
    # The signing secret must be readable to sign; it is never rendered except when created or rotated.
    secret: Mapped[str] = mapped_column(String(128))
    # After a rotation the old secret keeps signing, alongside the new one, until it expires (24 h).
    previous_secret: Mapped[str | None] = mapped_column(String(128), default=None)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    # Real time of the first failed attempt since the last success; three days of that disables the endpoint.
    failing_since: Mapped[datetime | None] = mapped_column(default=None)
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", default=dict, server_default="{}")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)


class WebhookDelivery(Base):
    """One event to be delivered to one endpoint, with its retry state. Times are real UTC (infrastructure)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'succeeded', 'failed', 'canceled')", name="status"),
        CheckConstraint("origin IN ('event', 'redelivery')", name="origin"),
        # Fan-out creates one delivery per (event, endpoint), whatever happens to the flush that made it.
        Index(
            "uq_webhook_deliveries_event_endpoint",
            "event_id",
            "endpoint_id",
            unique=True,
            postgresql_where=text("origin = 'event'"),
        ),
        Index("ix_webhook_deliveries_endpoint_seq", "endpoint_id", "seq"),
        # The claim: per endpoint, the earliest due pending deliveries...
        Index(
            "ix_webhook_deliveries_due",
            "endpoint_id",
            "next_attempt_at",
            "seq",
            postgresql_where=text("status = 'pending'"),
        ),
        # ...and how many are in flight (leased) per endpoint, which bounds its concurrency.
        Index(
            "ix_webhook_deliveries_leased",
            "endpoint_id",
            "lease_until",
            postgresql_where=text("status = 'pending' AND lease_until IS NOT NULL"),
        ),
    )

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id"))
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"), index=True)
    event_type: Mapped[str] = mapped_column(String(64))
    origin: Mapped[str] = mapped_column(String(16), default="event")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    first_failed_at: Mapped[datetime | None] = mapped_column(default=None)
    # A claimed delivery is leased until this instant; if the worker dies, the lease lapses and it is sent again.
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    # Incremented by every claim: a worker whose lease lapsed cannot overwrite the state of a later claim.
    lease_token: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime]
    completed_at: Mapped[datetime | None] = mapped_column(default=None)


class WebhookDeliveryAttempt(Base):
    """One HTTP request of a delivery and what came back (SPEC §7: every attempt is logged)."""

    __tablename__ = "webhook_delivery_attempts"
    __table_args__ = (Index("ix_webhook_delivery_attempts_delivery", "delivery_id", "seq"),)

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    delivery_id: Mapped[str] = mapped_column(ForeignKey("webhook_deliveries.id"))
    attempted_at: Mapped[datetime]
    latency_ms: Mapped[int] = mapped_column(Integer)
    succeeded: Mapped[bool] = mapped_column(Boolean)
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    # The first bytes of the response body, decoded leniently: enough to see what the receiver said.
    response_body: Mapped[str | None] = mapped_column(Text, default=None)
    # When the next attempt was planned after this one (None: delivered, or given up).
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
