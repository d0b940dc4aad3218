"""Voucher tries keyed by the client (a lost COMMIT counts once) and operators' unblocks.

Revision ID: 0004_voucher_attempt_keys
Revises: 0003_order_idempotency
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ovh_credit_plugin.ledger.types import UTCDateTime

revision = "0004_voucher_attempt_keys"
down_revision = "0003_order_idempotency"
branch_labels = None
depends_on = None

_ATTEMPTS = "cloud_credit_voucher_attempts"
_FK = "fk_cloud_credit_voucher_attempts_unblock_id"
_UNBLOCKS = "cloud_credit_voucher_unblocks"


def upgrade() -> None:
    # MariaDB and MySQL commit each CREATE and ALTER by itself: an upgrade stopped
    # half-way (a service still holding the attempts' table, a killed query) left
    # the steps before it done, the revision at 0003. Running it again does only
    # the steps still missing (elsewhere the whole upgrade was rolled back).
    inspector = sa.inspect(op.get_bind())
    new_table = not inspector.has_table(_UNBLOCKS)
    if new_table:
        op.create_table(
            _UNBLOCKS,
            sa.Column("id", sa.String(length=36), nullable=False),
            sa.Column("project_id", sa.String(length=255), nullable=False),
            sa.Column("reason", sa.Text(), nullable=False),
            sa.Column("operator", sa.String(length=255), nullable=False),
            sa.Column("cleared", sa.Integer(), nullable=False),
            sa.Column("created_at", UTCDateTime(), nullable=False),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_cloud_credit_voucher_unblocks")),
        )
    index = op.f("ix_cloud_credit_voucher_unblocks_project_id_created_at")
    if new_table or index not in {i["name"] for i in inspector.get_indexes(_UNBLOCKS)}:
        op.create_index(index, _UNBLOCKS, ["project_id", "created_at"])

    columns = {c["name"] for c in inspector.get_columns(_ATTEMPTS)}
    if "attempt_key" not in columns:
        # Nullable first, so that the rows already there can get their key.
        op.add_column(_ATTEMPTS, sa.Column("attempt_key", sa.String(length=36), nullable=True))
    attempts = sa.table(_ATTEMPTS, sa.column("id", sa.BigInteger()),
                        sa.column("attempt_key", sa.String(36)))
    # A key of their own that no client draws (clients draw UUIDs). The table
    # holds the tries of the throttle's windows: small, one statement.
    op.execute(attempts.update().values(
        attempt_key=sa.literal("migrated-") + sa.cast(attempts.c.id, sa.String(20))
    ).where(attempts.c.attempt_key.is_(None)))
    unique = op.f("uq_cloud_credit_voucher_attempts_attempt_key")
    # SQLite rebuilds the table (batch mode); the others alter it in place.
    with op.batch_alter_table(_ATTEMPTS) as batch_op:
        batch_op.alter_column("attempt_key", existing_type=sa.String(length=36),
                              nullable=False)
        if unique not in {u["name"] for u in inspector.get_unique_constraints(_ATTEMPTS)}:
            batch_op.create_unique_constraint(unique, ["attempt_key"])
        if "unblock_id" not in columns:
            batch_op.add_column(sa.Column("unblock_id", sa.String(length=36), nullable=True))
        if _FK not in {k["name"] for k in inspector.get_foreign_keys(_ATTEMPTS)}:
            batch_op.create_foreign_key(_FK, _UNBLOCKS, ["unblock_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table(_ATTEMPTS) as batch_op:
        batch_op.drop_constraint(_FK, type_="foreignkey")
        batch_op.drop_column("unblock_id")
        batch_op.drop_constraint(batch_op.f("uq_cloud_credit_voucher_attempts_attempt_key"),
                                 type_="unique")
        batch_op.drop_column("attempt_key")
    op.drop_index(op.f("ix_cloud_credit_voucher_unblocks_project_id_created_at"),
                  table_name="cloud_credit_voucher_unblocks")
    op.drop_table("cloud_credit_voucher_unblocks")
