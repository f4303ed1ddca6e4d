"""risk and reconciliation: risk decisions (also the velocity counters), payments held for review
(`requires_review`, one live payment per purpose still), and reconciliation runs per connection and day

Revision ID: 0022r
Revises: 0019
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0022r"
down_revision = "0019"
branch_labels = None
depends_on = None


def _payment_status(statuses: str, live: str) -> None:
    op.drop_constraint(op.f("ck_payments_status"), "payments", type_="check")
    op.create_check_constraint(op.f("ck_payments_status"), "payments", f"status IN ({statuses})")
    op.drop_index("uq_payments_live_purpose", table_name="payments")
    op.create_index(
        "uq_payments_live_purpose",
        "payments",
        ["merchant_id", "purpose"],
        unique=True,
        postgresql_where=sa.text(f"status IN ({live})"),
    )


def upgrade() -> None:
    _payment_status(
        "'pending', 'succeeded', 'failed', 'requires_review'", "'pending', 'succeeded', 'requires_review'"
    )
    op.create_index(
        "ix_payments_review",
        "payments",
        ["merchant_id", "seq"],
        postgresql_where=sa.text("status = 'requires_review'"),
    )
    op.create_table(
        "risk_decisions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("subject_type", sa.String(length=16), nullable=False),
        sa.Column("subject_id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=True),
        sa.Column("fingerprint", sa.String(length=100), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("outcome", sa.String(length=8), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("reasons", postgresql.JSONB(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("review", postgresql.JSONB(), nullable=True),
        sa.CheckConstraint("outcome IN ('allow', 'review', 'block')", name=op.f("ck_risk_decisions_outcome")),
        sa.CheckConstraint(
            "subject_type IN ('payment', 'payment_method', 'token')",
            name=op.f("ck_risk_decisions_subject_type"),
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_risk_decisions_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_decisions")),
        sa.UniqueConstraint("seq", name=op.f("uq_risk_decisions_seq")),
    )
    for name, column in (("fingerprint", "fingerprint"), ("customer", "customer_id"), ("ip", "ip")):
        op.create_index(f"ix_risk_decisions_{name}", "risk_decisions", ["merchant_id", column, "created_at"])
    op.create_index("ix_risk_decisions_subject", "risk_decisions", ["merchant_id", "subject_id"])
    op.create_index("ix_risk_decisions_merchant_seq", "risk_decisions", ["merchant_id", "seq"])
    op.create_table(
        "reconciliation_runs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("connection_id", sa.String(length=40), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("matched", sa.Integer(), nullable=False),
        sa.Column("missing_in_engine", sa.Integer(), nullable=False),
        sa.Column("missing_in_settlement", sa.Integer(), nullable=False),
        sa.Column("amount_mismatch", sa.Integer(), nullable=False),
        sa.Column("totals", postgresql.JSONB(), nullable=False),
        sa.Column("rows", postgresql.JSONB(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_reconciliation_runs_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_runs")),
        sa.UniqueConstraint("seq", name=op.f("uq_reconciliation_runs_seq")),
    )
    op.create_index(
        "uq_reconciliation_runs_day",
        "reconciliation_runs",
        ["merchant_id", "connection_id", "day"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_table("reconciliation_runs")
    op.drop_table("risk_decisions")
    op.drop_index("ix_payments_review", table_name="payments")
    # A held payment was never charged: it is failed (refused) on the way down.
    op.execute(
        "UPDATE payments SET status = 'failed', failure_code = 'highest_risk_level', decline_type = 'hard', "
        "settled_at = now() WHERE status = 'requires_review'"
    )
    _payment_status("'pending', 'succeeded', 'failed'", "'pending', 'succeeded'")
