"""Expiry warnings sent by ``ovh-credit notify-expiring``: one row per credit and threshold.

Revision ID: 0006_expiry_notices
Revises: 0005_amount_checks
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ovh_credit_plugin.ledger.types import UTCDateTime

revision = "0006_expiry_notices"
down_revision = "0005_amount_checks"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "cloud_credit_expiry_notices",
        sa.Column("credit_id", BIG_ID, autoincrement=False, nullable=False),
        sa.Column("threshold_days", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["credit_id"], ["cloud_credit_credits.id"],
            name=op.f("fk_cloud_credit_expiry_notices_credit_id_cloud_credit_credits"),
        ),
        sa.PrimaryKeyConstraint("credit_id", "threshold_days",
                                name=op.f("pk_cloud_credit_expiry_notices")),
    )


def downgrade() -> None:
    op.drop_table("cloud_credit_expiry_notices")
