"""payments: card vault (entries, secrets), payment methods, card tokens, payments, refunds, gateway attempts
and health

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-23
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('vault_secrets',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('kek_id', sa.String(length=32), nullable=False),
    sa.Column('wrapped', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('rewrapped_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_vault_secrets'))
    )
    op.create_table('gateway_attempts',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('merchant_id', sa.String(length=40), nullable=False),
    sa.Column('connection_id', sa.String(length=40), nullable=False),
    sa.Column('gateway_type', sa.String(length=32), nullable=False),
    sa.Column('operation', sa.String(length=16), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=True),
    sa.Column('latency_ms', sa.Integer(), nullable=False),
    sa.Column('payment_id', sa.String(length=40), nullable=True),
    sa.Column('refund_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("operation IN ('charge', 'retrieve', 'refund', 'retrieve_refund')", name=op.f('ck_gateway_attempts_operation')),
    sa.CheckConstraint("outcome IN ('succeeded', 'declined', 'technical_error', 'unknown', 'not_found')", name=op.f('ck_gateway_attempts_outcome')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_gateway_attempts_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gateway_attempts'))
    )
    op.create_index('ix_gateway_attempts_connection_time', 'gateway_attempts', ['merchant_id', 'connection_id', 'created_at'], unique=False)
    op.create_index('ix_gateway_attempts_created_at', 'gateway_attempts', ['created_at'], unique=False)
    op.create_index(op.f('ix_gateway_attempts_payment_id'), 'gateway_attempts', ['payment_id'], unique=False)
    op.create_table('gateway_health',
    sa.Column('merchant_id', sa.String(length=40), nullable=False),
    sa.Column('connection_id', sa.String(length=40), nullable=False),
    sa.Column('consecutive_failures', sa.Integer(), nullable=False),
    sa.Column('last_failure_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_failure_code', sa.String(length=64), nullable=True),
    sa.Column('recovered_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_gateway_health_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('merchant_id', 'connection_id', name=op.f('pk_gateway_health'))
    )
    op.create_table('vault_entries',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('merchant_id', sa.String(length=40), nullable=False),
    sa.Column('kek_id', sa.String(length=32), nullable=False),
    sa.Column('wrapped_key', sa.LargeBinary(), nullable=False),
    sa.Column('ciphertext', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('rewrapped_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_vault_entries_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vault_entries'))
    )
    op.create_index('ix_vault_entries_kek_id', 'vault_entries', ['kek_id'], unique=False)
    op.create_index(op.f('ix_vault_entries_merchant_id'), 'vault_entries', ['merchant_id'], unique=False)
    op.create_table('card_tokens',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('merchant_id', sa.String(length=40), nullable=False),
    sa.Column('card_brand', sa.String(length=16), nullable=False),
    sa.Column('card_last4', sa.String(length=4), nullable=False),
    sa.Column('card_exp_month', sa.SmallInteger(), nullable=False),
    sa.Column('card_exp_year', sa.SmallInteger(), nullable=False),
    sa.Column('vault_entry_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_card_tokens_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['vault_entry_id'], ['vault_entries.id'], name=op.f('fk_card_tokens_vault_entry_id_vault_entries'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_card_tokens')),
    sa.UniqueConstraint('seq', name=op.f('uq_card_tokens_seq')),
    sa.UniqueConstraint('vault_entry_id', name=op.f('uq_card_tokens_vault_entry_id'))
    )
    op.create_index('ix_card_tokens_expires_at', 'card_tokens', ['expires_at'], unique=False)
    op.create_index(op.f('ix_card_tokens_merchant_id'), 'card_tokens', ['merchant_id'], unique=False)
    op.create_table('payment_methods',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('merchant_id', sa.String(length=40), nullable=False),
    sa.Column('customer_id', sa.String(length=40), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('card_brand', sa.String(length=16), nullable=False),
    sa.Column('card_last4', sa.String(length=4), nullable=False),
    sa.Column('card_exp_month', sa.SmallInteger(), nullable=False),
    sa.Column('card_exp_year', sa.SmallInteger(), nullable=False),
    sa.Column('card_fingerprint', sa.String(length=32), nullable=False),
    sa.Column('vault_entry_id', sa.String(length=40), nullable=True),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('detached_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("type IN ('card')", name=op.f('ck_payment_methods_type')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_payment_methods_customer_id_customers')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_payment_methods_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['vault_entry_id'], ['vault_entries.id'], name=op.f('fk_payment_methods_vault_entry_id_vault_entries'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_methods')),
    sa.UniqueConstraint('seq', name=op.f('uq_payment_methods_seq')),
    sa.UniqueConstraint('vault_entry_id', name=op.f('uq_payment_methods_vault_entry_id'))
    )
    op.create_index('ix_payment_methods_customer_seq', 'payment_methods', ['merchant_id', 'customer_id', 'seq'], unique=False)
    op.create_index('ix_payment_methods_merchant_seq', 'payment_methods', ['merchant_id', 'seq'], unique=False)
    op.create_table('payments',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('merchant_id', sa.String(length=40), nullable=False),
    sa.Column('customer_id', sa.String(length=40), nullable=False),
    sa.Column('payment_method_id', sa.String(length=40), nullable=False),
    sa.Column('invoice_id', sa.String(length=40), nullable=True),
    sa.Column('purpose', sa.String(length=200), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('attempt_key', sa.String(length=220), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=True),
    sa.Column('card_brand', sa.String(length=16), nullable=True),
    sa.Column('card_last4', sa.String(length=4), nullable=True),
    sa.Column('route', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('gateway', sa.String(length=40), nullable=True),
    sa.Column('gateway_type', sa.String(length=32), nullable=True),
    sa.Column('gateway_reference', sa.String(length=100), nullable=True),
    sa.Column('failure_code', sa.String(length=64), nullable=True),
    sa.Column('decline_type', sa.String(length=8), nullable=True),
    sa.Column('failure_message', sa.Text(), nullable=True),
    sa.Column('next_action', sa.String(length=32), nullable=True),
    sa.Column('pending_reason', sa.String(length=64), nullable=True),
    sa.Column('amount_refunded', sa.BigInteger(), nullable=False),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('test_clock_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('settled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('settle_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('janitor_attempts', sa.Integer(), nullable=False),
    sa.CheckConstraint("decline_type IS NULL OR decline_type IN ('soft', 'hard')", name=op.f('ck_payments_decline_type')),
    sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name=op.f('ck_payments_status')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_payments_amount_positive')),
    sa.CheckConstraint('amount_refunded >= 0 AND amount_refunded <= amount', name=op.f('ck_payments_refund_bounds')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_payments_customer_id_customers')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_payments_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['payment_method_id'], ['payment_methods.id'], name=op.f('fk_payments_payment_method_id_payment_methods')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments')),
    sa.UniqueConstraint('seq', name=op.f('uq_payments_seq'))
    )
    op.create_index('ix_payments_customer_seq', 'payments', ['merchant_id', 'customer_id', 'seq'], unique=False)
    op.create_index('ix_payments_invoice', 'payments', ['merchant_id', 'invoice_id'], unique=False)
    op.create_index('ix_payments_merchant_seq', 'payments', ['merchant_id', 'seq'], unique=False)
    op.create_index('ix_payments_pending', 'payments', ['settle_after'], unique=False, postgresql_where=sa.text("status = 'pending'"))
    op.create_index('uq_payments_attempt_key', 'payments', ['merchant_id', 'attempt_key'], unique=True)
    op.create_index('uq_payments_live_purpose', 'payments', ['merchant_id', 'purpose'], unique=True, postgresql_where=sa.text("status IN ('pending', 'succeeded')"))
    op.create_table('refunds',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('merchant_id', sa.String(length=40), nullable=False),
    sa.Column('payment_id', sa.String(length=40), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=True),
    sa.Column('gateway', sa.String(length=40), nullable=False),
    sa.Column('gateway_reference', sa.String(length=100), nullable=True),
    sa.Column('failure_code', sa.String(length=64), nullable=True),
    sa.Column('failure_message', sa.Text(), nullable=True),
    sa.Column('idempotency_key', sa.String(length=255), nullable=True),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('test_clock_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('settled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('settle_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('janitor_attempts', sa.Integer(), nullable=False),
    sa.CheckConstraint("reason IS NULL OR reason IN ('duplicate', 'fraudulent', 'requested_by_customer')", name=op.f('ck_refunds_reason')),
    sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name=op.f('ck_refunds_status')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_refunds_amount_positive')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_refunds_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_refunds_payment_id_payments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refunds')),
    sa.UniqueConstraint('seq', name=op.f('uq_refunds_seq'))
    )
    op.create_index('ix_refunds_merchant_seq', 'refunds', ['merchant_id', 'seq'], unique=False)
    op.create_index('ix_refunds_payment', 'refunds', ['payment_id'], unique=False)
    op.create_index('ix_refunds_pending', 'refunds', ['settle_after'], unique=False, postgresql_where=sa.text("status = 'pending'"))
    op.create_index('uq_refunds_idempotency_key', 'refunds', ['merchant_id', 'idempotency_key'], unique=True, postgresql_where=sa.text('idempotency_key IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('uq_refunds_idempotency_key', table_name='refunds', postgresql_where=sa.text('idempotency_key IS NOT NULL'))
    op.drop_index('ix_refunds_pending', table_name='refunds', postgresql_where=sa.text("status = 'pending'"))
    op.drop_index('ix_refunds_payment', table_name='refunds')
    op.drop_index('ix_refunds_merchant_seq', table_name='refunds')
    op.drop_table('refunds')
    op.drop_index('uq_payments_live_purpose', table_name='payments', postgresql_where=sa.text("status IN ('pending', 'succeeded')"))
    op.drop_index('uq_payments_attempt_key', table_name='payments')
    op.drop_index('ix_payments_pending', table_name='payments', postgresql_where=sa.text("status = 'pending'"))
    op.drop_index('ix_payments_merchant_seq', table_name='payments')
    op.drop_index('ix_payments_invoice', table_name='payments')
    op.drop_index('ix_payments_customer_seq', table_name='payments')
    op.drop_table('payments')
    op.drop_index('ix_payment_methods_merchant_seq', table_name='payment_methods')
    op.drop_index('ix_payment_methods_customer_seq', table_name='payment_methods')
    op.drop_table('payment_methods')
    op.drop_index(op.f('ix_card_tokens_merchant_id'), table_name='card_tokens')
    op.drop_index('ix_card_tokens_expires_at', table_name='card_tokens')
    op.drop_table('card_tokens')
    op.drop_index(op.f('ix_vault_entries_merchant_id'), table_name='vault_entries')
    op.drop_index('ix_vault_entries_kek_id', table_name='vault_entries')
    op.drop_table('vault_entries')
    op.drop_table('gateway_health')
    op.drop_index(op.f('ix_gateway_attempts_payment_id'), table_name='gateway_attempts')
    op.drop_index('ix_gateway_attempts_created_at', table_name='gateway_attempts')
    op.drop_index('ix_gateway_attempts_connection_time', table_name='gateway_attempts')
    op.drop_table('gateway_attempts')
    op.drop_table('vault_secrets')
