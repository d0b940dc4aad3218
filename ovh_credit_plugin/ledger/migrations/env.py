"""Alembic environment of the ledger (driven programmatically)."""

from __future__ import annotations

import contextlib

from alembic import context

from ovh_credit_plugin.ledger.migration import VERSION_TABLE
from ovh_credit_plugin.ledger.schema import metadata

config = context.config
engine = config.attributes.get("engine")
if engine is None:  # pragma: no cover - only the ledger's own API drives this
    raise RuntimeError("run migrations through ovh_credit_plugin.ledger.migration")

with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    # MariaDB and MySQL commit each ALTER and CREATE TABLE by itself: one
    # transaction around the whole run would hold only the revision's stamps,
    # and a migration that fails or refuses after another's DDL rolled back the
    # stamp of what that DDL did (the revision then said 0008 of a ledger at
    # 0007). alembic's own way there: each migration in its own transaction,
    # its stamp committed with it. PostgreSQL and SQLite undo DDL: one
    # transaction, all or nothing.
    one_transaction = not connection.dialect.name.startswith(("mysql", "mariadb"))
    raw = connection.connection.dbapi_connection
    if sqlite:
        # Batch mode rebuilds a SQLite table: a copy, the old one dropped, the
        # copy renamed. Dropping a table other tables reference fails while
        # foreign keys are enforced, and the pragma is a no-op inside a
        # transaction: off before it begins (on the driver's connection, in
        # autocommit), the whole ledger checked before the commit, back on after.
        raw.execute("PRAGMA foreign_keys=OFF")
    try:
        with connection.begin() if one_transaction else contextlib.nullcontext():
            context.configure(
                connection=connection,
                target_metadata=metadata,
                version_table=VERSION_TABLE,
                render_as_batch=sqlite,
            )
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")
    finally:
        if sqlite:
            raw.execute("PRAGMA foreign_keys=ON")
