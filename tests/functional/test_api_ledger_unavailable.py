"""A ledger database that cannot serve is 503 ``ledger_unavailable``, not a 500.

Over a real socket, on the standalone server, with the drivers' own errors:
a PostgreSQL or MariaDB port nothing listens on, a PostgreSQL server stopped
under a running API (its pooled connection dead, the reconnect refused), a
SQLite database locked by another writer beyond the retries. Each answer is
an API-SIG document with ``Retry-After``; the log line names the database and
the driver's error, never the password, with no traceback (an outage, not a
bug). A statement the database refuses (a column that is not there) stays a
500: the drivers raise OperationalError for those too.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from ovh_credit_plugin.ledger import upgrade
from ovh_credit_plugin.ledger.engine import create_engine
from tests.support import dbservers
from tests.support.api import PERSONAS, call, noauth_headers, standalone
from tests.support.ledgers import VOUCHERS, Ledger, ServerPool, write_config

MEMBER = noauth_headers(PERSONAS["member"])
PASSWORD = "s3cr3t-Ledger-pw"
API_LOGGER = "ovh_credit_plugin.api.controllers"


@contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port bound but not listening: a connection to it is refused, and no
    other process can take it while the test runs."""
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def ledger_at(url: str, directory: Path, extra: str = "") -> Ledger:
    vouchers = directory / "vouchers.json"
    vouchers.write_text(json.dumps(VOUCHERS))
    config = write_config(directory / "ovh-credit.conf", url, vouchers, extra)
    return Ledger(backend=sa.make_url(url).get_backend_name(), url=url, config=config,
                  vouchers=vouchers)


def assert_unavailable(answer: requests.Response) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == "30"
    assert answer.headers["Content-Type"].startswith("application/json")
    (error,) = answer.json()["errors"]
    assert error["status"] == 503
    assert error["code"] == "cloud_credit.ledger_unavailable"
    assert error["title"] == "Service temporarily unavailable"
    assert error["detail"] == "the credit service is temporarily unavailable; try again later"
    assert error["request_id"] == answer.headers["X-Openstack-Request-Id"]
    assert PASSWORD not in answer.text


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == API_LOGGER and r.levelno >= logging.ERROR]


@pytest.mark.parametrize(("scheme", "driver_error"), [
    ("postgresql+psycopg", "Connection refused"),
    ("mysql+pymysql", "Can't connect to MySQL server"),
])
def test_a_database_server_nothing_listens_for_is_503_with_the_cause_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, scheme: str,
        driver_error: str) -> None:
    with closed_port() as port:
        url = f"{scheme}://ovh:{PASSWORD}@127.0.0.1:{port}/ovh_credit"
        with standalone(ledger_at(url, tmp_path)) as api:
            for method, path, body in (
                ("GET", "credits", None),
                ("GET", "orders", None),
                ("POST", "orders", {"amount": "20.00"}),
                ("POST", "vouchers", {"code": "WELCOME-2026"}),
            ):
                caplog.clear()
                answer = call(method, f"{api}/v1/{path}", headers=MEMBER, json_body=body)
                assert_unavailable(answer)
                (line,) = outage_lines(caplog)
                message = line.getMessage()
                # What failed, for the on-call engineer: the request, the database
                # (its URL, password hidden), the driver's own words.
                assert f"{method} /v1/{path}: ledger database" in message
                assert f"127.0.0.1:{port}/ovh_credit" in message
                assert driver_error in message
                assert PASSWORD not in message
                assert line.exc_info is None  # an outage, not a bug: no traceback
            assert PASSWORD not in caplog.text
            # The version document needs no ledger.
            assert call("GET", f"{api}/").status_code == 200


