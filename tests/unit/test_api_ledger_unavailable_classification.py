"""Which database errors the API answers 503 ``ledger_unavailable``, and which stay 500.

Real errors from real SQLite engines (no server needed); the servers' own are
in tests/functional/test_api_ledger_unavailable.py.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import exc

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.api import errors


def raised(engine: sa.Engine, *statements: str) -> BaseException:
    with pytest.raises(exc.SQLAlchemyError) as caught, engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
    return caught.value


def test_an_exhausted_connection_pool_is_unavailable(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path}/a.sqlite", poolclass=sa.pool.QueuePool,
                              pool_size=1, max_overflow=0, pool_timeout=0.01)
    try:
        with engine.connect(), pytest.raises(exc.TimeoutError) as caught:
            engine.connect()
        assert errors.ledger_unavailable(caught.value)
        assert errors.from_exception(caught.value, throttle_window=60).status == 503
    finally:
        engine.dispose()


def test_a_database_file_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    # Raised while connecting: no statement.
    engine = sa.create_engine(f"sqlite:///{tmp_path}/missing/a.sqlite")
    error = raised(engine, "SELECT 1")
    assert isinstance(error, exc.OperationalError) and error.statement is None
    assert errors.ledger_unavailable(error)


def test_a_locked_database_is_unavailable_once_the_retries_ran_out(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    engine = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
    try:
        holder.execute("CREATE TABLE t (x INTEGER)")
        holder.execute("BEGIN IMMEDIATE")
        error = raised(engine, "INSERT INTO t VALUES (1)")
        assert "database is locked" in str(error)
        api_error = errors.from_exception(error, throttle_window=60)
        assert (api_error.status, api_error.code) == (503, "ledger_unavailable")
        assert api_error.headers == {"Retry-After": str(errors.LEDGER_RETRY_AFTER)}
    finally:
        holder.close()
        engine.dispose()


def test_a_statement_that_does_not_fit_the_schema_is_a_bug(tmp_path: Path) -> None:
    # SQLite raises OperationalError for it, naming the statement.
    engine = sa.create_engine(f"sqlite:///{tmp_path}/a.sqlite")
    try:
        error = raised(engine, "SELECT nothing FROM nowhere")
        assert isinstance(error, exc.OperationalError) and error.statement
        assert not errors.ledger_unavailable(error)
        assert errors.from_exception(error, throttle_window=60).status == 500
    finally:
        engine.dispose()


def test_a_unique_violation_that_outlived_the_retries_is_a_bug(tmp_path: Path) -> None:
    # The ledger retries these (two writers racing); one left after the retries is a bug.
    engine = sa.create_engine(f"sqlite:///{tmp_path}/a.sqlite")
    try:
        error = raised(engine, "CREATE TABLE t (x INTEGER PRIMARY KEY)",
                       "INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (1)")
        assert isinstance(error, exc.IntegrityError)
        assert not errors.ledger_unavailable(error)
        assert errors.from_exception(error, throttle_window=60).status == 500
    finally:
        engine.dispose()


@pytest.mark.parametrize("error", [ValueError("bug"), RuntimeError("bug"), KeyError("bug")])
def test_other_errors_are_bugs(error: BaseException) -> None:
    assert not errors.ledger_unavailable(error)
    assert errors.from_exception(error, throttle_window=60).code == "internal_error"


def test_an_unmigrated_ledger_stays_service_unavailable() -> None:
    api_error = errors.from_exception(exceptions.DatabaseNotReady("no tables"),
                                      throttle_window=60)
    assert (api_error.status, api_error.code) == (503, "service_unavailable")
