"""subscriptions, pending invoice items, and the invoice columns that tie an invoice to a subscription period
(one invoice per period, by a unique index)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0006'
# Joins the catalog branch (plans, coupons) and the invoices branch: subscriptions need both.
down_revision = ('0004', '0005')
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('subscriptions',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('merchant_id', sa.String(length=40), nullable=False),
    sa.Column('customer_id', sa.String(length=40), nullable=False),
    sa.Column('plan_id', sa.String(length=40), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('collection_method', sa.String(length=24), nullable=False),
    sa.Column('days_until_due', sa.Integer(), nullable=True),
    sa.Column('default_payment_method', sa.String(length=40), nullable=True),
    sa.Column('billing_cycle_anchor', sa.DateTime(timezone=True), nullable=False),
    sa.Column('period_index', sa.Integer(), nullable=False),
    sa.Column('period_offset', sa.Integer(), server_default='0', nullable=False),
    sa.Column('current_period_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('current_period_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('trial_start', sa.DateTime(timezone=True), nullable=True),
    sa.Column('trial_end', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancel_at_period_end', sa.Boolean(), nullable=False),
    sa.Column('canceled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('paused_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('coupon_id', sa.String(length=40), nullable=True),
    sa.Column('coupon_start_index', sa.Integer(), nullable=True),
    sa.Column('tax_rate_ids', postgresql.JSONB(astext_type=sa.Text()), server_default='[]', nullable=False),
    sa.Column('pending_change', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('latest_invoice_id', sa.String(length=40), nullable=True),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("collection_method IN ('charge_automatically', 'send_invoice')", name=op.f('ck_subscriptions_collection_method')),
    sa.CheckConstraint("status IN ('trialing', 'active', 'past_due', 'unpaid', 'paused', 'canceled', 'incomplete', 'incomplete_expired')", name=op.f('ck_subscriptions_status')),
    sa.CheckConstraint('quantity >= 1', name=op.f('ck_subscriptions_quantity')),
    sa.ForeignKeyConstraint(['coupon_id'], ['coupons.id'], name=op.f('fk_subscriptions_coupon_id_coupons')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_subscriptions_customer_id_customers')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_subscriptions_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], name=op.f('fk_subscriptions_plan_id_plans')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscriptions')),
    sa.UniqueConstraint('seq', name=op.f('uq_subscriptions_seq'))
    )
    op.create_index('ix_subscriptions_customer', 'subscriptions', ['merchant_id', 'customer_id', 'seq'], unique=False)
    op.create_index('ix_subscriptions_merchant_seq', 'subscriptions', ['merchant_id', 'seq'], unique=False)
    op.create_table('pending_invoice_items',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('merchant_id', sa.String(length=40), nullable=False),
    sa.Column('subscription_id', sa.String(length=40), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('period_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('period_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('details', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_pending_invoice_items_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], name=op.f('fk_pending_invoice_items_subscription_id_subscriptions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pending_invoice_items')),
    sa.UniqueConstraint('seq', name=op.f('uq_pending_invoice_items_seq'))
    )
    op.create_index('ix_pending_items_subscription', 'pending_invoice_items', ['subscription_id', 'seq'], unique=False)
    op.add_column('invoices', sa.Column('billing_reason', sa.String(length=32), server_default='manual', nullable=False))
    op.add_column('invoices', sa.Column('subscription_period_index', sa.Integer(), nullable=True))
    op.add_column('invoices', sa.Column('coupon_id', sa.String(length=40), nullable=True))
    op.add_column('invoices', sa.Column('tax_rate_ids', postgresql.JSONB(astext_type=sa.Text()), server_default='[]', nullable=False))
    op.add_column('invoices', sa.Column('last_payment_error', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.create_index('uq_invoices_subscription_period', 'invoices', ['subscription_id', 'subscription_period_index'], unique=True, postgresql_where=sa.text('subscription_period_index IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('uq_invoices_subscription_period', table_name='invoices', postgresql_where=sa.text('subscription_period_index IS NOT NULL'))
    op.drop_column('invoices', 'last_payment_error')
    op.drop_column('invoices', 'tax_rate_ids')
    op.drop_column('invoices', 'coupon_id')
    op.drop_column('invoices', 'subscription_period_index')
    op.drop_column('invoices', 'billing_reason')
    op.drop_index('ix_pending_items_subscription', table_name='pending_invoice_items')
    op.drop_table('pending_invoice_items')
    op.drop_index('ix_subscriptions_merchant_seq', table_name='subscriptions')
    op.drop_index('ix_subscriptions_customer', table_name='subscriptions')
    op.drop_table('subscriptions')
