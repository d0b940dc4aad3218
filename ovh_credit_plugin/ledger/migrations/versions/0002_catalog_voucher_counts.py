"""The file catalog's redemption counter per voucher code, backfilled from its redemptions.

Revision ID: 0002_catalog_counts
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_catalog_counts"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cloud_credit_catalog_voucher_counts",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("redemptions", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "redemptions >= 0", name=op.f("ck_cloud_credit_catalog_voucher_counts_non_negative")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_cloud_credit_catalog_voucher_counts")),
    )
    # The counts so far. A redemption committed while this runs would be
    # missed: stop the services for `db upgrade`, as for every migration.
    op.execute(
        "INSERT INTO cloud_credit_catalog_voucher_counts (code, redemptions) "
        "SELECT code, COUNT(*) FROM cloud_credit_catalog_redemptions GROUP BY code"
    )


def downgrade() -> None:
    op.drop_table("cloud_credit_catalog_voucher_counts")
