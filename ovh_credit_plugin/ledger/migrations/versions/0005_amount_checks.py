"""CHECK constraints on every amount: never negative; a credit's figures and a
settlement's add up to their total.

Revision ID: 0005_amount_checks
Revises: 0004_voucher_attempt_keys
Create Date: 2026-12-10

The code kept these before (``CreditRow.check``, the Money type refuses a
negative amount) and the audit checks them; from here the database refuses a
row that breaks them too, whoever writes it. Each check is tested against
the rows already there: a ledger that breaks one stops the upgrade at that
table, naming its constraint (run ``ovh-credit audit`` first: it names the
rows). SQLite rebuilds each table (batch mode), PostgreSQL scans it,
MariaDB copies it: time proportional to the ledger, with writers stopped.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ovh_credit_plugin.ledger.types import AmountsAddUp, non_negative

revision = "0005_amount_checks"
down_revision = "0004_voucher_attempt_keys"
branch_labels = None
depends_on = None

# (table, constraint name as the naming convention makes it, condition)
_CHECKS = (
    ("cloud_credit_credits", "ck_cloud_credit_credits_balances",
     AmountsAddUp(("used", "expired", "voided", "available"), "total")),
    ("cloud_credit_ledger_entries", "ck_cloud_credit_ledger_entries_amount",
     non_negative("amount")),
    ("cloud_credit_orders", "ck_cloud_credit_orders_amount", non_negative("amount")),
    ("cloud_credit_settlements", "ck_cloud_credit_settlements_amounts",
     AmountsAddUp(("credit_applied", "amount_due"), "total")),
)


def upgrade() -> None:
    # MariaDB and MySQL commit each ALTER TABLE: an upgrade stopped at a later
    # table (a row that breaks its check) left the checks of the tables before
    # it in place, and running it again once the row is repaired must not try
    # to add them twice ("Duplicate CHECK constraint name").
    inspector = sa.inspect(op.get_bind())
    for table, name, condition in _CHECKS:
        if op.f(name) in {c["name"] for c in inspector.get_check_constraints(table)}:
            continue
        with op.batch_alter_table(table) as batch_op:
            batch_op.create_check_constraint(op.f(name), condition)


def downgrade() -> None:
    for table, name, _ in reversed(_CHECKS):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_constraint(op.f(name), type_="check")
