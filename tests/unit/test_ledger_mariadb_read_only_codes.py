"""MariaDB's read-only storage errors, as PyMySQL raises them: a server that serves no
writes, as 1290's read_only is.

- 1036 ER_OPEN_AS_READONLY "Table '...' is read only": what MariaDB 10.11 answers
  every write of the ledger when started with innodb_read_only (provoked for
  real in tests/functional/test_ledger_innodb_read_only.py);
- 1836 ER_READ_ONLY_MODE "Running in read-only mode" and 1874 ER_INNODB_READ_ONLY
  "InnoDB is in read only mode" (texts from MariaDB 10.11's errmsg, ``perror``):
  10.11 sent them only as warnings beside 1036 to the statements tried, so they
  are not provoked here; the driver's own exception class carries the number.

Each: dropped from the pool and retried on a new connection, then a 503
``ledger_unavailable``; the log line says how long innodb_read_only lasts.
"""

from __future__ import annotations

import pymysql  # type: ignore[import-untyped]
import pytest
from sqlalchemy import exc

from ovh_credit_plugin.api import errors
from ovh_credit_plugin.ledger.database import describe_failure, is_canceled, is_retryable
from ovh_credit_plugin.ledger.engine import create_engine, refused_as_read_only

UNTIL_RESTART = "(innodb_read_only: until the server restarts without it)"

CODES = {
    1036: ("Table 'cloud_credit_orders' is read only",
           f"error 1036: table is read only {UNTIL_RESTART}"),
    1836: ("Running in read-only mode", "error 1836: running in read-only mode"),
    1874: ("InnoDB is in read only mode",
           f"error 1874: InnoDB is in read only mode {UNTIL_RESTART}"),
}


def _refused(code: int) -> exc.DBAPIError:
    message, _ = CODES[code]
    return exc.DBAPIError.instance(
        "INSERT INTO cloud_credit_orders (id) VALUES (%s)", ("o",),
        # As PyMySQL raises them: the number, the text, MariaDB's coarse SQLSTATE.
        pymysql.err.OperationalError(code, message, sqlstate="HY000"), pymysql.err.Error)


@pytest.mark.parametrize("code", sorted(CODES))
def test_a_read_only_storage_error_is_retried_then_unavailable(code: int) -> None:
    error = _refused(code)
    assert isinstance(error, exc.OperationalError)
    assert refused_as_read_only(error.orig)
    assert is_retryable(error)
    assert not is_canceled(error)
    assert errors.ledger_unavailable(error)
    api_error = errors.from_exception(error, throttle_window=60)
    assert (api_error.status, api_error.code) == (503, "ledger_unavailable")
    assert api_error.headers == {"Retry-After": str(errors.LEDGER_RETRY_AFTER)}
    assert describe_failure(error) == f"OperationalError {CODES[code][1]}"


@pytest.mark.parametrize("code", sorted(CODES))
def test_the_engine_drops_the_connection_a_read_only_storage_refused(code: int) -> None:
    engine = create_engine("mysql+pymysql://ovh:pw@127.0.0.1:1/ovh_credit")
    try:
        assert engine.dialect.is_disconnect(_refused(code).orig, None, None)
    finally:
        engine.dispose()
