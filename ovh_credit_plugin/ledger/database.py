"""Engines and transactions: BEGIN IMMEDIATE on SQLite, whole-transaction retries.

Every write runs as a function of a connection, in one transaction, retried
whole on the errors concurrent writers cause (deadlocks, serialization
failures, a busy SQLite, a connection lost mid-way). Nothing half-applied
survives: a failed attempt rolls back before the next one starts. Reads are
retried the same way, so that a connection lost while it sat in the pool
costs a retry, never an error.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import exc
from sqlalchemy.engine import Connection, Engine

from ovh_credit_plugin import money
from ovh_credit_plugin.ledger import bulk, migration
from ovh_credit_plugin.ledger.engine import (
    READ_ONLY_OPTION,
    create_engine,
    driver_code,
    refused_as_read_only,
)

__all__ = ["READ_ONLY_OPTION", "Database", "create_engine", "describe_failure",
           "is_canceled", "is_retryable"]

LOG = logging.getLogger(__name__)
T = TypeVar("T")

#: Seconds a process works on the ledger revision it read before reading it again: a
#: long-running one (a CloudKitty processor, an API worker) left running across a
#: later release's ``db upgrade`` stops writing within that time, told to restart
#: (:func:`migration.check_unchanged`). One read a minute, not one per transaction
#: (online settlement).
SCHEMA_RECHECK_SECONDS = 60.0

# PostgreSQL: serialization_failure, deadlock_detected, lock_not_available (an
# operator's lock_timeout ran out: as MariaDB's 1205 lock wait timeout).
_PG_RETRY_SQLSTATES = frozenset({"40001", "40P01", "55P03"})
# MySQL/MariaDB, and what a Galera node answers when a transaction loses a
# certification conflict or the node cannot serve it right now: 1213 deadlock
# (Galera: "WSREP detected deadlock/conflict"), 1205 lock wait timeout, 1020
# record changed since last read, 1180 error during COMMIT (Galera: the node
# left the primary component while committing), 1047 WSREP has not yet
# prepared node for application use (the node is joining or not in the
# primary component). Each reports the transaction as not committed.
_MYSQL_RETRY_CODES = frozenset({1213, 1205, 1020, 1180, 1047})
# The client lost its connection (server gone away, lost during query): the
# server or Galera node died, a proxy failed over. SQLAlchemy flags these as
# invalidated connections already; named here so that they are retried
# however they are wrapped. Lost during a COMMIT, the transaction may have
# committed: the retry is safe only because every write is idempotent on its
# key (docs/operations.md, "Retries and backoff"), which is the rule for
# every function given to Database.write.
_MYSQL_CONNECTION_LOST = frozenset({2006, 2013})
# A statement the server ended before it was done: PostgreSQL 57014
# query_canceled (statement_timeout ran out, or an operator's
# pg_cancel_backend), MariaDB 1969 (max_statement_time), MySQL 3024
# (max_execution_time), 1317 query interrupted (KILL QUERY: an operator,
# pt-kill). Not retried: the server is overloaded or a statement waits on a
# lock held too long, and a retry would run the same statement for as long
# again (eight attempts: eight times the limit a DBA set, as load on a server
# that is already short of it). The caller hears it at once: the API answers
# 503 with Retry-After, CloudKitty rates the period again later. Lock waits
# that end with their own error (lock_timeout's 55P03, 1205) stay retried:
# a lock holder that committed meanwhile lets the retry through.
_PG_CANCELED_SQLSTATES = frozenset({"57014"})
_MYSQL_CANCELED_CODES = frozenset({1969, 3024, 1317})


def is_retryable(error: BaseException) -> bool:
    """True for the errors a retry of the whole transaction can cure."""
    if not isinstance(error, exc.DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    if isinstance(error, exc.IntegrityError):
        # Two writers raced to insert the same unique row (a settlement key,
        # a project, an activation): the retry reads the winner's row and
        # replays. A constraint broken for any other reason fails again and
        # surfaces once the attempts run out.
        return True
    orig = error.orig
    code = driver_code(orig)
    if code in _PG_RETRY_SQLSTATES or code in _MYSQL_RETRY_CODES or code in _MYSQL_CONNECTION_LOST:
        return True
    if refused_as_read_only(orig):
        # A standby or a demoted primary (engine.py): the engine's connections
        # are invalidated already, and the retry runs on a new one. Named here
        # too so that it is retried however the error was wrapped.
        return True
    message = str(orig).lower()
    return "database is locked" in message or "database table is locked" in message


def is_canceled(error: BaseException) -> bool:
    """True for a statement the server canceled before it was done: a time limit
    (statement_timeout, max_statement_time, max_execution_time) or an operator.

    Not retried (see ``_PG_CANCELED_SQLSTATES``); an overload, not a bug.
    """
    if not isinstance(error, exc.DBAPIError):
        return False
    code = driver_code(error.orig)
    return code in _PG_CANCELED_SQLSTATES or code in _MYSQL_CANCELED_CODES


# What a log line calls each error, by its code: the retried ones, and those
# the API answers 503 for.
_CAUSES: dict[str | int, str] = {
    "40001": "serialization failure", "40P01": "deadlock", "55P03": "lock not available",
    1213: "deadlock or Galera certification conflict", 1205: "lock wait timeout",
    1020: "record changed since last read", 1180: "error during COMMIT",
    1047: "Galera node not ready", 2006: "server has gone away",
    2013: "connection lost during query",
    "25006": "read-only transaction (a standby, or a primary demoted by a failover)",
    1290: "server is read-only (a replica, or a primary demoted by a failover)",
    1792: "read-only transaction",
    1036: "table is read only (innodb_read_only: until the server restarts without it)",
    1836: "running in read-only mode",
    1874: "InnoDB is in read only mode (innodb_read_only: until the server restarts "
          "without it)",
    "57014": "statement canceled (statement_timeout, or an operator)",
    1969: "max_statement_time exceeded", 3024: "max_execution_time exceeded",
    1317: "query interrupted (KILL QUERY)",
    # PostgreSQL going away under a transaction (retried as a lost connection).
    "57P01": "server shut down the connection (a restart, a failover, or an operator)",
    "57P02": "server crashed",
    "57P03": "server not accepting connections yet (starting up or shutting down)",
    "08006": "connection failure", "08003": "connection does not exist",
}


def describe_failure(error: BaseException) -> str:
    """What failed, in a few words for a log line.

    A database error by its class and code, never its whole text: that
    quotes the statement's values (MySQL's duplicate-key error, and
    SQLAlchemy's own text when an engine shows parameters), among them a
    voucher code. SQLite's messages name tables and columns only, and say
    what no code does ("database is locked"). Anything else by its class and
    first line (the plugin's messages mask codes).
    """
    name = type(error).__name__
    if not isinstance(error, exc.DBAPIError):
        first = (str(error).splitlines() or [""])[0][:300]
        return f"{name}: {first}" if first else name
    orig = error.orig
    code = driver_code(orig)
    if code is not None:
        known = _CAUSES.get(code)
        label = f"SQLSTATE {code}" if isinstance(code, str) else f"error {code}"
        return f"{name} {label}: {known}" if known else f"{name} {label}"
    if type(orig).__module__ == "sqlite3":
        first = (str(orig).splitlines() or [""])[0][:200]
        return f"{name}: {first}" if first else name
    return f"{name}: connection lost" if error.connection_invalidated else name


class Database:
    """Runs functions of a connection in retried transactions."""

    def __init__(self, engine: Engine, *, max_attempts: int = 8) -> None:
        self.engine = engine
        self.max_attempts = max_attempts
        self._schema_checked_until = float("-inf")

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def write(
        self, work: Callable[[Connection], T], *, isolation_level: str | None = None
    ) -> T:
        """Run ``work`` in one write transaction, retried whole on contention.

        ``isolation_level="SERIALIZABLE"`` is for a transaction whose decision
        rests on rows that may not exist yet (a count checked before an
        insert): PostgreSQL and MariaDB then refuse the second of two racing
        writers (serialization failure, deadlock), and the retry sees the
        first. SQLite writers are serialized already.
        """
        return self._retried(lambda: self._transaction(work, isolation_level, read_only=False))

    def read(
        self, work: Callable[[Connection], T], *, isolation_level: str | None = None
    ) -> T:
        """Run ``work`` in one read-only transaction.

        Under READ COMMITTED each statement sees what was committed before it
        started. ``isolation_level="REPEATABLE READ"`` makes all statements of
        ``work`` read one snapshot on PostgreSQL and MariaDB (as SQLite read
        transactions always do): for reads that must agree with each other
        while writers commit, like the audit.

        Retried like a write: a pooled connection that the server, a proxy or
        a failover closed fails the first statement, and the read is run
        again on a fresh one (the pool does not ping at checkout, see
        :func:`create_engine`).
        """
        return self._retried(lambda: self._transaction(work, isolation_level, read_only=True))

    def read_statement(self, work: Callable[[Connection], T]) -> T:
        """Run ``work``, a read of one statement, on a pooled connection and in no transaction.

        One statement reads one snapshot on every backend: a BEGIN and a
        COMMIT around it would change nothing but its cost (on SQLite, through
        SQLAlchemy, about that of the statement itself). For the hottest read,
        a project's credits (:func:`~ovh_credit_plugin.ledger.credits.project_rows`).
        Retried like :meth:`read`.
        """
        def once() -> T:
            with money.exact(), self.engine.connect() as conn:
                return work(conn)

        return self._retried(once)

    def _transaction(self, work: Callable[[Connection], T], isolation_level: str | None, *,
                     read_only: bool) -> T:
        with money.exact(), self._begin(isolation_level, read_only=read_only) as conn:
            return work(conn)

    def _retried(self, run_once: Callable[[], T]) -> T:
        """``run_once()`` until it succeeds, fails for good, or max_attempts ran out.

        A plain loop rather than a tenacity.Retrying built per call: its
        objects cost 12-55 us per transaction (a quiet or a loaded machine,
        docs/performance.md), paid by every online invoice. The same policy:
        the error re-raised as it is, full-jitter exponential backoff from
        10 ms, at most 2 s.
        """
        if self._schema_checked_until == float("-inf"):
            # The first read: a ledger that is not there, or not at this code's
            # revision, fails at once (a command line says so in one line).
            self.ensure_schema()
        attempt = 1
        while True:
            try:
                # Later reads, once a minute, are retried as the transaction is.
                self.ensure_schema()
                return run_once()
            except Exception as error:
                if not is_retryable(error):
                    raise
                if attempt >= self.max_attempts:
                    # The caller logs the error itself; what only this loop
                    # knows is that the retries ran out (a hot row, a node
                    # down, a SQLite writer holding the lock), not a one-off.
                    LOG.warning("ledger transaction gave up after %d attempt(s) (%s): "
                                "[cloud_credit] max_transaction_attempts ran out",
                                attempt, describe_failure(error))
                    raise
                LOG.warning("ledger transaction attempt %d of %d failed (%s); retrying",
                            attempt, self.max_attempts, describe_failure(error))
                time.sleep(random.uniform(0, min(2.0, 0.01 * 2 ** (attempt - 1))))  # noqa: S311
                attempt += 1

    @contextmanager
    def _begin(self, isolation_level: str | None, *, read_only: bool) -> Iterator[Connection]:
        if not read_only and (isolation_level is None or self.dialect == "sqlite"):
            with self.engine.begin() as conn:  # every settlement: the shortest way
                yield conn
            return
        with self.engine.connect() as conn:
            if read_only:  # SQLite then starts a plain BEGIN (engine.py)
                conn.execution_options(**{READ_ONLY_OPTION: True})
            if isolation_level is not None and self.dialect != "sqlite":
                # The pool resets the connection's isolation level when it is returned.
                _set_isolation_level(conn, isolation_level)
            with conn.begin():
                yield conn

    def ensure_schema(self) -> None:
        now = time.monotonic()
        if now < self._schema_checked_until:
            return
        if self._schema_checked_until == float("-inf"):
            migration.check_current(self.engine)
        else:
            migration.check_unchanged(self.engine)
        self._schema_checked_until = now + SCHEMA_RECHECK_SECONDS

    def dispose(self) -> None:
        self.engine.dispose()


def _set_isolation_level(conn: Connection, level: str) -> None:
    """Set ``level`` for the connection's transaction; a driver error fails as a statement's.

    SQLAlchemy sets the level on the driver's connection outside of its
    statement handling. On MariaDB that is a SET statement, the first thing
    sent on a connection fresh from the pool: when the server closed it
    meanwhile, the driver's own error would come out, which
    :func:`is_retryable` does not know, and the dead connection would go
    back to the pool.
    """
    try:
        conn.execution_options(isolation_level=level)
    except conn.dialect.loaded_dbapi.Error as error:
        statement = f"SET TRANSACTION ISOLATION LEVEL {level}"  # what the error names
        raise bulk.driver_error(conn, error, statement, None) from error
