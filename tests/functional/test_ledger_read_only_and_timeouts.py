"""After a failover, and under a statement time limit, on real PostgreSQL and MariaDB servers.

- A pooled connection on a server that refuses writes as read-only (a standby,
  a primary a failover demoted: PostgreSQL's 25006, MariaDB's 1290 and 1792)
  is dropped, and the write is retried on a new connection: it succeeds at
  once when the new one can write; the API answers 503 ``ledger_unavailable``
  with Retry-After while the server stays read-only, and serves the next
  request once it is writable again, on a new connection.
- A statement the server cancels (PostgreSQL's statement_timeout: 57014,
  MariaDB's max_statement_time: 1969), here while it waits on a table another
  session locked, is a 503 at once: not retried, nothing written.
- A statement that does not fit the schema stays a 500 (on every backend:
  tests/functional/test_api_ledger_unavailable.py).

The read-only state is provoked as the servers allow a test to: PostgreSQL's
``default_transaction_read_only`` (per database, fixed for a session when it
starts, as a standby is for its sessions) or ``SET SESSION CHARACTERISTICS``;
MariaDB's ``read_only`` (global, for users without READ_ONLY ADMIN: the
ledger's) or ``SET SESSION TRANSACTION READ ONLY``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests
import sqlalchemy as sa

from ovh_credit_plugin.ledger import database
from tests.support.api import PERSONAS, call, noauth_headers, standalone
from tests.support.ledgers import Ledger, ServerPool

MEMBER = noauth_headers(PERSONAS["member"])
API_LOGGER = "ovh_credit_plugin.api.controllers"
PROJECT = "8f2c0000-read-only"


def admin_engine(ledger: Ledger, server_pool: ServerPool, *, on_ledger: bool = False
                 ) -> sa.Engine:
    """The server's superuser, in autocommit; on the ledger's database if ``on_ledger``
    (PostgreSQL: else on ``postgres``, which a read-only ledger database leaves writable)."""
    server = server_pool.get(ledger.backend)
    url = (server.admin_url_for(sa.make_url(ledger.url).database) if on_ledger
           else server.admin_url)
    return sa.create_engine(url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")


def session_ids(ledger: Ledger, admin: sa.Engine) -> set[int]:
    """The server's ids of the ledger user's sessions on the ledger's database."""
    url = sa.make_url(ledger.url)
    if ledger.backend == "postgresql":
        query = "SELECT pid FROM pg_stat_activity WHERE datname = :name AND usename = :user"
    else:
        query = "SELECT id FROM information_schema.processlist WHERE db = :name AND user = :user"
    with admin.connect() as conn:
        return {int(row[0]) for row in conn.execute(
            sa.text(query), {"name": url.database, "user": url.username})}


def set_option(ledger: Ledger, **options: object) -> None:
    lines = "".join(f"{name} = {value}\n" for name, value in options.items())
    ledger.config.write_text(
        ledger.config.read_text().replace("[cloud_credit]\n", f"[cloud_credit]\n{lines}", 1))


def retry_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == database.LOG.name and r.levelno == logging.WARNING]


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == API_LOGGER and r.levelno >= logging.ERROR]


def assert_unavailable(answer: requests.Response) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == "30"
    (error,) = answer.json()["errors"]
    assert error["code"] == "cloud_credit.ledger_unavailable"
    assert error["detail"] == "the credit service is temporarily unavailable; try again later"


def an_order_refused_as_unavailable(api: str, caplog: pytest.LogCaptureFixture
                                    ) -> logging.LogRecord:
    """POST an order on a ledger that cannot take it: a 503, and the one ERROR line
    that names the operation, without a traceback (an outage, not a bug)."""
    caplog.clear()
    assert_unavailable(call("POST", f"{api}/v1/orders", headers=MEMBER,
                            json_body={"amount": "20.00"}))
    (line,) = outage_lines(caplog)
    assert "POST /v1/orders: ledger database" in line.getMessage()
    assert line.exc_info is None
    return line


