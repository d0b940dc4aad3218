"""When a refused write replaces the whole pool, and when only its own connection.

The pool of a PostgreSQL/MariaDB engine, here over SQLite connections (no server):
what it does with a connection is the same whatever the driver. The error is the
driver's own class carrying a read-only refusal (1290) or a lost connection (2006),
given to the pool as SQLAlchemy's statements and ``bulk.driver_error`` give it.
On real servers: tests/functional/test_ledger_read_only_pool_churn.py.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import pymysql  # type: ignore[import-untyped]
import pytest
from sqlalchemy.pool import Pool

from ovh_credit_plugin.ledger import engine as engine_module
from ovh_credit_plugin.ledger.engine import create_engine

READ_ONLY = pymysql.err.OperationalError(
    1290, "The MariaDB server is running with the --read-only option")
LOST = pymysql.err.OperationalError(2006, "MySQL server has gone away")
TICK = 0.02  # SQLAlchemy compares time.time() stamps: let them differ


@pytest.fixture
def pool() -> Iterator[Pool]:
    made = create_engine("mysql+pymysql://ovh:pw@127.0.0.1:1/ovh_credit")
    try:
        real = type(made.pool)(lambda: sqlite3.connect(":memory:", check_same_thread=False),
                               pool_size=5, max_overflow=10)
        yield real
        real.dispose()
    finally:
        made.dispose()


def opened(pool: Pool, count: int) -> list[Any]:
    """``count`` connections checked out at once, each opened now."""
    connections = [pool.connect() for _ in range(count)]
    time.sleep(TICK)
    return connections


def replaced(pool: Pool, connection: Any) -> bool:
    """Whether ``connection``, back in the pool, is to be replaced at its next checkout."""
    return bool(connection._connection_record._is_hard_or_soft_invalidated())


def refuse(pool: Pool, connection: Any, error: BaseException) -> None:
    pool._invalidate(connection, error)  # what a statement's error handling calls
    assert not connection.is_valid  # the refused connection itself is closed
    time.sleep(TICK)


def test_the_first_refusal_replaces_the_pool_and_the_next_ones_their_connection(
        pool: Pool) -> None:
    first, *others = opened(pool, 3)
    refuse(pool, first, READ_ONLY)  # after a failover: they all went to the old server
    assert all(replaced(pool, other) for other in others)
    for other in others:
        other.close()

    # The server stays read-only: connections opened since go one by one.
    fresh = opened(pool, 3)
    refuse(pool, fresh[0], READ_ONLY)
    assert not any(replaced(pool, other) for other in fresh[1:])
    refuse(pool, fresh[1], READ_ONLY)
    assert not replaced(pool, fresh[2])


def test_once_the_interval_passed_a_refusal_replaces_the_pool_again(
        pool: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "READ_ONLY_REPLACEMENT_INTERVAL", 0.2)
    first = opened(pool, 1)[0]
    refuse(pool, first, READ_ONLY)
    fresh = opened(pool, 3)
    refuse(pool, fresh[0], READ_ONLY)
    assert not replaced(pool, fresh[1])
    time.sleep(0.2)
    # A failover during the spell: what was opened during it is on the old server.
    refuse(pool, fresh[1], READ_ONLY)
    assert replaced(pool, fresh[2])


def test_a_lost_connection_always_replaces_the_pool(pool: Pool) -> None:
    first = opened(pool, 1)[0]
    refuse(pool, first, READ_ONLY)
    fresh = opened(pool, 2)
    refuse(pool, fresh[0], LOST)  # a restart closed them all
    assert replaced(pool, fresh[1])


def test_refusals_at_once_in_many_threads_close_only_their_connections(pool: Pool) -> None:
    """The API's and CloudKitty's threads, each refused on its own connection."""
    refuse(pool, opened(pool, 1)[0], READ_ONLY)
    fresh = opened(pool, 8)
    bystander = opened(pool, 1)[0]
    start = threading.Barrier(len(fresh))

    def refused(connection: Any) -> None:
        start.wait()
        pool._invalidate(connection, READ_ONLY)

    threads = [threading.Thread(target=refused, args=(c,)) for c in fresh]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not any(c.is_valid for c in fresh)
    assert not replaced(pool, bystander)
    assert bystander.is_valid


def test_the_pool_logs_under_sqlalchemys_name_so_a_debug_log_stays_readable(
        pool: Pool, caplog: pytest.LogCaptureFixture) -> None:
    """A process logging at DEBUG (oslo.log's ``debug = True`` in cloudkitty.conf) keeps
    SQLAlchemy's loggers at WARNING (``sqlalchemy=WARN``, and SQLAlchemy's own default).
    Named after its own module, the pool's checkout lines escaped that: four DEBUG
    lines for every transaction of the CloudKitty processor."""
    with caplog.at_level(logging.DEBUG):
        for _ in range(3):
            pool.connect().close()
    assert [r for r in caplog.records if "pool" in r.name.lower()] == []
