"""Text compared byte by byte on MySQL and MariaDB, as on PostgreSQL and SQLite.

Revision ID: 0007_binary_collation
Revises: 0006_expiry_notices
Create Date: 2026-12-05

The tables had the database's default collation, which on MySQL and MariaDB
ignores case (and accents): project "acme" read project "ACME"'s credits and
its settlement failed, invoice "inv-a" was taken for "INV-a" and never
recorded. Every text column of the ledger's tables, and each table's default
(for columns added later), becomes utf8mb4 in the server's binary NO PAD
collation (``schema.mysql_binary_collation``). PostgreSQL and SQLite already
compare text byte by byte: nothing is done there.

No unique key can start to collide: values equal byte for byte were equal
before. A foreign key can lose its row: the code took "ACME"'s project row
for "acme" and never wrote one for it, so "acme"'s orders and credits point
at "ACME"'s. Each such project gets its own row first, in the currency it
was billed in (the other's), dated at its first order, credit or activation.

MariaDB refuses to change the collation of a column in a foreign key, even
with ``foreign_key_checks`` off (since MDEV-31086; 10.11.19 does): the
four foreign keys between text columns are dropped, and each is added back
in the ALTER that converts its table, which copies the table once and
checks the key on every row. Plain ALTER TABLE statements (Galera replicates
them in total order, blocking the cluster while they run), no LOCK TABLES,
no session variable. MySQL and MariaDB commit each ALTER by itself: an
upgrade that stops half-way leaves the revision at 0006, and running it
again converts every table again, from the start.

Downgrade converts back to the database's default collation, after checking
that no unique key would then hold two equal values ("ACME" and "acme"): it
refuses, naming them, before changing anything.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

from ovh_credit_plugin.ledger.schema import mysql_binary_collation

revision = "0007_binary_collation"
down_revision = "0006_expiry_notices"
branch_labels = None
depends_on = None

# The ledger's tables at 0006, each after the tables its text foreign keys point to.
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
# Foreign keys between text columns: (table, name, column, referred table, its column).
_TEXT_KEYS = (
    ("cloud_credit_orders", "fk_cloud_credit_orders_project_id_cloud_credit_projects",
     "project_id", "cloud_credit_projects", "id"),
    ("cloud_credit_order_keys", "fk_cloud_credit_order_keys_order_id_cloud_credit_orders",
     "order_id", "cloud_credit_orders", "id"),
    ("cloud_credit_credits", "fk_cloud_credit_credits_project_id_cloud_credit_projects",
     "project_id", "cloud_credit_projects", "id"),
    ("cloud_credit_voucher_attempts", "fk_cloud_credit_voucher_attempts_unblock_id",
     "unblock_id", "cloud_credit_voucher_unblocks", "id"),
)
# What holds a project's currency (ledger/projects.py): each such project has its row.
_HOLDERS = ("cloud_credit_credits", "cloud_credit_orders", "cloud_credit_voucher_activations")
_PROJECTS = sa.table("cloud_credit_projects", sa.column("id"), sa.column("currency"),
                     sa.column("created_at"))


def _mysql(bind: Connection) -> bool:
    return bind.dialect.name in ("mysql", "mariadb")


def upgrade() -> None:
    bind = op.get_bind()
    if not _mysql(bind):
        return
    rows = _projects_without_their_row(bind)  # read before anything changes
    _convert(bind, "utf8mb4", mysql_binary_collation(bind.dialect), rows)


def downgrade() -> None:
    bind = op.get_bind()
    if not _mysql(bind):
        return
    charset, collation = bind.execute(
        sa.text("SELECT @@character_set_database, @@collation_database")).one()
    _refuse_collisions(bind, charset, collation)
    _convert(bind, charset, collation, [])


def _convert(bind: Connection, charset: str, collation: str,
             projects: list[dict[str, object]]) -> None:
    """Every text column of the ledger in ``charset`` and ``collation``, and each table's
    default; ``projects`` inserted once the projects' table is converted."""
    found = {(table, key["name"]) for table in {k[0] for k in _TEXT_KEYS}
             for key in sa.inspect(bind).get_foreign_keys(table)}
    for table, name, *_ in _TEXT_KEYS:
        if (table, name) in found:  # an upgrade that stopped half-way dropped it already
            op.execute(f"ALTER TABLE {table} DROP FOREIGN KEY {name}")
    columns: dict[str, list[str]] = {}
    for table, column, kind, nullable in bind.execute(sa.text(
        "SELECT table_name, column_name, column_type, is_nullable "
        "FROM information_schema.columns WHERE table_schema = DATABASE() "
        "AND table_name IN :tables AND character_set_name IS NOT NULL "
        "ORDER BY table_name, ordinal_position"
    ).bindparams(sa.bindparam("tables", expanding=True)), {"tables": list(_TABLES)}):
        # No text column of the ledger has a default or a comment to restate.
        columns.setdefault(table, []).append(
            f"MODIFY `{column}` {kind} CHARACTER SET {charset} COLLATE {collation} "
            + ("NULL" if nullable == "YES" else "NOT NULL"))
    for table in _TABLES:
        keys = [f"ADD CONSTRAINT {name} FOREIGN KEY ({column}) REFERENCES {referred} ({to})"
                for child, name, column, referred, to in _TEXT_KEYS if child == table]
        op.execute(f"ALTER TABLE {table} "
                   + ", ".join([f"DEFAULT CHARACTER SET {charset} COLLATE {collation}",
                                *columns.get(table, []), *keys]))
        if table == "cloud_credit_projects" and projects:
            bind.execute(_PROJECTS.insert(), projects)