# -- the ledger: a read-only connection is replaced, the write retried ---------------


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_a_pooled_connection_that_turned_read_only_is_replaced_and_the_write_retried(
        ledger: Ledger, server_pool: ServerPool, caplog: pytest.LogCaptureFixture) -> None:
    """The session's READ ONLY stays with its connection, as a standby's does: only a
    new connection can write. The order is written by the retry, once."""
    service = ledger.service()
    admin = admin_engine(ledger, server_pool)
    try:
        engine = service.database.engine
        with engine.connect() as conn:  # the pool's one connection, made read-only
            conn.exec_driver_sql(
                "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"
                if ledger.backend == "postgresql" else "SET SESSION TRANSACTION READ ONLY")
            conn.commit()
            stale = (conn.exec_driver_sql("SELECT pg_backend_pid()" if ledger.backend ==
                                          "postgresql" else "SELECT CONNECTION_ID()").scalar())
        assert stale in session_ids(ledger, admin)
        with caplog.at_level(logging.WARNING, logger=database.LOG.name):
            order = service.create_order(PROJECT, "20.00")
        (retried,) = retry_lines(caplog)
        assert "attempt 1 of 8 failed" in retried
        assert ("SQLSTATE 25006: read-only transaction" if ledger.backend == "postgresql"
                else "error 1792: read-only transaction") in retried
        # The read-only connection was closed, not given back to the pool.
        assert stale not in session_ids(ledger, admin)
        assert [found.id for found in service.list_orders(PROJECT)] == [order.id]
    finally:
        service.close()
        admin.dispose()


# -- the API: 503 while read-only, served again on a new connection after -----------


def pg_read_only(admin: sa.Engine, name: str, *, on: bool) -> None:
    """The database refuses writes to the sessions opened from now on (as a standby
    does), or takes them again; the sessions already open keep what they started with."""
    change = "SET default_transaction_read_only = on" if on else (
        "RESET default_transaction_read_only")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'ALTER DATABASE "{name}" {change}')


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_postgresql_standby_is_503_and_the_api_reconnects_once_writable(
        ledger: Ledger, server_pool: ServerPool, caplog: pytest.LogCaptureFixture) -> None:
    """The API's connections open on a read-only database (a standby behind the
    address). Writable again (the address leads to a primary), the running API must
    not reuse them: their sessions stay read-only."""
    set_option(ledger, max_transaction_attempts=2)
    name = str(sa.make_url(ledger.url).database)
    admin = admin_engine(ledger, server_pool)
    before = ledger.checksum()
    pg_read_only(admin, name, on=True)
    try:
        with standalone(ledger) as api:
            # A standby serves reads.
            assert call("GET", f"{api}/v1/orders", headers=MEMBER).status_code == 200
            line = an_order_refused_as_unavailable(api, caplog)
            assert "read-only transaction" in line.getMessage()
            retried = retry_lines(caplog)
            assert "SQLSTATE 25006: read-only transaction" in retried[0]
            assert "max_transaction_attempts ran out" in retried[-1]
            assert ledger.checksum() == before

            pg_read_only(admin, name, on=False)
            caplog.clear()
            answer = call("POST", f"{api}/v1/orders", headers=MEMBER,
                          json_body={"amount": "20.00"})
            assert answer.status_code == 201, answer.text
            assert retry_lines(caplog) == []  # on a new connection from the start
    finally:
        pg_read_only(admin, name, on=False)
        admin.dispose()


