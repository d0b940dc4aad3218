"""The ledger's first connection to a SQLite file waits for a writer, as every statement does.

A database in rollback-journal mode (a file another program made, before the
ledger's first connection turned it to WAL) cannot switch to WAL while another
connection writes, and SQLite then says "database is locked" at once, without
the busy timeout. The engine waits for it like for any lock: the busy timeout,
then the same error.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from ovh_credit_plugin.ledger.engine import create_engine


def _writer(path: Path) -> sqlite3.Connection:
    """Another program's connection, in rollback-journal mode, holding the write lock."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    assert holder.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("CREATE TABLE theirs (x INTEGER)")
    return holder


def test_a_writer_that_finishes_within_the_busy_timeout_is_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    holder = _writer(path)
    release = threading.Timer(0.6, holder.execute, args=("COMMIT",))
    started = time.monotonic()
    release.start()
    engine = create_engine(f"sqlite:///{path}", sqlite_busy_timeout=10)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("SELECT count(*) FROM theirs").scalar() == 0
        assert time.monotonic() - started >= 0.55  # it waited for the writer's commit
    finally:
        release.join()
        engine.dispose()
        holder.close()


def test_a_writer_that_outlasts_the_busy_timeout_is_the_usual_locked_error(
        tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    holder = _writer(path)
    engine = create_engine(f"sqlite:///{path}", sqlite_busy_timeout=1)
    try:
        started = time.monotonic()
        with pytest.raises(sa.exc.OperationalError, match="database is locked"):
            engine.connect().close()
        assert 0.9 <= time.monotonic() - started < 5
    finally:
        engine.dispose()
        holder.close()
