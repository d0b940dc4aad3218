"""What the on-call engineer reads of the ledger's retries (Database's warnings).

A retry says why the attempt failed (a deadlock is not a busy SQLite file nor a
node that left the cluster) and how many attempts are left; the attempts
running out is said once; an error no retry cures is the caller's to log.
A driver's whole text never reaches the log: MySQL's duplicate-key error
quotes the row (a voucher code).
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import pymysql  # type: ignore[import-untyped]
import pytest
from sqlalchemy import exc
from sqlalchemy.engine import Connection

from ovh_credit_plugin.ledger import database
from ovh_credit_plugin.ledger.database import Database, create_engine, describe_failure


def _busy() -> exc.OperationalError:
    return exc.OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError(
        "database is locked"))


def _mysql(error_class: type[Exception], code: int, message: str) -> exc.DBAPIError:
    return exc.DBAPIError.instance("COMMIT", {}, error_class(code, message), pymysql.err.Error)


def _postgresql(sqlstate: str) -> exc.DBAPIError:
    import psycopg

    error = psycopg.errors.lookup(sqlstate)("deadlock detected\nDETAIL: Process 1 waits")
    return exc.DBAPIError.instance("UPDATE", {}, error, psycopg.Error)


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    engine = create_engine(f"sqlite:///{tmp_path / 'retry.sqlite'}")
    made = Database(engine, max_attempts=3)
    made._schema_checked_until = float("inf")  # no ledger schema: the retry loop is under test
    monkeypatch.setattr(database.time, "sleep", lambda seconds: None)
    yield made
    engine.dispose()


def _failing(*errors: BaseException) -> Any:
    left = list(errors)

    def work(conn: Connection) -> str:
        if left:
            raise left.pop(0)
        return "done"

    return work


@pytest.mark.parametrize(("error", "said"), [
    (_busy(), ": database is locked"),
    (_mysql(pymysql.err.OperationalError, 1213,
            "WSREP detected deadlock/conflict and aborted the transaction"),
     " error 1213: deadlock or Galera certification conflict"),
    (_mysql(pymysql.err.OperationalError, 1205, "Lock wait timeout exceeded"),
     " error 1205: lock wait timeout"),
    (_mysql(pymysql.err.OperationalError, 2013, "Lost connection to MySQL server"),
     " error 2013: connection lost during query"),
    (_postgresql("40P01"), " SQLSTATE 40P01: deadlock"),
    (_postgresql("40001"), " SQLSTATE 40001: serialization failure"),
])
def test_a_retry_says_why_the_attempt_failed_and_how_many_are_left(
    db: Database, caplog: pytest.LogCaptureFixture, error: exc.DBAPIError, said: str
) -> None:
    with caplog.at_level(logging.WARNING, logger=database.LOG.name):
        assert db.write(_failing(error)) == "done"
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", f"ledger transaction attempt 1 of 3 failed "
                    f"({type(error).__name__}{said}); retrying")]


def test_a_duplicate_key_is_named_by_its_code_never_by_the_row_it_quotes(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    duplicate = _mysql(pymysql.err.IntegrityError, 1062,
                       "Duplicate entry 'p1-WELCOME-2026' for key 'uq_activation'")
    with caplog.at_level(logging.WARNING, logger=database.LOG.name):
        db.write(_failing(duplicate))
    [line] = [r.getMessage() for r in caplog.records]
    assert "IntegrityError error 1062" in line
    assert "WELCOME-2026" not in line


def test_the_attempts_running_out_is_said_once_before_the_error_is_raised(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=database.LOG.name), \
            pytest.raises(exc.OperationalError):
        db.write(_failing(_busy(), _busy(), _busy()))
    assert [r.getMessage() for r in caplog.records] == [
        "ledger transaction attempt 1 of 3 failed (OperationalError: database is locked); "
        "retrying",
        "ledger transaction attempt 2 of 3 failed (OperationalError: database is locked); "
        "retrying",
        "ledger transaction gave up after 3 attempt(s) (OperationalError: database is "
        "locked): [cloud_credit] max_transaction_attempts ran out",
    ]
    assert {r.levelname for r in caplog.records} == {"WARNING"}


def test_an_error_no_retry_cures_is_left_to_the_caller_to_log(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger=database.LOG.name), \
            pytest.raises(ValueError, match="refused"):
        db.write(_failing(ValueError("refused")))
    assert caplog.records == []


def test_other_errors_are_described_by_their_class_and_first_line() -> None:
    assert describe_failure(ValueError("one\ntwo")) == "ValueError: one"
    assert describe_failure(RuntimeError()) == "RuntimeError"


def test_a_statement_error_never_carries_the_values_it_was_given(tmp_path: Path) -> None:
    # What a host logs with a traceback (CloudKitty's "Error processing scope",
    # a REST API 500): the values of the failed statement stay out of it.
    engine = create_engine(f"sqlite:///{tmp_path / 'values.sqlite'}")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (code TEXT CHECK (length(code) < 5))")
        with pytest.raises(exc.IntegrityError) as raised, engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t (code) VALUES (?)", ("WELCOME-2026",))
        assert "WELCOME-2026" not in str(raised.value)
    finally:
        engine.dispose()
