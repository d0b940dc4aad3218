"""The ledger: schema, migrations, engines and transactions, and every SQL statement.

Entry points that manage the schema (``ovh-credit db upgrade``,
``cloudkitty-dbsync``) use the names below; everything else reaches the
ledger through the service.
"""

from ovh_credit_plugin.ledger.migration import alembic_config, current, head, upgrade

__all__ = ["alembic_config", "current", "head", "upgrade"]
