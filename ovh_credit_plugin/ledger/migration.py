"""Alembic migrations of the ledger, run by ``ovh-credit db upgrade``.

The version table is the plugin's own (``cloud_credit_alembic_version``), so
the ledger can share a host's database with the host's own migrations.

Alembic is imported only where it is used (upgrades, downgrades, a stored
revision that is not this code's head): importing it costs a short command
of the CLI about a fifth of a second, and the schema check every command
makes needs only the stored revision (one plain ``SELECT``) and the head's
id (read from the revision files' ``revision`` and ``down_revision`` lines).

Upgrades are serialized (deploy tooling runs ``db upgrade`` on every node at
once): an upgrade takes the ledger's upgrade lock, then alembic reads the
stored revision in its migration's transaction, so the second of two waits
for the first and finds nothing left to do. PostgreSQL: a session-level
advisory lock; MariaDB/MySQL: ``GET_LOCK``, both on a connection of their
own, held until the migration has committed (a killed upgrade's connection
closes, and its lock goes with it). SQLite: the migration's transaction
starts with ``BEGIN IMMEDIATE`` (:mod:`engine`): its write lock is the
upgrade lock. The schema check every command makes takes no lock, nor does
an upgrade that finds the ledger at head.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ovh_credit_plugin import exceptions, i18n
from ovh_credit_plugin.i18n import _
from ovh_credit_plugin.ledger.engine import READ_ONLY_OPTION, shown, sqlite_cause

if TYPE_CHECKING:
    from alembic.config import Config

VERSION_TABLE = "cloud_credit_alembic_version"
#: How long an upgrade waits for another one (PostgreSQL, MariaDB) before giving up.
#: Generous: the waiting upgrade holds nothing, and has nothing left to do once the
#: other one commits, while giving up early fails the deploy on every node but one;
#: migrations that copy tables take time proportional to the ledger (0005, 0007).
#: Bounded all the same: an upgrade stuck (on a writer's lock, a hung client) ends
#: the others' wait with a message instead of hanging a deploy forever.
#: SQLite waits ``[cloud_credit] sqlite_busy_timeout`` (its write lock).
LOCK_TIMEOUT = 600
#: PostgreSQL's advisory lock key of the upgrade (per database): the first 8 bytes
#: of SHA-256("ovh_credit_plugin.upgrade"), as a signed bigint.
UPGRADE_LOCK_KEY = 893301531141288193
_LOCK_NAME = "ovh_credit_plugin.upgrade"
_MYSQL_LOCK_NAME_MAX = 64  # MySQL refuses longer GET_LOCK names
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


def _newer_than_this_code(engine: Engine, found: str) -> exceptions.DatabaseNotReady:
    return exceptions.DatabaseNotReady(
        _("the ledger schema of %(url)s is at revision %(found)s, newer than this code "
          "knows (its newest is %(head)s): upgrade ovh-credit-plugin")
        % {"url": shown(engine.url), "found": found, "head": head()}
    )


def _ledger_tables(bind: Engine | sa.Connection) -> list[str]:
    """The ledger's tables in the database, its version table left out."""
    return sorted(name for name in sa.inspect(bind).get_table_names()
                  if name.startswith("cloud_credit_") and name != VERSION_TABLE)


def _no_revision(engine: Engine, tables: list[str]) -> exceptions.DatabaseNotReady:
    # Never "no tables yet": 'db upgrade' would then stop at "table ... already exists".
    return exceptions.DatabaseNotReady(
        _("the ledger database %(url)s holds ledger tables (%(tables)s) but no schema "
          "revision in cloud_credit_alembic_version: a first 'db upgrade' stopped half-way "
          "(MariaDB, MySQL), or the revision was lost. If those tables are empty, drop "
          "them and run 'ovh-credit db upgrade'; otherwise restore the ledger from a backup")
        % {"url": shown(engine.url), "tables": ", ".join(tables)}
    )


def upgrade(engine: Engine, revision: str = "head", *,
            lock_timeout: float | None = None) -> str | None:
    """Migrate the ledger to ``revision``; returns the revision it found (None: no tables).

    The revision found is read once the upgrade lock is held (see the module's
    docstring): a second upgrade that waited for a first finds the first's.
    ``lock_timeout``: seconds to wait for another upgrade (default :data:`LOCK_TIMEOUT`).
    """
    found = current(engine)
    if found is not None and found == head() and revision in ("head", found):
        return found  # nothing to do: no lock, no alembic
    with _upgrade_lock(engine, LOCK_TIMEOUT if lock_timeout is None else lock_timeout):
        return _alembic_upgrade(engine, revision)


def _alembic_upgrade(engine: Engine, revision: str) -> str | None:
    """alembic's ``command.upgrade``, and the revision its migration read."""
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory

    config = alembic_config(engine)
    script = ScriptDirectory.from_config(config)
    found: list[str | None] = []

    def steps(heads: tuple[str, ...], context: Any) -> Any:
        # Called once the migration's transaction has read the stored revision
        # (after the upgrade lock, and SQLite's write lock, were granted).
        for stored in heads:
            if not known(stored):
                # alembic would only say "Can't locate revision": the ledger was
                # migrated by a newer release, and only upgrading the code helps.
                raise _newer_than_this_code(engine, stored)
        if not heads and (tables := _ledger_tables(context.connection)):
            raise _no_revision(engine, tables)
        found.append(", ".join(heads) or None)
        # What command.upgrade runs (alembic passes it the heads, typed as a str).
        return script._upgrade_revs(revision, heads)  # type: ignore[arg-type]

    with EnvironmentContext(config, script, fn=steps, as_sql=False, starting_rev=None,
                            destination_rev=revision, tag=None):
        _sqlite_lock_timeout_said(engine, script.run_env)
    return found[0] if found else None


