"""The usage tables as SQLAlchemy Core tables: usage events are written by COPY and read by aggregate SQL, never
loaded as ORM objects, and the partitioned table has no primary key (see docs/usage.md)."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Numeric, PrimaryKeyConstraint, Table, Text, text
from sqlalchemy.dialects.postgresql import JSONB

from billing.db.base import Base

# Range-partitioned by month on "timestamp" (partitions usage_events_pYYYYMM and usage_events_default are made
# by migration 0009's usage_events_ensure_partitions). No foreign keys: see the migration and docs/usage.md.
usage_events = Table(
    "usage_events",
    Base.metadata,
    Column("merchant_id", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("customer_id", Text, nullable=False),
    Column("meter_id", Text, nullable=False),
    Column("timestamp", DateTime(timezone=True), nullable=False),
    Column("value", Numeric, nullable=True),
    Column("properties", JSONB, nullable=False, server_default=text("'{}'")),
    # Clock time of acceptance: the test clock's time for a test-clock customer, wall time otherwise.
    Column("received_at", DateTime(timezone=True), nullable=False),
    Index("ix_usage_events_customer_meter_timestamp", "merchant_id", "customer_id", "meter_id", "timestamp"),
    postgresql_partition_by='RANGE ("timestamp")',
)

# The dedupe ledger: one row per (merchant, event id) ever accepted, kept USAGE_KEY_RETENTION of wall time.
usage_event_keys = Table(
    "usage_event_keys",
    Base.metadata,
    Column("merchant_id", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    # Wall time (the database's now()): retention is about real days, whatever a test clock says.
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    PrimaryKeyConstraint("merchant_id", "event_id", name="pk_usage_event_keys"),
    Index("ix_usage_event_keys_received_at", "received_at"),
)