@pytest.mark.parametrize("backend", ["mariadb"])
def test_a_read_only_mariadb_answers_503_and_its_connections_are_replaced(
        ledger: Ledger, server_pool: ServerPool, caplog: pytest.LogCaptureFixture) -> None:
    """``read_only`` on (a replica, a demoted primary): the write is refused with 1290,
    the connection it came on closed (after a real failover that server stays read-only,
    only a new connection reaches the new primary); read_only off, served again."""
    set_option(ledger, max_transaction_attempts=2)
    admin = admin_engine(ledger, server_pool)
    before = ledger.checksum()
    try:
        with standalone(ledger) as api:
            assert call("GET", f"{api}/v1/orders", headers=MEMBER).status_code == 200
            pooled = session_ids(ledger, admin)
            assert pooled
            with admin.connect() as conn:
                conn.exec_driver_sql("SET GLOBAL read_only = 1")
            try:
                line = an_order_refused_as_unavailable(api, caplog)
                assert "--read-only option" in line.getMessage()
                retried = retry_lines(caplog)
                assert "error 1290: server is read-only" in retried[0]
                # The connections of before were closed, not kept for the next request.
                assert not pooled & session_ids(ledger, admin)
            finally:
                with admin.connect() as conn:
                    conn.exec_driver_sql("SET GLOBAL read_only = 0")
            assert ledger.checksum() == before
            answer = call("POST", f"{api}/v1/orders", headers=MEMBER,
                          json_body={"amount": "20.00"})
            assert answer.status_code == 201, answer.text
    finally:
        admin.dispose()


# -- statement timeouts: 503 at once, not retried ---------------------------------


TIMEOUT_QUERY = {
    # What an operator writes in [cloud_credit] connection to bound every statement.
    "postgresql": "options=-c%20statement_timeout%3D300",
    "mariadb": "init_command=SET%20SESSION%20max_statement_time%3D0.3",
}


@contextmanager
def orders_table_locked(ledger: Ledger, admin: sa.Engine) -> Iterator[None]:
    """Another session holds cloud_credit_orders: every statement on it waits."""
    with admin.connect() as conn:
        if ledger.backend == "postgresql":
            conn.exec_driver_sql("BEGIN")
            conn.exec_driver_sql("LOCK TABLE cloud_credit_orders IN ACCESS EXCLUSIVE MODE")
            try:
                yield
            finally:
                conn.exec_driver_sql("ROLLBACK")
        else:
            conn.exec_driver_sql("LOCK TABLES cloud_credit_orders WRITE")
            try:
                yield
            finally:
                conn.exec_driver_sql("UNLOCK TABLES")


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_a_statement_timeout_is_503_at_once_and_not_retried(
        ledger: Ledger, server_pool: ServerPool, caplog: pytest.LogCaptureFixture) -> None:
    config = ledger.config.read_text()
    bounded = f"{ledger.url}?{TIMEOUT_QUERY[ledger.backend]}"
    ledger.config.write_text(config.replace(f"connection = {ledger.url}\n",
                                            f"connection = {bounded}\n"))
    said = ("canceling statement due to statement timeout" if ledger.backend == "postgresql"
            else "max_statement_time exceeded")
    admin = admin_engine(ledger, server_pool, on_ledger=True)
    before = ledger.checksum()
    try:
        with standalone(ledger) as api:
            assert call("GET", f"{api}/v1/orders", headers=MEMBER).status_code == 200
            with orders_table_locked(ledger, admin):
                for method, body in (("GET", None), ("POST", {"amount": "20.00"})):
                    caplog.clear()
                    started = time.monotonic()
                    answer = call(method, f"{api}/v1/orders", headers=MEMBER, json_body=body)
                    assert_unavailable(answer)
                    # One statement's time limit, not eight attempts' (with their backoff).
                    assert time.monotonic() - started < 2.5
                    (line,) = outage_lines(caplog)
                    assert f"{method} /v1/orders: ledger database" in line.getMessage()
                    assert said in line.getMessage()
                    assert line.exc_info is None
                    assert retry_lines(caplog) == []
            assert ledger.checksum() == before
            # The lock gone, the same connections serve again.
            assert call("GET", f"{api}/v1/orders", headers=MEMBER).status_code == 200
            answer = call("POST", f"{api}/v1/orders", headers=MEMBER,
                          json_body={"amount": "20.00"})
            assert answer.status_code == 201, answer.text
    finally:
        admin.dispose()
