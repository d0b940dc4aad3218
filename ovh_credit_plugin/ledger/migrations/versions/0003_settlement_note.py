"""A settlement's note: why credit could not pay it (``currency_mismatch``).

Revision ID: 0003_settlement_note
Revises: 0002_catalog_counts
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_settlement_note"
down_revision = "0002_catalog_counts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column at the end: no rewrite of a table of millions of rows
    # (PostgreSQL and SQLite change the catalog only; MariaDB adds it instantly).
    op.add_column("cloud_credit_settlements", sa.Column("note", sa.String(length=32),
                                                        nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cloud_credit_settlements") as batch_op:
        batch_op.drop_column("note")