def downgrade(engine: Engine, revision: str, *, lock_timeout: float | None = None) -> None:
    from alembic import command

    with _upgrade_lock(engine, LOCK_TIMEOUT if lock_timeout is None else lock_timeout):
        _sqlite_lock_timeout_said(
            engine, lambda: command.downgrade(alembic_config(engine), revision))


def upgrade_lock_name(database: str) -> str:
    """MariaDB/MySQL's ``GET_LOCK`` name of the upgrade of ``database``.

    Per database, as PostgreSQL's advisory locks are: ``GET_LOCK`` names are
    the server's, and two ledgers on one server do not wait for each other.
    """
    name = f"{_LOCK_NAME}.{database}"
    if len(name) <= _MYSQL_LOCK_NAME_MAX:
        return name
    digest = hashlib.sha256(database.encode()).hexdigest()[:16]
    return f"{name[:_MYSQL_LOCK_NAME_MAX - len(digest) - 1]}.{digest}"


def _lock_timed_out(engine: Engine, timeout: float) -> exceptions.DatabaseNotReady:
    return exceptions.DatabaseNotReady(
        _("another 'db upgrade' of the ledger database %(url)s has held the upgrade lock "
          "for longer than %(seconds)s s: run 'ovh-credit db upgrade' again once it is done")
        % {"url": shown(engine.url), "seconds": i18n.count(f"{timeout:g}")}
    )


@contextlib.contextmanager
def _upgrade_lock(engine: Engine, timeout: float) -> Iterator[None]:
    """Hold the ledger's upgrade lock (PostgreSQL, MariaDB/MySQL) while migrating.

    On a connection of its own: alembic's runs the migration. SQLite: nothing
    here, the migration's ``BEGIN IMMEDIATE`` is the lock.
    """
    name = engine.dialect.name
    if name not in ("postgresql", "mysql", "mariadb"):
        yield
        return
    with engine.connect() as conn:
        if name == "postgresql":
            with conn.begin():
                # A role's statement_timeout would end the wait with another error.
                conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = {max(int(timeout * 1000), 1)}")
                try:
                    conn.execute(sa.text("SELECT pg_advisory_lock(:key)"),
                                 {"key": UPGRADE_LOCK_KEY})
                except sa.exc.OperationalError as error:
                    if getattr(error.orig, "sqlstate", None) == "55P03":  # lock_not_available
                        raise _lock_timed_out(engine, timeout) from None
                    raise
            release = sa.text("SELECT pg_advisory_unlock(:key)").bindparams(key=UPGRADE_LOCK_KEY)
        else:
            with conn.begin():
                database = conn.execute(sa.text("SELECT DATABASE()")).scalar()
                lock = upgrade_lock_name(str(database))
                # The connection idles while the migration runs: a short
                # wait_timeout would close it, and free the lock, half-way.
                conn.exec_driver_sql("SET SESSION wait_timeout = 86400")
                got = conn.execute(sa.text("SELECT GET_LOCK(:name, :timeout)"),
                                   {"name": lock, "timeout": timeout}).scalar()
            if got != 1:  # 0: timed out (NULL: an error, such as the wait killed)
                raise _lock_timed_out(engine, timeout)
            release = sa.text("SELECT RELEASE_LOCK(:name)").bindparams(name=lock)
        try:
            yield
        finally:
            try:
                with conn.begin():
                    conn.execute(release)
            except sa.exc.SQLAlchemyError:
                # Closing the session releases its locks: never leave one pooled.
                conn.invalidate()


def _sqlite_lock_timeout_said(engine: Engine, run: Any) -> None:
    """``run()``, SQLite's "database is locked" (its busy timeout spent) said plainly."""
    try:
        run()
    except sa.exc.OperationalError as error:
        if engine.dialect.name != "sqlite" or "database is locked" not in str(error.orig):
            raise
        raise exceptions.DatabaseNotReady(
            _("the ledger database %(url)s stayed locked by another process (another "
              "'db upgrade', or a writer) for longer than [cloud_credit] "
              "sqlite_busy_timeout: run 'ovh-credit db upgrade' again once it is done")
            % {"url": shown(engine.url)}
        ) from None


def check_unchanged(engine: Engine) -> None:
    """For a process that started on a ledger at head: refuse once it is not any more.

    A later release's ``db upgrade`` (or a restore of an older ledger) while the
    process runs: whatever the revision, a restart is what helps. Not
    :func:`check_current`'s advice: the package may have been upgraded in place,
    and the migration files on disk are then the next release's, which know the
    new revision, while this process still runs the old code.
    """
    found = None if missing_sqlite_file(engine) else current(engine)
    if found == head():
        return
    if found is None:
        check_current(engine)  # the file or the tables gone: said as at start
    raise exceptions.DatabaseNotReady(
        _("the ledger schema of %(url)s changed while this process ran: it is at revision "
          "%(found)s, this process runs %(head)s; restart it (with a release that knows "
          "%(found)s)")
        % {"url": shown(engine.url), "found": found, "head": head()}
    )


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
    if found is None and not missing and (tables := _ledger_tables(engine)):
        raise _no_revision(engine, tables)
    if found is None:
        raise exceptions.DatabaseNotReady(
            _("the ledger database %(url)s has no tables yet: run 'ovh-credit db upgrade'")
            % {"url": shown(engine.url)}
        )
    if found == head():
        return
    if not known(found):
        raise _newer_than_this_code(engine, found)
    raise exceptions.DatabaseNotReady(
        _("the ledger schema of %(url)s is at revision %(found)s, this code needs "
          "%(head)s: run 'ovh-credit db upgrade'")
        % {"url": shown(engine.url), "found": found, "head": head()}
    )
