"""foundation: merchants, keys, customers, events, idempotency, test clocks, tasks

Revision ID: 0001
Revises: 
Create Date: 2026-11-23
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('merchants',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('settings', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_merchants')),
    sa.UniqueConstraint('seq', name=op.f('uq_merchants_seq'))
    )
    op.create_table('api_keys',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('merchant_id', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('redacted', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('secret', 'publishable')", name=op.f('ck_api_keys_kind')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_api_keys_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash'))
    )
    op.create_index(op.f('ix_api_keys_merchant_id'), 'api_keys', ['merchant_id'], unique=False)
    op.create_table('events',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('merchant_id', sa.String(length=40), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('object_id', sa.String(length=40), nullable=False),
    sa.Column('data', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('previous_attributes', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('test_clock_id', sa.String(length=40), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_events_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events')),
    sa.UniqueConstraint('seq', name=op.f('uq_events_seq'))
    )
    op.create_index('ix_events_merchant_seq', 'events', ['merchant_id', 'seq'], unique=False)
    op.create_index('ix_events_merchant_type_seq', 'events', ['merchant_id', 'type', 'seq'], unique=False)
    op.create_index('ix_events_object', 'events', ['merchant_id', 'object_id'], unique=False)
    op.create_table('idempotency_keys',
    sa.Column('merchant_id', sa.String(length=40), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('method', sa.String(length=8), nullable=False),
    sa.Column('path', sa.String(length=2000), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('response_status', sa.Integer(), nullable=True),
    sa.Column('response_content_type', sa.String(length=200), nullable=True),
    sa.Column('response_body', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('in_progress', 'completed')", name=op.f('ck_idempotency_keys_status')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_idempotency_keys_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('merchant_id', 'key', name=op.f('pk_idempotency_keys'))
    )
    op.create_index(op.f('ix_idempotency_keys_expires_at'), 'idempotency_keys', ['expires_at'], unique=False)
    op.create_table('test_clocks',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('merchant_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('frozen_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('target_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('failure_message', sa.Text(), nullable=True),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('advance_requested_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('ready', 'advancing', 'internal_failure')", name=op.f('ck_test_clocks_status')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_test_clocks_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_test_clocks')),
    sa.UniqueConstraint('seq', name=op.f('uq_test_clocks_seq'))
    )
    op.create_index('ix_test_clocks_merchant_seq', 'test_clocks', ['merchant_id', 'seq'], unique=False)
    op.create_table('customers',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('merchant_id', sa.String(length=40), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('name', sa.String(length=256), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('locale', sa.String(length=8), nullable=False),
    sa.Column('external_id', sa.String(length=256), nullable=True),
    sa.Column('balance', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('default_payment_method', sa.String(length=40), nullable=True),
    sa.Column('test_clock_id', sa.String(length=40), nullable=True),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("locale IN ('en', 'zh-CN')", name=op.f('ck_customers_locale')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_customers_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['test_clock_id'], ['test_clocks.id'], name=op.f('fk_customers_test_clock_id_test_clocks')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customers')),
    sa.UniqueConstraint('seq', name=op.f('uq_customers_seq'))
    )
    op.create_index('ix_customers_merchant_seq', 'customers', ['merchant_id', 'seq'], unique=False)
    op.create_index(op.f('ix_customers_test_clock_id'), 'customers', ['test_clock_id'], unique=False)
    op.create_index('uq_customers_merchant_external_id', 'customers', ['merchant_id', 'external_id'], unique=True, postgresql_where=sa.text('deleted_at IS NULL AND external_id IS NOT NULL'))
    op.create_table('scheduled_tasks',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('merchant_id', sa.String(length=40), nullable=False),
    sa.Column('test_clock_id', sa.String(length=40), nullable=True),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('dedupe_key', sa.String(length=200), nullable=True),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('available_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'done', 'failed', 'canceled')", name=op.f('ck_scheduled_tasks_status')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_scheduled_tasks_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['test_clock_id'], ['test_clocks.id'], name=op.f('fk_scheduled_tasks_test_clock_id_test_clocks')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scheduled_tasks')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_scheduled_tasks_dedupe_key')),
    sa.UniqueConstraint('seq', name=op.f('uq_scheduled_tasks_seq'))
    )
    op.create_index('ix_scheduled_tasks_due_clock', 'scheduled_tasks', ['test_clock_id', 'due_at', 'seq'], unique=False, postgresql_where=sa.text("status = 'pending' AND test_clock_id IS NOT NULL"))
    op.create_index('ix_scheduled_tasks_due_real', 'scheduled_tasks', ['due_at'], unique=False, postgresql_where=sa.text("status = 'pending' AND test_clock_id IS NULL"))
    op.create_index(op.f('ix_scheduled_tasks_merchant_id'), 'scheduled_tasks', ['merchant_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_scheduled_tasks_merchant_id'), table_name='scheduled_tasks')
    op.drop_index('ix_scheduled_tasks_due_real', table_name='scheduled_tasks', postgresql_where=sa.text("status = 'pending' AND test_clock_id IS NULL"))
    op.drop_index('ix_scheduled_tasks_due_clock', table_name='scheduled_tasks', postgresql_where=sa.text("status = 'pending' AND test_clock_id IS NOT NULL"))
    op.drop_table('scheduled_tasks')
    op.drop_index('uq_customers_merchant_external_id', table_name='customers', postgresql_where=sa.text('deleted_at IS NULL AND external_id IS NOT NULL'))
    op.drop_index(op.f('ix_customers_test_clock_id'), table_name='customers')
    op.drop_index('ix_customers_merchant_seq', table_name='customers')
    op.drop_table('customers')
    op.drop_index('ix_test_clocks_merchant_seq', table_name='test_clocks')
    op.drop_table('test_clocks')
    op.drop_index(op.f('ix_idempotency_keys_expires_at'), table_name='idempotency_keys')
    op.drop_table('idempotency_keys')
    op.drop_index('ix_events_object', table_name='events')
    op.drop_index('ix_events_merchant_type_seq', table_name='events')
    op.drop_index('ix_events_merchant_seq', table_name='events')
    op.drop_table('events')
    op.drop_index(op.f('ix_api_keys_merchant_id'), table_name='api_keys')
    op.drop_table('api_keys')
    op.drop_table('merchants')
