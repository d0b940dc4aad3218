"""A read-only server, a canceled statement and an unready ledger: what the ledger
and the REST API make of them.

- A server that refuses writes as read-only (a PostgreSQL standby or demoted
  primary: 25006; MariaDB/MySQL read_only: 1290, a READ ONLY transaction:
  1792) is a lost connection to the engine (dropped from the pool), retried
  by the ledger, and a 503 ``ledger_unavailable`` once the retries ran out.
- A statement the server canceled (statement_timeout: 57014; max_statement_time:
  1969; MySQL's max_execution_time: 3024; KILL QUERY: 1317) is a 503 too,
  and is not retried.
- A ledger that is not migrated is a 503 ``service_unavailable`` with Retry-After.
- Wrong statements stay 500s; IntegrityError is handled as before.

The errors are the drivers' own exception classes, wrapped as SQLAlchemy wraps
them (``DBAPIError.instance``); the servers' own are in
tests/functional/test_ledger_read_only_and_timeouts.py.
"""

from __future__ import annotations

import pymysql  # type: ignore[import-untyped]
import pytest
from sqlalchemy import exc

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.api import errors
from ovh_credit_plugin.ledger.database import describe_failure, is_canceled, is_retryable
from ovh_credit_plugin.ledger.engine import create_engine, refused_as_read_only


def _mysql(error_class: type[Exception], code: int, message: str) -> exc.DBAPIError:
    return exc.DBAPIError.instance(
        "INSERT INTO cloud_credit_projects (id) VALUES (%s)", ("p",),
        error_class(code, message), pymysql.err.Error)


def _postgresql(sqlstate: str, message: str) -> exc.DBAPIError:
    import psycopg

    return exc.DBAPIError.instance("INSERT INTO cloud_credit_projects (id) VALUES (%s)",
                                   ("p",), psycopg.errors.lookup(sqlstate)(message),
                                   psycopg.Error)


READ_ONLY = {
    "postgresql 25006": (lambda: _postgresql(
        "25006", "cannot execute INSERT in a read-only transaction"),
        "SQLSTATE 25006: read-only transaction (a standby, or a primary demoted by a failover)"),
    "mariadb 1290": (lambda: _mysql(
        pymysql.err.OperationalError, 1290, "The MariaDB server is running with the "
        "--read-only option so it cannot execute this statement"),
        "error 1290: server is read-only (a replica, or a primary demoted by a failover)"),
    "mariadb 1792": (lambda: _mysql(
        pymysql.err.OperationalError, 1792,
        "Cannot execute statement in a READ ONLY transaction"),
        "error 1792: read-only transaction"),
}

CANCELED = {
    "postgresql 57014": (lambda: _postgresql(
        "57014", "canceling statement due to statement timeout"),
        "SQLSTATE 57014: statement canceled (statement_timeout, or an operator)"),
    "mariadb 1969": (lambda: _mysql(
        pymysql.err.OperationalError, 1969,
        "Query execution was interrupted (max_statement_time exceeded)"),
        "error 1969: max_statement_time exceeded"),
    "mysql 3024": (lambda: _mysql(
        pymysql.err.OperationalError, 3024,
        "Query execution was interrupted, maximum statement execution time exceeded"),
        "error 3024: max_execution_time exceeded"),
    "mariadb 1317": (lambda: _mysql(
        pymysql.err.OperationalError, 1317, "Query execution was interrupted"),
        "error 1317: query interrupted (KILL QUERY)"),
}


def _assert_ledger_unavailable(error: BaseException) -> None:
    assert errors.ledger_unavailable(error)
    api_error = errors.from_exception(error, throttle_window=60)
    assert (api_error.status, api_error.code) == (503, "ledger_unavailable")
    assert api_error.headers == {"Retry-After": str(errors.LEDGER_RETRY_AFTER)}


@pytest.mark.parametrize("name", READ_ONLY)
def test_a_read_only_server_is_retried_and_then_unavailable(name: str) -> None:
    make, said = READ_ONLY[name]
    error = make()
    assert error.statement  # refused as a statement's error: not a connect failure
    assert is_retryable(error)
    assert not is_canceled(error)
    _assert_ledger_unavailable(error)
    assert describe_failure(error).endswith(said)


@pytest.mark.parametrize("name", CANCELED)
def test_a_canceled_statement_is_unavailable_and_not_retried(name: str) -> None:
    make, said = CANCELED[name]
    error = make()
    assert error.statement
    assert is_canceled(error)
    # A retry would run it as long again, on a server already short of time.
    assert not is_retryable(error)
    _assert_ledger_unavailable(error)
    assert describe_failure(error).endswith(said)


