"""join the branches developed side by side (webhooks, usage, dunning, emails) into one head, so the next
migration has one parent

Revision ID: 0013
Revises: 0002, 0010, 0011, 0012
"""

from __future__ import annotations

revision = "0013"
down_revision = ("0002", "0010", "0011", "0012")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
