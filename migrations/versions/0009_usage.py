"""usage events (range-partitioned by month on the event timestamp), the dedupe keys, and the function that keeps
the monthly partitions ahead of time

Revision ID: 0009
Revises: 0007, 0008
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0009"
# Joins the invoice documents (0007) and credit notes (0008) heads: usage builds on the whole billing schema.
down_revision = ("0007", "0008")
branch_labels = None
depends_on = None


UPGRADE = [
    # No foreign keys on the hot table: at tens of thousands of rows per second each FK costs an index probe and
    # a row lock (FOR KEY SHARE) on the customer and meter per inserted row, and it forbids cheap DROP/DETACH of
    # old partitions. Ingestion resolves customer and meter within the merchant before it writes (one query per
    # batch), and customers/meters are never deleted, only archived.
    """
CREATE TABLE usage_events (
  merchant_id text NOT NULL,
  event_id text NOT NULL,
  customer_id text NOT NULL,
  meter_id text NOT NULL,
  "timestamp" timestamptz NOT NULL,
  value numeric NULL,
  properties jsonb NOT NULL DEFAULT '{}',
  received_at timestamptz NOT NULL
) PARTITION BY RANGE ("timestamp")
""",
    'CREATE INDEX ix_usage_events_customer_meter_timestamp ON usage_events (merchant_id, customer_id, meter_id, "timestamp")',
    # Events whose month has no partition yet (a test clock far in the future, a maintenance run missed) land
    # here; the maintenance function moves them out when it creates their month.
    "CREATE TABLE usage_events_default PARTITION OF usage_events DEFAULT",
    # One row per accepted event id, kept at least 35 days (wall time) then pruned by the daily janitor. The
    # primary key is what makes dedupe exact under races: a second transaction inserting the same key waits for
    # the first one and then conflicts (ON CONFLICT DO NOTHING skips it) or inserts it if the first rolled back.
    """
CREATE TABLE usage_event_keys (
  merchant_id text NOT NULL,
  event_id text NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT pk_usage_event_keys PRIMARY KEY (merchant_id, event_id)
)
""",
    "CREATE INDEX ix_usage_event_keys_received_at ON usage_event_keys (received_at)",
    # Creates the monthly partitions usage_events_pYYYYMM for [month of `around` - before, + after] that do not
    # exist yet; idempotent, serialized by an advisory lock. A month's rows already in DEFAULT are moved into the
    # new table before it is attached (CREATE TABLE ... PARTITION OF would fail on them). Creating a standalone
    # table and ATTACHing it takes only SHARE UPDATE EXCLUSIVE on the parent, so ingestion (ROW EXCLUSIVE on the
    # parent) keeps running; only inserts routed to DEFAULT wait for the move.
    """
CREATE FUNCTION usage_events_ensure_partitions(around timestamptz, months_before integer DEFAULT 2,
                                               months_after integer DEFAULT 2)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  first_month date := (date_trunc('month', around AT TIME ZONE 'UTC') - make_interval(months => months_before))::date;
  m date;
  lo timestamptz;
  hi timestamptz;
  part text;
  created integer := 0;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('usage_events_ensure_partitions'));
  FOR i IN 0 .. months_before + months_after LOOP
    m := (first_month + make_interval(months => i))::date;
    part := 'usage_events_p' || to_char(m, 'YYYYMM');
    CONTINUE WHEN to_regclass(quote_ident(part)) IS NOT NULL;
    lo := m::timestamp AT TIME ZONE 'UTC';
    hi := (m + interval '1 month')::timestamp AT TIME ZONE 'UTC';
    EXECUTE format('CREATE TABLE %I (LIKE usage_events INCLUDING DEFAULTS)', part);
    LOCK TABLE usage_events_default IN ACCESS EXCLUSIVE MODE;
    EXECUTE format(
      'WITH moved AS (DELETE FROM usage_events_default WHERE "timestamp" >= $1 AND "timestamp" < $2 RETURNING *) '
      'INSERT INTO %I SELECT * FROM moved', part) USING lo, hi;
    EXECUTE format('ALTER TABLE usage_events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
    created := created + 1;
  END LOOP;
  RETURN created;
END $$
""",
    "SELECT usage_events_ensure_partitions(now())",
]

DOWNGRADE = [
    "DROP FUNCTION usage_events_ensure_partitions(timestamptz, integer, integer)",
    "DROP TABLE usage_event_keys",
    "DROP TABLE usage_events",
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