@pytest.mark.parametrize("make", [
    lambda: _mysql(pymysql.err.OperationalError, 1054, "Unknown column 'x' in 'field list'"),
    lambda: _mysql(pymysql.err.ProgrammingError, 1064, "You have an error in your SQL syntax"),
    lambda: _mysql(pymysql.err.ProgrammingError, 1146, "Table 'ovh.x' doesn't exist"),
    lambda: _postgresql("42703", 'column "x" does not exist'),
    lambda: _postgresql("42601", 'syntax error at or near "SELEC"'),
    lambda: _postgresql("42P01", 'relation "x" does not exist'),
], ids=["mysql 1054", "mysql 1064", "mysql 1146", "pg 42703", "pg 42601", "pg 42P01"])
def test_a_wrong_statement_stays_a_500(make: object) -> None:
    error = make()  # type: ignore[operator]
    assert not is_retryable(error) and not is_canceled(error)
    assert not errors.ledger_unavailable(error)
    assert errors.from_exception(error, throttle_window=60).code == "internal_error"


@pytest.mark.parametrize("make", [
    lambda: _mysql(pymysql.err.IntegrityError, 1062, "Duplicate entry 'k' for key 'PRIMARY'"),
    lambda: _postgresql("23505", "duplicate key value violates unique constraint"),
], ids=["mysql 1062", "pg 23505"])
def test_an_integrity_error_is_retried_by_the_ledger_and_a_500_after(make: object) -> None:
    error = make()  # type: ignore[operator]
    assert isinstance(error, exc.IntegrityError)
    assert is_retryable(error)
    assert not errors.ledger_unavailable(error)
    assert errors.from_exception(error, throttle_window=60).status == 500


def test_an_unready_ledger_says_when_to_try_again() -> None:
    api_error = errors.from_exception(
        exceptions.DatabaseNotReady("the ledger database has no tables yet"),
        throttle_window=60)
    assert (api_error.status, api_error.code) == (503, "service_unavailable")
    assert api_error.headers == {"Retry-After": str(errors.LEDGER_RETRY_AFTER)}


@pytest.mark.parametrize("url", ["postgresql+psycopg://ovh:pw@127.0.0.1:1/ovh_credit",
                                 "mysql+pymysql://ovh:pw@127.0.0.1:1/ovh_credit"])
def test_the_engine_drops_a_connection_a_read_only_server_refused(url: str) -> None:
    """The engine's dialect counts the refusal as a lost connection, as SQLAlchemy's
    statements and the ledger's driver-cursor statements (bulk.driver_error) ask it;
    a canceled statement or a wrong one keeps its connection. No server needed."""
    engine = create_engine(url)
    try:
        for name in READ_ONLY:
            driver_error = READ_ONLY[name][0]().orig
            assert refused_as_read_only(driver_error)
            assert engine.dialect.is_disconnect(driver_error, None, None), name
        for name in CANCELED:
            driver_error = CANCELED[name][0]().orig
            assert not engine.dialect.is_disconnect(driver_error, None, None), name
        wrong = _mysql(pymysql.err.OperationalError, 1054, "Unknown column 'x'").orig
        assert not engine.dialect.is_disconnect(wrong, None, None)
        if engine.dialect.name != "postgresql":
            # The dialect's own detection still answers (a server gone away).
            gone = pymysql.err.OperationalError(2006, "MySQL server has gone away")
            assert engine.dialect.is_disconnect(gone, None, None)
    finally:
        engine.dispose()


@pytest.mark.parametrize(("code", "sqlstate", "message", "said"), [
    (1290, "HY000", "The MariaDB server is running with the --read-only option",
     "error 1290: server is read-only"),
    (1969, "70100", "Query execution was interrupted (max_statement_time exceeded)",
     "error 1969: max_statement_time exceeded"),
    (1213, "40001", "Deadlock found when trying to get lock; try restarting transaction",
     "error 1213: deadlock or Galera certification conflict"),
    (1205, "HY000", "Lock wait timeout exceeded; try restarting transaction",
     "error 1205: lock wait timeout"),
], ids=["1290", "1969", "1213", "1205"])
def test_a_mysql_error_is_known_by_its_number_not_its_coarse_sqlstate(
        code: int, sqlstate: str, message: str, said: str) -> None:
    """PyMySQL gives a server's error its SQLSTATE too (as the servers send it):
    HY000 says nothing, and 40001 is PostgreSQL's serialization failure."""
    error = exc.DBAPIError.instance(
        "UPDATE cloud_credit_credits SET available = %s", (1,),
        pymysql.err.OperationalError(code, message, sqlstate=sqlstate), pymysql.err.Error)
    assert error.orig.sqlstate == sqlstate  # type: ignore[union-attr]
    assert said in describe_failure(error)
    assert errors.ledger_unavailable(error)
    assert is_retryable(error) == (code != 1969)
