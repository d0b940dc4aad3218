"""The ledger's migrations as ``cloudkitty-dbsync`` drives a rating module's.

``cloudkitty-dbsync upgrade --module cloud_credit`` finds the ``db_api``
class attribute of the ``cloud_credit`` processor, calls its
``get_migration()`` and then ``upgrade(revision)``, ``version()``,
``stamp(revision)`` or ``revision(message, autogenerate)`` on the result.
These run the same alembic scripts, with the same version table
(``cloud_credit_alembic_version``), as ``ovh-credit db upgrade``: either
command can create or upgrade the ledger and the other sees it current.

This module imports nothing from CloudKitty: it only reads CloudKitty's
``[database] connection`` option when the processor runs inside CloudKitty
(which registers that option).
"""

from __future__ import annotations

import sys

from alembic import command
from oslo_config import cfg
from sqlalchemy.engine import Engine

from ovh_credit_plugin import exceptions, ledger
from ovh_credit_plugin.conf import ledger_connection as conf_ledger_connection
from ovh_credit_plugin.conf import register_opts
from ovh_credit_plugin.i18n import _
from ovh_credit_plugin.ledger.database import create_engine


def ledger_connection(conf: cfg.ConfigOpts) -> str:
    """``[cloud_credit] connection``, else CloudKitty's own ``[database] connection``.

    Inside CloudKitty the ledger never falls back to a SQLite file in the
    working directory (the plugin's default elsewhere): a CloudKitty worker's
    working directory is arbitrary, and a ledger there would be silently
    different per node.
    """
    register_opts(conf)
    url = conf_ledger_connection(conf)
    if url:
        return url
    raise exceptions.ConfigError(
        _("no ledger database: set [cloud_credit] connection (or CloudKitty's [database] "
          "connection) in cloudkitty.conf")
    )


class LedgerMigration:
    """What ``cloudkitty-dbsync`` calls on a module's migration object."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self._conf = conf

    def _engine(self) -> Engine:
        url = ledger_connection(self._conf)
        return create_engine(
            url, sqlite_busy_timeout=self._conf.cloud_credit.sqlite_busy_timeout
        )

    def upgrade(self, revision: str | None = None) -> None:
        # cloudkitty-dbsync passes None when --revision is not given.
        engine = self._engine()
        try:
            ledger.upgrade(engine, revision or "head")
        finally:
            engine.dispose()

    def version(self) -> str | None:
        """Print and return the ledger's revision, the way ``alembic current`` shows it."""
        engine = self._engine()
        try:
            found = ledger.current(engine)
        finally:
            engine.dispose()
        if found is None:
            sys.stdout.write(f"no ledger tables yet (head: {ledger.head()})\n")
        else:
            suffix = " (head)" if found == ledger.head() else ""
            sys.stdout.write(f"{found}{suffix}\n")
        return found

    def stamp(self, revision: str | None = None) -> None:
        engine = self._engine()
        try:
            command.stamp(ledger.alembic_config(engine), revision or "head")
        finally:
            engine.dispose()

    def revision(self, message: str | None = None, autogenerate: bool = False) -> None:
        """A new migration script in the plugin's tree (a developer's command)."""
        engine = self._engine()
        try:
            command.revision(
                ledger.alembic_config(engine), message=message, autogenerate=autogenerate
            )
        finally:
            engine.dispose()


class CloudCreditDbApi:
    """The ``db_api`` of the ``cloud_credit`` processor, as ``cloudkitty-dbsync`` reads it."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self._conf = conf

    def get_migration(self) -> LedgerMigration:
        # No I/O here: dbsync loads every module's db_api, whichever it migrates.
        return LedgerMigration(self._conf)
