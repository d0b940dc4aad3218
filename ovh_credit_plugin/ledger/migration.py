"""Alembic migrations of the ledger, run by ``ovh-credit db upgrade``.

The version table is the plugin's own (``cloud_credit_alembic_version``), so
the ledger can share a host's database with the host's own migrations.

Alembic is imported only where it is used (upgrades, downgrades, a stored
revision that is not this code's head): importing it costs a short command
of the CLI about a fifth of a second, and the schema check every command
makes needs only the stored revision (one plain ``SELECT``) and the head's
id (read from the revision files' ``revision`` and ``down_revision`` lines).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.i18n import _
from ovh_credit_plugin.ledger.engine import READ_ONLY_OPTION, shown, sqlite_cause

if TYPE_CHECKING:
    from alembic.config import Config

VERSION_TABLE = "cloud_credit_alembic_version"
SCRIPT_LOCATION = str(Path(__file__).with_name("migrations"))
VERSIONS = Path(SCRIPT_LOCATION) / "versions"

_VERSION_TABLE = sa.table(VERSION_TABLE, sa.column("version_num", sa.String(32)))
# Module-level assignments of a revision file, as alembic's template writes them.
_REVISION_LINE = re.compile(r"^revision(?:\s*:[^=]*)?\s*=\s*(.+)$", re.MULTILINE)
_DOWN_LINE = re.compile(r"^down_revision(?:\s*:[^=]*)?\s*=\s*(.+)$", re.MULTILINE)
_QUOTED = re.compile(r"[\"']([^\"']+)[\"']")


def alembic_config(engine: Engine | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["engine"] = engine
    return config


@functools.cache
def head() -> str:
    """The newest revision this code has (what ``db upgrade`` migrates to)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in VERSIONS.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        found = _REVISION_LINE.search(text)
        if found is None:
            continue
        revisions.update(_QUOTED.findall(found.group(1)))
        down = _DOWN_LINE.search(text)
        if down is not None:
            parents.update(_QUOTED.findall(down.group(1)))
    heads = revisions - parents
    if len(heads) == 1:
        return heads.pop()
    # Not one plain chain (a merge, a file written by hand): alembic decides.
    return _alembic_head()


def _alembic_head() -> str:
    from alembic.script import ScriptDirectory

    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None
    return revision


def current(engine: Engine) -> str | None:
    """The revision stored in the ledger, None before the first ``db upgrade``.

    What alembic's ``MigrationContext.get_current_revision`` returns, read
    with one ``SELECT`` instead (a test holds both to the same answers).
    """
    with engine.connect() as conn:
        conn.execution_options(**{READ_ONLY_OPTION: True})
        with conn.begin():
            if not sa.inspect(conn).has_table(VERSION_TABLE):
                return None
            rows = conn.execute(sa.select(_VERSION_TABLE.c.version_num)).scalars().all()
    if len(rows) > 1:
        # Branches in the ledger: alembic's own answer (and its error) stand.
        return _alembic_current(engine)
    return rows[0] if rows else None


def _alembic_current(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        conn.execution_options(**{READ_ONLY_OPTION: True})
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def known(revision: str) -> bool:
    """Whether this code has a migration of that id (a newer release may have more)."""
    if revision == head():
        return True
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    return any(found.revision == revision for found in script.walk_revisions())


def _newer_than_this_code(found: str) -> exceptions.DatabaseNotReady:
    return exceptions.DatabaseNotReady(
        _("the ledger schema is at revision %(found)s, newer than this code knows (its "
          "newest is %(head)s): upgrade ovh-credit-plugin")
        % {"found": found, "head": head()}
    )


def upgrade(engine: Engine, revision: str = "head") -> None:
    found = current(engine)
    if found is not None and not known(found):
        # alembic would only say "Can't locate revision": the ledger was
        # migrated by a newer release, and only upgrading the code helps.
        raise _newer_than_this_code(found)
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

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
    if found == head():
        return
    if not known(found):
        raise _newer_than_this_code(found)
    raise exceptions.DatabaseNotReady(
        _("the ledger schema of %(url)s is at revision %(found)s, this code needs "
          "%(head)s: run 'ovh-credit db upgrade'")
        % {"url": shown(engine.url), "found": found, "head": head()}
    )
