"""Initial ledger: projects, credits, entries, orders, settlements, vouchers.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ovh_credit_plugin.ledger.types import Money, UTCDateTime

# SQLite only auto-increments an INTEGER PRIMARY KEY.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cloud_credit_catalog_redemptions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=255), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("redeemed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cloud_credit_catalog_redemptions")),
        sa.UniqueConstraint(
            "idempotency_key", name=op.f("uq_cloud_credit_catalog_redemptions_idempotency_key")
        ),
    )
    with op.batch_alter_table("cloud_credit_catalog_redemptions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cloud_credit_catalog_redemptions_code"), ["code"], unique=False
        )

    op.create_table(
        "cloud_credit_projects",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cloud_credit_projects")),
    )
    op.create_table(
        "cloud_credit_settlements",
        sa.Column("key", sa.String(length=600), nullable=False),
        sa.Column("project_id", sa.String(length=255), nullable=False),
        sa.Column("invoice_id", sa.String(length=255), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("total", Money(), nullable=False),
        sa.Column("credit_applied", Money(), nullable=False),
        sa.Column("amount_due", Money(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("allocations", sa.Text(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("settled_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_cloud_credit_settlements")),
    )
    with op.batch_alter_table("cloud_credit_settlements", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cloud_credit_settlements_project_id"), ["project_id"], unique=False
        )

    op.create_table(
        "cloud_credit_voucher_attempts",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("project_id", sa.String(length=255), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cloud_credit_voucher_attempts")),
    )
    with op.batch_alter_table("cloud_credit_voucher_attempts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cloud_credit_voucher_attempts_project_id_created_at"),
            ["project_id", "created_at"],
            unique=False,
        )

    op.create_table(
        "cloud_credit_credits",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("project_id", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("products", sa.Text(), nullable=False),
        sa.Column("total", Money(), nullable=False),
        sa.Column("used", Money(), nullable=False),
        sa.Column("expired", Money(), nullable=False),
        sa.Column("voided", Money(), nullable=False),
        sa.Column("available", Money(), nullable=False),
        sa.Column("valid_from", UTCDateTime(), nullable=False),
        sa.Column("valid_until", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("voided_at", UTCDateTime(), nullable=True),
        sa.Column("void_reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('voucher', 'purchased')", name=op.f("ck_cloud_credit_credits_kind")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["cloud_credit_projects.id"],
            name=op.f("fk_cloud_credit_credits_project_id_cloud_credit_projects"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cloud_credit_credits")),
        sa.UniqueConstraint(
            "project_id",
            "kind",
            "source",
            name=op.f("uq_cloud_credit_credits_project_id_kind_source"),
        ),
    )
    with op.batch_alter_table("cloud_credit_credits", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cloud_credit_credits_project_id_available"),
            ["project_id", "available"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_cloud_credit_credits_valid_until"), ["valid_until"], unique=False
        )

    op.create_table(
        "cloud_credit_ledger_entries",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("credit_id", BIG_ID, nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("settlement_key", sa.String(length=600), nullable=True),
        sa.Column("line_id", sa.String(length=255), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "type IN ('grant', 'debit', 'reversal', 'expiry', 'void')",
            name=op.f("ck_cloud_credit_ledger_entries_type"),
        ),
        sa.ForeignKeyConstraint(
            ["credit_id"],
            ["cloud_credit_credits.id"],
            name=op.f("fk_cloud_credit_ledger_entries_credit_id_cloud_credit_credits"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cloud_credit_ledger_entries")),
    )
    with op.batch_alter_table("cloud_credit_ledger_entries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cloud_credit_ledger_entries_credit_id"), ["credit_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_cloud_credit_ledger_entries_settlement_key"),
            ["settlement_key"],
            unique=False,
        )

    op.create_table(
        "cloud_credit_orders",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=255), nullable=False),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("paid_at", UTCDateTime(), nullable=True),
        sa.Column("cancelled_at", UTCDateTime(), nullable=True),
        sa.Column("payment_url", sa.Text(), nullable=False),
        sa.Column("credit_id", BIG_ID, nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'paid', 'cancelled', 'expired')",
            name=op.f("ck_cloud_credit_orders_status"),
        ),
        sa.ForeignKeyConstraint(
            ["credit_id"],
            ["cloud_credit_credits.id"],
            name=op.f("fk_cloud_credit_orders_credit_id_cloud_credit_credits"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["cloud_credit_projects.id"],
            name=op.f("fk_cloud_credit_orders_project_id_cloud_credit_projects"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cloud_credit_orders")),
        sa.UniqueConstraint("credit_id", name=op.f("uq_cloud_credit_orders_credit_id")),
    )
    with op.batch_alter_table("cloud_credit_orders", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cloud_credit_orders_project_id_created_at"),
            ["project_id", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_cloud_credit_orders_status_expires_at"),
            ["status", "expires_at"],
            unique=False,
        )

    op.create_table(
        "cloud_credit_voucher_activations",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("project_id", sa.String(length=255), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("redemption_id", sa.String(length=255), nullable=True),
        sa.Column("credit_id", BIG_ID, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'granted')",
            name=op.f("ck_cloud_credit_voucher_activations_status"),
        ),
        sa.ForeignKeyConstraint(
            ["credit_id"],
            ["cloud_credit_credits.id"],
            name=op.f("fk_cloud_credit_voucher_activations_credit_id_cloud_credit_credits"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cloud_credit_voucher_activations")),
        sa.UniqueConstraint(
            "credit_id", name=op.f("uq_cloud_credit_voucher_activations_credit_id")
        ),
        sa.UniqueConstraint(
            "idempotency_key", name=op.f("uq_cloud_credit_voucher_activations_idempotency_key")
        ),
        sa.UniqueConstraint(
            "project_id", "code", name=op.f("uq_cloud_credit_voucher_activations_project_id_code")
        ),
    )


def downgrade() -> None:
    op.drop_table("cloud_credit_voucher_activations")
    with op.batch_alter_table("cloud_credit_orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cloud_credit_orders_status_expires_at"))
        batch_op.drop_index(batch_op.f("ix_cloud_credit_orders_project_id_created_at"))

    op.drop_table("cloud_credit_orders")
    with op.batch_alter_table("cloud_credit_ledger_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cloud_credit_ledger_entries_settlement_key"))
        batch_op.drop_index(batch_op.f("ix_cloud_credit_ledger_entries_credit_id"))

    op.drop_table("cloud_credit_ledger_entries")
    with op.batch_alter_table("cloud_credit_credits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cloud_credit_credits_valid_until"))
        batch_op.drop_index(batch_op.f("ix_cloud_credit_credits_project_id_available"))

    op.drop_table("cloud_credit_credits")
    with op.batch_alter_table("cloud_credit_voucher_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cloud_credit_voucher_attempts_project_id_created_at"))

    op.drop_table("cloud_credit_voucher_attempts")
    with op.batch_alter_table("cloud_credit_settlements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cloud_credit_settlements_project_id"))

    op.drop_table("cloud_credit_settlements")
    op.drop_table("cloud_credit_projects")
    with op.batch_alter_table("cloud_credit_catalog_redemptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cloud_credit_catalog_redemptions_code"))

    op.drop_table("cloud_credit_catalog_redemptions")
