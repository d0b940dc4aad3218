"""A MariaDB server started with ``innodb_read_only``, for real: a server of its own.

Such a server (a read-only instance on shared storage, a replica an operator
started read-only) refuses every write the ledger makes with error 1036
ER_OPEN_AS_READONLY ("Table '...' is read only"), 1836 ER_READ_ONLY_MODE
("Running in read-only mode") being only a warning beside it; checked on
MariaDB 10.11. It stays so until it restarts without the option. To the
ledger it is a server that serves no writes, as 1290's read_only is: the
connection is dropped and the write retried on a new one (which succeeds if
the address now leads to a writable server), then the API answers 503
``ledger_unavailable`` with Retry-After; reads are served. The operator's log
says that the option holds until a restart.

1836 and 1874 (ER_INNODB_READ_ONLY), which MariaDB 10.11 did not answer to any
statement tried here, are classified alike in
tests/unit/test_ledger_mariadb_read_only_codes.py.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pymysql  # type: ignore[import-untyped]
import pytest
from sqlalchemy import exc

from ovh_credit_plugin.ledger import database, migration
from ovh_credit_plugin.ledger.database import describe_failure, is_canceled, is_retryable
from ovh_credit_plugin.ledger.engine import create_engine
from tests.functional.test_ledger_read_only_and_timeouts import (
    MEMBER,
    an_order_refused_as_unavailable,
    set_option,
)
from tests.support import dbservers
from tests.support.api import PERSONAS, call, standalone
from tests.support.ledgers import REQUIRE_DATABASES, VOUCHERS, Ledger, write_config

PROJECT = PERSONAS["member"].project_id
SAID = "error 1036: table is read only (innodb_read_only: until the server restarts without it)"


def _connected(server: dbservers.DatabaseServer) -> bool:
    try:
        pymysql.connect(host=server.host, port=server.port, user=server.admin_user,
                        connect_timeout=1).close()
    except pymysql.err.MySQLError:
        return False
    return True


def _restart_innodb_read_only(server: dbservers.DatabaseServer) -> dbservers.DatabaseServer:
    """The same server, shut down cleanly (a crashed InnoDB cannot start read-only:
    it would need a recovery), then started again with ``--innodb-read-only``."""
    admin = pymysql.connect(host=server.host, port=server.port, user=server.admin_user,
                            autocommit=True)
    with admin.cursor() as cursor:
        cursor.execute("SET GLOBAL innodb_fast_shutdown = 0")
        cursor.execute("SHUTDOWN")
    admin.close()
    server.process.wait(timeout=60)
    mariadbd, _ = dbservers._mariadb_binaries()
    log = server.log_path.open("ab")
    process = subprocess.Popen(
        [*dbservers._die_with_parent("KILL"), str(mariadbd),
         f"--defaults-file={server.data_dir.parent / 'my.cnf'}",
         "--enforce-storage-engine=InnoDB", "--innodb-read-only=1"],
        env=dbservers._plain_env(), stdin=subprocess.DEVNULL, stdout=log,
        stderr=subprocess.STDOUT)
    log.close()
    restarted = dataclasses.replace(server, process=process)
    deadline = time.monotonic() + dbservers.START_TIMEOUT
    while not _connected(restarted):
        if process.poll() is not None or time.monotonic() > deadline:
            restarted.stop()
            raise AssertionError(f"MariaDB did not restart read-only:\n{restarted.log_tail()}")
        time.sleep(0.1)
    return restarted


@pytest.fixture
def innodb_read_only_ledger(tmp_path: Path) -> Iterator[Ledger]:
    """A migrated ledger, with one order, on a MariaDB server then restarted with
    innodb_read_only."""
    if not dbservers.mariadb_available():
        message = "MariaDB server binaries are not installed"
        if REQUIRE_DATABASES:
            pytest.fail(message)
        pytest.skip(message)
    server = dbservers.start_mariadb(tmp_path / "mariadb")
    try:
        vouchers = tmp_path / "vouchers.json"
        vouchers.write_text(json.dumps(VOUCHERS))
        ledger = Ledger(backend="mariadb", url=server.url,
                        config=write_config(tmp_path / "ovh-credit.conf", server.url, vouchers),
                        vouchers=vouchers)
        engine = create_engine(server.url)
        migration.upgrade(engine)
        engine.dispose()
        service = ledger.service()
        service.create_order(PROJECT, "20.00")
        service.close()
        server = _restart_innodb_read_only(server)
        yield ledger
    finally:
        server.stop()


def test_an_innodb_read_only_server_is_retried_on_a_new_connection_then_503(
        innodb_read_only_ledger: Ledger, caplog: pytest.LogCaptureFixture) -> None:
    ledger = innodb_read_only_ledger
    service = ledger.service(max_transaction_attempts=2)
    try:
        assert len(service.list_orders(PROJECT)) == 1  # reads are served
        with caplog.at_level(logging.WARNING, logger=database.LOG.name), \
                pytest.raises(exc.OperationalError) as raised:
            service.create_order(PROJECT, "30.00")
        error = raised.value
        assert error.orig.args[0] == 1036, error.orig  # type: ignore[union-attr]
        assert "is read only" in str(error.orig)
        assert error.connection_invalidated  # the connection it came on is gone
        assert is_retryable(error) and not is_canceled(error)
        assert describe_failure(error).endswith(SAID)
        retried = [r.getMessage() for r in caplog.records if r.name == database.LOG.name]
        assert len(retried) == 2, retried  # one retry, then the attempts ran out
        assert f"attempt 1 of 2 failed (OperationalError {SAID}); retrying" in retried[0]
        assert "max_transaction_attempts ran out" in retried[1]
        assert len(service.list_orders(PROJECT)) == 1
    finally:
        service.close()

    set_option(ledger, max_transaction_attempts=2)
    with standalone(ledger) as api:
        assert call("GET", f"{api}/v1/orders", headers=MEMBER).status_code == 200
        line = an_order_refused_as_unavailable(api, caplog)
        assert "is read only" in line.getMessage()
