"""How Database retries a transaction (writes and reads): how often, how long, what it raises.

The policy of docs/operations.md ("Retries and backoff"): up to
``max_attempts`` attempts of the whole transaction, full-jitter exponential
backoff from 10 ms doubling to at most 2 s, a warning per retry, and the
last error re-raised as it is. A real SQLite ledger; the waits are recorded,
not slept.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Connection

from ovh_credit_plugin.ledger import database
from ovh_credit_plugin.ledger.database import Database, create_engine


def _busy() -> exc.OperationalError:
    return exc.OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError(
        "database is locked"))


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    engine = create_engine(f"sqlite:///{tmp_path / 'retry.sqlite'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (n INTEGER)")
    db = Database(engine, max_attempts=10)
    # A bare table: the policy is under test, not the schema.
    db._schema_checked_until = float("inf")
    waits: list[float] = []
    # The highest wait each retry may draw: the bound the jitter is drawn under.
    monkeypatch.setattr(database.random, "uniform", lambda low, high: high)
    monkeypatch.setattr(database.time, "sleep", waits.append)
    yield db, waits
    engine.dispose()


def _failing(times: int, error: BaseException) -> Any:
    calls: list[int] = []

    def work(conn: Connection) -> str:
        calls.append(1)
        conn.exec_driver_sql("INSERT INTO t (n) VALUES (1)")
        if len(calls) <= times:
            raise error
        return "done"

    return work, calls


def _rows(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM t")).scalar_one())


def test_a_busy_ledger_is_retried_whole_with_growing_waits(
        ledger: Any, caplog: pytest.LogCaptureFixture) -> None:
    db, waits = ledger
    work, calls = _failing(3, _busy())
    with caplog.at_level(logging.WARNING, logger=database.LOG.name):
        assert db.write(work) == "done"
    assert len(calls) == 4
    assert waits == [0.01, 0.02, 0.04]
    # Each failed attempt was rolled back: one row, from the attempt that committed.
    assert _rows(db) == 1
    assert [r.getMessage() for r in caplog.records] == [
        f"ledger transaction attempt {n} of 10 failed (OperationalError: database is locked); "
        "retrying"
        for n in (1, 2, 3)]


def test_the_last_error_is_raised_as_it_is_once_the_attempts_run_out(ledger: Any) -> None:
    db, waits = ledger
    error = _busy()
    work, calls = _failing(100, error)
    with pytest.raises(exc.OperationalError) as raised:
        db.write(work)
    assert raised.value is error
    assert len(calls) == 10
    # Doubling from 10 ms, never above 2 s.
    assert waits == [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.0]
    assert _rows(db) == 0


def test_an_error_a_retry_cannot_cure_is_raised_at_once(ledger: Any) -> None:
    db, waits = ledger
    error = ValueError("a refusal of the work itself")
    work, calls = _failing(1, error)
    with pytest.raises(ValueError) as raised:
        db.write(work)
    assert (raised.value, len(calls), waits, _rows(db)) == (error, 1, [], 0)


def test_a_read_is_retried_by_the_same_policy(ledger: Any) -> None:
    db, waits = ledger
    attempts: list[int] = []

    def work(conn: Connection) -> int:
        attempts.append(1)
        if len(attempts) <= 2:
            raise _busy()
        return int(conn.execute(sa.text("SELECT count(*) FROM t")).scalar_one())

    assert db.read(work) == 0
    assert (len(attempts), waits) == (3, [0.01, 0.02])
    refusal = ValueError("not the database's doing")

    def refused(conn: Connection) -> None:
        raise refusal

    with pytest.raises(ValueError) as raised:
        db.read(refused)
    assert raised.value is refusal and waits == [0.01, 0.02]
