"""Alembic environment of the ledger (driven programmatically)."""

from __future__ import annotations

from alembic import context

from ovh_credit_plugin.ledger.migration import VERSION_TABLE
from ovh_credit_plugin.ledger.schema import metadata

config = context.config
engine = config.attributes.get("engine")
if engine is None:  # pragma: no cover - only the ledger's own API drives this
    raise RuntimeError("run migrations through ovh_credit_plugin.ledger.migration")

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    context.run_migrations()