def _projects_without_their_row(bind: Connection) -> list[dict[str, object]]:
    """The rows to add to the projects' table: one per project that holds something (a
    credit, an order, an activation) but has no row of its own, byte for byte.

    Its currency is that of the row the case-insensitive collation gave it (the
    one the code read for it), its time that of the first thing it held.
    """
    have = {bytes(raw) for (raw,) in bind.execute(
        sa.text("SELECT CAST(id AS BINARY) FROM cloud_credit_projects"))}
    first: dict[bytes, dt.datetime] = {}
    for table in _HOLDERS:
        for raw, at in bind.execute(sa.text(
                f"SELECT CAST(project_id AS BINARY), MIN(created_at) FROM {table} "  # noqa: S608 - the ledger's names
                "GROUP BY CAST(project_id AS BINARY)")):
            if bytes(raw) not in have and (bytes(raw) not in first or at < first[bytes(raw)]):
                first[bytes(raw)] = at
    rows: list[dict[str, object]] = []
    for raw, at in sorted(first.items()):
        project_id = raw.decode("utf-8")
        # Ids are ASCII (contracts.ID_RE): UPPER finds the row the collation gave it,
        # also on a re-run where the projects' table is converted already.
        currency = bind.execute(sa.text(
            "SELECT currency FROM cloud_credit_projects WHERE UPPER(id) = UPPER(:id) "
            "ORDER BY id LIMIT 1"), {"id": project_id}).scalar()
        if currency is not None:  # an activation of a project that has no row at all: none
            rows.append({"id": project_id, "currency": currency, "created_at": at})
    return rows


def _refuse_collisions(bind: Connection, charset: str, collation: str) -> None:
    """Refuse to downgrade when a unique key would hold two equal values in ``collation``."""
    keys: dict[tuple[str, str], list[tuple[str, bool]]] = {}
    for table, index, column, text in bind.execute(sa.text(
        "SELECT s.table_name, s.index_name, s.column_name, c.character_set_name IS NOT NULL "
        "FROM information_schema.statistics s JOIN information_schema.columns c "
        "ON c.table_schema = s.table_schema AND c.table_name = s.table_name "
        "AND c.column_name = s.column_name "
        "WHERE s.table_schema = DATABASE() AND s.non_unique = 0 AND s.table_name IN :tables "
        "ORDER BY s.table_name, s.index_name, s.seq_in_index"
    ).bindparams(sa.bindparam("tables", expanding=True)), {"tables": list(_TABLES)}):
        keys.setdefault((table, index), []).append((column, bool(text)))
    clashes = []
    for (table, index), columns in keys.items():
        if not any(text for _, text in columns):
            continue
        values = ", ".join(f"CONVERT(`{c}` USING {charset}) COLLATE {collation}" if text
                           else f"`{c}`" for c, text in columns)
        example = bind.execute(sa.text(
            f"SELECT MIN(CONCAT_WS('/', {', '.join(f'`{c}`' for c, _ in columns)})) "  # noqa: S608 - the ledger's names
            f"FROM {table} "
            f"GROUP BY {values} HAVING COUNT(*) > 1 LIMIT 1")).scalar()
        if example is not None:
            clashes.append(f"{table} ({index}: {example!r} and another)")
    if clashes:
        raise RuntimeError(
            f"cannot go back to the database's collation {collation}: it takes values "
            f"that differ (by case, accents or trailing spaces) for one, and these "
            f"unique keys would hold both: {', '.join(clashes)}")
