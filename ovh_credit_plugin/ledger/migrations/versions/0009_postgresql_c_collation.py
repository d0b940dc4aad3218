"""Text compared and ordered byte by byte on PostgreSQL too: the "C" collation.

Revision ID: 0009_postgresql_c_collation
Revises: 0008_expiry_notice_sending
Create Date: 2026-12-05

The columns had the database's default collation. PostgreSQL compares text for
equality byte by byte whatever its collation, but orders it by the collation: a
database created in a linguistic locale (Debian's default cluster takes the
system's, en_US.UTF-8; ICU locales) sorts "acme" next to "ACME" and weighs
punctuation apart. CloudKitty's overlap check asks for the greatest settlement
key of a scope below a period's end: another scope's key ("ACME"'s among
"acme"'s) came back instead of the scope's last period, and a reprocessing
window across a settled period was settled again, its usage paid twice by
credit. Settlement keys were also locked in an order other than the one the
code sorted them in.

Every text column of the ledger's tables gets the "C" collation (byte order,
which is code-point order in UTF-8: Python's). The indexes on them are rebuilt
in that order, so the key's range lookup still uses the primary key's index
(a ``COLLATE "C"`` in the query instead could not: an index serves comparisons
in its own collation only). The table is not rewritten (same type); each index
on a text column is rebuilt, under an ACCESS EXCLUSIVE lock held until the
upgrade commits. Columns already in "C" are left alone. MySQL and MariaDB
(0007_binary_collation) and SQLite compare byte by byte already: nothing is
done there.

No unique key can collide and no row changes: PostgreSQL's deterministic
collations, the only ones a database can default to, take two values as equal
only when they are equal byte for byte. Downgrade gives the columns back the
database's default collation, and for the same reason never has to refuse.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

revision = "0009_postgresql_c_collation"
down_revision = "0008_expiry_notice_sending"
branch_labels = None
depends_on = None

# The ledger's tables at 0008.
_TABLES = (
    "cloud_credit_projects",
    "cloud_credit_voucher_unblocks",
    "cloud_credit_orders",
    "cloud_credit_order_keys",
    "cloud_credit_credits",
    "cloud_credit_ledger_entries",
    "cloud_credit_settlements",
    "cloud_credit_voucher_activations",
    "cloud_credit_voucher_attempts",
    "cloud_credit_catalog_redemptions",
    "cloud_credit_catalog_voucher_counts",
    "cloud_credit_expiry_notices",
)
_C = '"C"'
_DEFAULT = 'pg_catalog."default"'


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        _convert(bind, _C)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        _convert(bind, _DEFAULT)


def _convert(bind: Connection, collation: str) -> None:
    """Every text column of the ledger's tables in ``collation`` (one ALTER TABLE per
    table that has a column in another one)."""
    wanted = "C" if collation == _C else None  # information_schema's name for it
    columns: dict[str, list[str]] = {}
    # The tables the ledger's unqualified names reach (search_path), which need not be
    # in current_schema(): with the default "$user", public, a schema named after
    # the role, created later, is current_schema() and holds none of them.
    for table, column, kind, found in bind.execute(sa.text(
        "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), "
        "CASE WHEN a.attcollation = 100 THEN NULL ELSE l.collname END "  # 100: "default"
        "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "JOIN pg_collation l ON l.oid = a.attcollation "
        "WHERE pg_table_is_visible(c.oid) AND c.relkind = 'r' "
        "AND c.relname IN :tables AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY c.relname, a.attnum"
    ).bindparams(sa.bindparam("tables", expanding=True)), {"tables": list(_TABLES)}):
        if found != wanted:
            columns.setdefault(table, []).append(
                f'ALTER COLUMN "{column}" TYPE {kind} COLLATE {collation}')
    missing = [table for table in _TABLES
               if bind.execute(sa.text("SELECT to_regclass(:t)"), {"t": table}).scalar() is None]
    if missing:
        # Never a revision stamped over tables it did not convert.
        raise RuntimeError(f"ledger tables not found on the search_path: {', '.join(missing)}")
    for table in _TABLES:
        if table in columns:
            op.execute(f"ALTER TABLE {table} " + ", ".join(columns[table]))
