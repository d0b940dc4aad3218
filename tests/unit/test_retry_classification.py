"""Which database errors retry a ledger transaction whole (Database.write's classification).

The errors are the drivers' own exception objects, wrapped by SQLAlchemy as
it wraps them at run time (``DBAPIError.instance``), so the classification
sees what it sees in production: the driver error's code in ``orig.args[0]``
for MySQL/MariaDB, the SQLSTATE for PostgreSQL.
"""

from __future__ import annotations

import pymysql  # type: ignore[import-untyped]
import pytest
from sqlalchemy import exc

from ovh_credit_plugin.ledger.database import is_retryable


def _mysql(error_class: type[Exception], code: int, message: str,
           *, invalidated: bool = False) -> exc.DBAPIError:
    return exc.DBAPIError.instance(
        "COMMIT", {}, error_class(code, message), pymysql.err.Error,
        connection_invalidated=invalidated,
    )


@pytest.mark.parametrize(("code", "message"), [
    (1213, "WSREP detected deadlock/conflict and aborted the transaction. "
           "Try restarting the transaction"),
    (1213, "Deadlock found when trying to get lock; try restarting transaction"),
    (1205, "Lock wait timeout exceeded; try restarting transaction"),
    (1020, "Record has changed since last read in table 'cloud_credit_credits'"),
    (1180, "Got error 6 \"No such device or address\" during COMMIT"),
    (1047, "WSREP has not yet prepared node for application use"),
])
def test_galera_and_innodb_conflicts_are_retried(code: int, message: str) -> None:
    assert is_retryable(_mysql(pymysql.err.OperationalError, code, message))


@pytest.mark.parametrize(("code", "message"), [
    (2013, "Lost connection to MySQL server during query"),
    (2006, "MySQL server has gone away"),
])
def test_a_lost_connection_is_retried_flagged_or_not(code: int, message: str) -> None:
    # SQLAlchemy flags these as invalidated connections; the code alone suffices too.
    for invalidated in (True, False):
        error = _mysql(pymysql.err.OperationalError, code, message, invalidated=invalidated)
        assert is_retryable(error)


@pytest.mark.parametrize(("error_class", "code", "message"), [
    # Nobody listens (a dead node without a proxy in front): retrying the same
    # address within a second does not help; the caller hears it at once.
    (pymysql.err.OperationalError, 2003, "Can't connect to MySQL server on '127.0.0.1'"),
    (pymysql.err.OperationalError, 1045, "Access denied for user 'ovh'@'127.0.0.1'"),
    (pymysql.err.ProgrammingError, 1146, "Table 'ovh.cloud_credit_credits' doesn't exist"),
    (pymysql.err.DataError, 1264, "Out of range value for column 'amount'"),
    (pymysql.err.OperationalError, 3819, "Check constraint 'ck_available' is violated"),
])
def test_other_errors_are_raised_at_once(
    error_class: type[Exception], code: int, message: str
) -> None:
    assert not is_retryable(_mysql(error_class, code, message))


def test_integrity_errors_and_concurrent_updates_are_retried() -> None:
    duplicate = _mysql(pymysql.err.IntegrityError, 1062, "Duplicate entry 'k' for key 'PRIMARY'")
    assert isinstance(duplicate, exc.IntegrityError)
    assert is_retryable(duplicate)
    assert not is_retryable(ValueError("not a database error"))


def _postgresql(error: Exception) -> exc.DBAPIError:
    import psycopg

    return exc.DBAPIError.instance("UPDATE", {}, error, psycopg.Error)


def test_postgresql_conflicts_and_lock_timeouts_are_retried() -> None:
    import psycopg

    errors = psycopg.errors
    assert is_retryable(_postgresql(errors.SerializationFailure("could not serialize")))
    assert is_retryable(_postgresql(errors.DeadlockDetected("deadlock detected")))
    # An operator's lock_timeout (55P03): as MariaDB's 1205 lock wait timeout.
    assert is_retryable(_postgresql(errors.LockNotAvailable(
        "canceling statement due to lock timeout")))
    assert not is_retryable(_postgresql(errors.UndefinedTable(
        'relation "cloud_credit_credits" does not exist')))
