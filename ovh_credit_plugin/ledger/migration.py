"""Alembic migrations of the ledger, run by ``ovh-credit db upgrade``.

The version table is the plugin's own (``cloud_credit_alembic_version``), so
the ledger can share a host's database with the host's own migrations.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.i18n import _
from ovh_credit_plugin.ledger.engine import READ_ONLY_OPTION, shown, sqlite_cause

VERSION_TABLE = "cloud_credit_alembic_version"
SCRIPT_LOCATION = str(Path(__file__).with_name("migrations"))


def alembic_config(engine: Engine | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["engine"] = engine
    return config


def head() -> str:
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None
    return revision


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        conn.execution_options(**{READ_ONLY_OPTION: True})
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def known(revision: str) -> bool:
    """Whether this code has a migration of that id (a newer release may have more)."""
    script = ScriptDirectory.from_config(alembic_config())
    return any(found.revision == revision for found in script.walk_revisions())


def _newer_than_this_code(found: str) -> exceptions.DatabaseNotReady:
    return exceptions.DatabaseNotReady(
        f"the ledger schema is at revision {found}, newer than this code knows (its newest "
        f"is {head()}): upgrade ovh-credit-plugin"
    )


def upgrade(engine: Engine, revision: str = "head") -> None:
    found = current(engine)
    if found is not None and not known(found):
        # alembic would only say "Can't locate revision": the ledger was
        # migrated by a newer release, and only upgrading the code helps.
        raise _newer_than_this_code(found)
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)


def missing_sqlite_file(engine: Engine) -> bool:
    """True for a SQLite ledger whose file does not exist (yet)."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return False
    if str(url.query.get("uri", "")).lower() in ("true", "1"):
        return False  # a "file:" URI: SQLite's own options decide
    return not Path(url.database).exists()


def check_current(engine: Engine) -> None:
    """Refuse to work on a ledger whose schema is missing or not at head."""
    # Connecting would create an empty SQLite file: a read-only command on a
    # mistyped path would leave one behind. Only 'db upgrade' creates it.
    missing = missing_sqlite_file(engine)
    if missing and (cause := sqlite_cause(engine.url)) is not None:
        # 'db upgrade' could not create it either: say why first.
        raise exceptions.DatabaseNotReady(_("the ledger database %(url)s: %(cause)s")
                                          % {"url": shown(engine.url), "cause": cause})
    found = None if missing else current(engine)
    if found is None:
        raise exceptions.DatabaseNotReady(
            _("the ledger database %(url)s has no tables yet: run 'ovh-credit db upgrade'")
            % {"url": shown(engine.url)}
        )
    if not known(found):
        raise _newer_than_this_code(found)
    if found != head():
        raise exceptions.DatabaseNotReady(
            _("the ledger schema of %(url)s is at revision %(found)s, this code needs "
              "%(head)s: run 'ovh-credit db upgrade'")
            % {"url": shown(engine.url), "found": found, "head": head()}
        )
