"""Orders created under an Idempotency-Key (REST API): one row per (project, key).

Revision ID: 0003_order_idempotency
Revises: 0003_settlement_note
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ovh_credit_plugin.ledger.types import UTCDateTime

revision = "0003_order_idempotency"
down_revision = "0003_settlement_note"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A new table rather than columns on cloud_credit_orders: adding a unique
    # constraint there would rebuild the whole table on SQLite and lock it on
    # MariaDB, on ledgers with years of orders.
    op.create_table(
        "cloud_credit_order_keys",
        sa.Column("project_id", sa.String(length=255), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["cloud_credit_orders.id"],
            name=op.f("fk_cloud_credit_order_keys_order_id_cloud_credit_orders"),
        ),
        sa.PrimaryKeyConstraint("project_id", "idempotency_key",
                                name=op.f("pk_cloud_credit_order_keys")),
        sa.UniqueConstraint("order_id", name=op.f("uq_cloud_credit_order_keys_order_id")),
    )


def downgrade() -> None:
    op.drop_table("cloud_credit_order_keys")
