"""Two ``ovh-credit db upgrade`` at once, on every backend: the second waits, then has
nothing to do.

Deploy tooling (an Ansible play on every node) runs the upgrade everywhere at the
same moment. Before the upgrade lock, both read "no tables yet" and both
migrated: on PostgreSQL the second blocked on the first's uncommitted catalog
rows, then failed (``duplicate key value violates unique constraint
"pg_type_typname_nsp_index"``); on MariaDB, whose DDL is not transactional, it
failed half-way (``Table 'cloud_credit_catalog_redemptions' already exists``,
or alembic's "Online migration expected to match one row"). SQLite's migration
transaction (``BEGIN IMMEDIATE``) already serialized them, but both claimed to
have created the file.

Each upgrade runs the real command in a process of its own, with an engine of
its own; both start together (a barrier), and each pauses a moment after
looking for the SQLite file and after reading the stored revision, so that
the two reads overlap every time unless the second waits for the first
upgrade to end.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import queue
import sqlite3
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ovh_credit_plugin.cli.app import main
from ovh_credit_plugin.ledger import migration
from ovh_credit_plugin.ledger.database import create_engine
from tests.support.ledgers import ServerPool, new_database_url
from tests.support.process import join_or_terminate

#: How long each upgrade waits after reading the stored revision: the other
#: one has read it too by then, unless it is waiting for the lock.
PAUSE = 0.5
UPGRADES = 2


def _upgrade(config: str, barrier: Any, results: Any) -> None:
    """One ``ovh-credit db upgrade``, in a process of its own (forkserver)."""
    from alembic.runtime.migration import MigrationContext

    missing = migration.missing_sqlite_file

    def missing_then_pause(engine: sa.Engine) -> bool:
        found = missing(engine)
        time.sleep(PAUSE)
        return found

    migration.missing_sqlite_file = missing_then_pause  # type: ignore[assignment]
    read = MigrationContext.get_current_heads

    def read_then_pause(self: MigrationContext) -> tuple[str, ...]:
        heads = read(self)
        time.sleep(PAUSE)
        return heads

    MigrationContext.get_current_heads = read_then_pause  # type: ignore[method-assign]
    out, err = io.StringIO(), io.StringIO()
    barrier.wait(timeout=60)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["--config-file", config, "db", "upgrade"])
    except BaseException:
        code = -1
        err.write(traceback.format_exc())
    results.put((code, out.getvalue(), err.getvalue()))


def _race(config: Path) -> list[tuple[int, str, str]]:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["ovh_credit_plugin.cli.app", "alembic.command",
                                    "tests.functional.test_migration_concurrent_upgrades"])
    barrier = context.Barrier(UPGRADES)
    results = context.Queue()
    processes = [context.Process(target=_upgrade, args=(str(config), barrier, results))
                 for _ in range(UPGRADES)]
    for process in processes:
        process.start()
    outcomes: list[tuple[int, str, str]] = []
    try:
        for _ in processes:
            outcomes.append(results.get(timeout=120))
    except queue.Empty:
        pass
    finally:
        join_or_terminate(processes)
    return outcomes


def _cli(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--config-file", str(config), "db", "upgrade"])
    out, err = capsys.readouterr()
    return code, out, err


def _config(path: Path, url: str, extra: str = "") -> Path:
    path.write_text(f"[cloud_credit]\nconnection = {url}\n{extra}")
    return path


def _shape(url: str) -> dict[str, Any]:
    """Every table's columns, keys, indexes and checks, and the stored revisions.

    Not a dump: SQLite's batch migrations do not write their tables'
    constraints and indexes in the same order from one run to the next.
    """
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        inspector = sa.inspect(engine)
        shape: dict[str, Any] = {}
        for table in sorted(inspector.get_table_names()):
            shape[table] = (
                sorted((c["name"], str(c["type"]), c["nullable"])
                       for c in inspector.get_columns(table)),
                inspector.get_pk_constraint(table)["constrained_columns"],
                sorted(repr(sorted(fk.items())) for fk in inspector.get_foreign_keys(table)),
                sorted(repr(sorted(ix.items())) for ix in inspector.get_indexes(table)),
                sorted(repr(sorted(uq.items()))
                       for uq in inspector.get_unique_constraints(table)),
                sorted(str(ck.get("name")) for ck in inspector.get_check_constraints(table)),
            )
        with engine.connect() as conn:
            shape["revisions"] = conn.execute(
                sa.text(f"SELECT version_num FROM {migration.VERSION_TABLE}")).scalars().all()
        return shape
    finally:
        engine.dispose()


def _migrated_alone(backend: str, server_pool: ServerPool, tmp_path: Path) -> dict[str, Any]:
    """The shape of a ledger migrated by one upgrade: what a race must leave too."""
    url = new_database_url(backend, server_pool, tmp_path)
    engine = create_engine(url)
    try:
        migration.upgrade(engine)
    finally:
        engine.dispose()
    return _shape(url)


def test_two_upgrades_at_once_on_an_empty_ledger(
    backend: str, server_pool: ServerPool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = new_database_url(backend, server_pool, tmp_path)
    config = _config(tmp_path / "ovh-credit.conf", url)

    outcomes = _race(config)

    assert len(outcomes) == UPGRADES, outcomes
    assert [(code, err) for code, _, err in outcomes] == [(0, "")] * UPGRADES, outcomes
    # What an upgrade of the up-to-date ledger says, and so what the second one said.
    code, up_to_date, err = _cli(config, capsys)
    assert (code, err) == (0, "")
    shown = sa.make_url(url).render_as_string(hide_password=True)
    assert up_to_date == f"ledger database at revision {migration.head()} ({shown})\n"
    first = up_to_date
    if backend == "sqlite":
        path = Path(url.removeprefix("sqlite:///")).absolute()
        first = f"ledger database at revision {migration.head()} ({path}, created)\n"
    assert sorted(out for _, out, _ in outcomes) == sorted([first, up_to_date])
    # Nothing applied twice or half-way: the schema and rows of a lone upgrade.
    assert _shape(url) == _migrated_alone(backend, server_pool, tmp_path)


# -- a lock held too long -----------------------------------------------------------


@contextlib.contextmanager
def _lock_held(backend: str, url: str) -> Iterator[None]:
    """The upgrade lock held by another connection, as a running upgrade holds it."""
    if backend == "sqlite":
        # The migration's own transaction is the lock: SQLite's write lock.
        holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.close()
        return
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            if backend == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_lock(:key)"),
                             {"key": migration.UPGRADE_LOCK_KEY})
            else:
                name = migration.upgrade_lock_name(str(sa.make_url(url).database))
                assert conn.execute(sa.text("SELECT GET_LOCK(:name, 0)"),
                                    {"name": name}).scalar() == 1
            conn.commit()
            yield
    finally:
        engine.dispose()  # the session ends: the lock is released


def an_empty_ledger(backend: str, server_pool: ServerPool, tmp_path: Path) -> str:
    """A new database; on SQLite a file in WAL mode, as a ledger being migrated has it."""
    url = new_database_url(backend, server_pool, tmp_path)
    engine = create_engine(url)
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()
    return url


def test_an_upgrade_held_up_too_long_says_so_in_one_line(
    backend: str, server_pool: ServerPool, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = an_empty_ledger(backend, server_pool, tmp_path)
    monkeypatch.setattr(migration, "LOCK_TIMEOUT", 1)
    config = _config(tmp_path / "ovh-credit.conf", url, "sqlite_busy_timeout = 1\n")
    shown = sa.make_url(url).render_as_string(hide_password=True)

    with _lock_held(backend, url):
        began = time.monotonic()
        code, out, err = _cli(config, capsys)
        waited = time.monotonic() - began

    assert (code, out) == (1, ""), err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    if backend == "sqlite":
        assert err == (f"ovh-credit: the ledger database {shown} stayed locked by another "
                       "process (another 'db upgrade', or a writer) for longer than "
                       "[cloud_credit] sqlite_busy_timeout: run 'ovh-credit db upgrade' "
                       "again once it is done\n")
    else:
        assert err == (f"ovh-credit: another 'db upgrade' of the ledger database {shown} "
                       "has held the upgrade lock for longer than 1 s: run 'ovh-credit db "
                       "upgrade' again once it is done\n")
    assert 1 <= waited < 10
    # Nothing was migrated; the lock released, the next upgrade goes through.
    engine = create_engine(url)
    try:
        assert migration.current(engine) is None
    finally:
        engine.dispose()
    assert _cli(config, capsys)[0] == 0