@pytest.mark.skipif(not dbservers.postgresql_available(), reason="no PostgreSQL binaries")
def test_a_postgresql_server_stopped_under_a_running_api_is_503(
        tmp_path: Path, server_pool: ServerPool, caplog: pytest.LogCaptureFixture) -> None:
    """The pooled connection is dead (retried on a new one), the new one is refused.

    A server of its own (the session's is shared), in the session's scratch
    directory: never under pytest's basetemp (tests/support/ledgers.py, scratch_root).
    """
    directory = Path(tempfile.mkdtemp(prefix="pg-stopped-", dir=server_pool.scratch))
    directory.chmod(0o711)
    server = dbservers.start_postgresql(directory)
    try:
        engine = create_engine(server.url)
        try:
            upgrade(engine)
        finally:
            engine.dispose()
        with standalone(ledger_at(server.url, tmp_path)) as api:
            assert call("GET", f"{api}/v1/credits", headers=MEMBER).status_code == 200
            server.stop()
            caplog.clear()
            answer = call("GET", f"{api}/v1/credits", headers=MEMBER)
            assert_unavailable(answer)
            (line,) = outage_lines(caplog)
            assert f"127.0.0.1:{server.port}/ovh_credit" in line.getMessage()
            assert line.exc_info is None
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_sqlite_ledger_locked_beyond_the_retries_is_503_and_writes_nothing(
        ledger: Ledger, caplog: pytest.LogCaptureFixture) -> None:
    config = ledger.config.read_text().replace(
        "[cloud_credit]\n", "[cloud_credit]\nsqlite_busy_timeout = 0\n"
        "max_transaction_attempts = 2\n")
    ledger.config.write_text(config)
    before = ledger.checksum()
    with standalone(ledger) as api:
        holder = sqlite3.connect(ledger.path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
            answer = call("POST", f"{api}/v1/orders", headers=MEMBER,
                          json_body={"amount": "20.00"})
            assert_unavailable(answer)
            (line,) = outage_lines(caplog)
            assert "database is locked" in line.getMessage()
            assert str(ledger.path) in line.getMessage()
            # Reads are not blocked by a writer (WAL): still served meanwhile.
            listed = call("GET", f"{api}/v1/orders", headers=MEMBER)
            assert listed.status_code == 200
            assert listed.json()["orders"] == []
            holder.execute("ROLLBACK")
        finally:
            holder.close()
        assert ledger.checksum() == before
        # The lock gone, the same request succeeds.
        answer = call("POST", f"{api}/v1/orders", headers=MEMBER,
                      json_body={"amount": "20.00"})
        assert answer.status_code == 201, answer.text


@pytest.mark.parametrize("backend", ["sqlite", "mariadb", "postgresql"])
def test_a_statement_the_database_refuses_stays_a_500(
        ledger: Ledger, caplog: pytest.LogCaptureFixture) -> None:
    """SQLite ("no such column") and MySQL (1054) raise OperationalError for a statement
    that does not fit the schema, PostgreSQL a ProgrammingError (42703): a bug (or a
    hand-made schema change), not an outage."""
    engine = sa.create_engine(ledger.url, poolclass=sa.pool.NullPool)

    def rename(old: str, new: str) -> None:
        with engine.begin() as conn:
            conn.execute(sa.text(f"ALTER TABLE cloud_credit_orders RENAME COLUMN {old} TO {new}"))

    try:
        with standalone(ledger) as api:
            assert call("GET", f"{api}/v1/orders", headers=MEMBER).status_code == 200
            rename("payment_url", "payment_url_gone")
            try:
                answer = call("GET", f"{api}/v1/orders", headers=MEMBER)
            finally:
                rename("payment_url_gone", "payment_url")
            assert answer.status_code == 500, answer.text
            assert "Retry-After" not in answer.headers
            assert answer.json()["errors"][0]["code"] == "cloud_credit.internal_error"
            (line,) = [r for r in caplog.records if r.name == API_LOGGER
                       and r.levelno >= logging.ERROR]
            assert line.exc_info is not None  # a bug: its traceback is logged
    finally:
        engine.dispose()


def test_a_ledger_not_migrated_is_503_with_retry_after_and_one_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Every request fails the same way until an operator runs 'db upgrade': the
    # client is told when to come back, the log says what to run, once a request.
    url = f"sqlite:///{tmp_path / 'not-migrated.sqlite'}"
    sqlite3.connect(tmp_path / "not-migrated.sqlite").close()
    with standalone(ledger_at(url, tmp_path)) as api:
        caplog.clear()
        answer = call("GET", f"{api}/v1/credits", headers=MEMBER)
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] == "30"
        (error,) = answer.json()["errors"]
        assert error["code"] == "cloud_credit.service_unavailable"
        assert error["detail"] == "the credit ledger is not ready"
        (line,) = outage_lines(caplog)
        assert line.getMessage().startswith("GET /v1/credits: ")
        assert "ovh-credit db upgrade" in line.getMessage()
        assert line.exc_info is None  # no traceback on every request
