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

_COUNTS = "cloud_credit_catalog_voucher_counts"


def upgrade() -> None:
    # MariaDB and MySQL commit the CREATE TABLE by itself: an upgrade stopped while
    # counting (a session holding the redemptions, a killed query) left the table,
    # and the revision at 0001. The counts were rolled back with the revision (the
    # next CREATE or ALTER commits both): running it again counts into that table.
    if not sa.inspect(op.get_bind()).has_table(_COUNTS):
        op.create_table(
            _COUNTS,
            sa.Column("code", sa.String(length=64), nullable=False),
            sa.Column("redemptions", sa.Integer(), nullable=False),
            sa.CheckConstraint(
                "redemptions >= 0",
                name=op.f("ck_cloud_credit_catalog_voucher_counts_non_negative")
            ),
            sa.PrimaryKeyConstraint("code", name=op.f("pk_cloud_credit_catalog_voucher_counts")),
        )
    # The counts so far. A redemption committed while this runs would be
    # missed: stop the services for `db upgrade`, as for every migration.
    op.execute(
        f"INSERT INTO {_COUNTS} (code, redemptions) "  # noqa: S608 - the ledger's name
        "SELECT code, COUNT(*) FROM cloud_credit_catalog_redemptions GROUP BY code"
    )


def downgrade() -> None:
    op.drop_table("cloud_credit_catalog_voucher_counts")
