"""Engines with the settings a shared ledger needs on each backend.

A leaf of the ledger: :mod:`migration` and :mod:`database` both build on it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.i18n import _
from ovh_credit_plugin.ledger import bulk

#: Execution option of a read-only transaction (SQLite then starts a plain BEGIN).
READ_ONLY_OPTION = "ovh_credit_read_only"

# What a server answers a write it refuses because it serves no writes now: a
# PostgreSQL hot standby, or a primary a failover demoted, 25006
# read_only_sql_transaction; MariaDB/MySQL with read_only or super_read_only on
# (a replica, a demoted primary: an Aurora or RDS failover, Orchestrator)
# 1290, and 1792 in a transaction a session or a proxy made READ ONLY. 1290
# also says that another server option forbids a statement (secure_file_priv,
# skip-grant-tables), for statements the ledger never runs. MariaDB started
# with innodb_read_only (a read-only instance on shared storage, a replica
# started so) answers every write 1036 ER_OPEN_AS_READONLY "Table '...' is
# read only" (MariaDB 10.11; 1836 ER_READ_ONLY_MODE comes with it as a
# warning), and 1874 ER_INNODB_READ_ONLY or 1836 may come as the error: that
# lasts until the server restarts without the option, yet a new connection
# may still reach a writable server when the address moved (a failover), so
# it is handled as 1290 is. The ledger's tables are InnoDB only: 1036 on them
# says the server cannot write them. The plugin starts no READ ONLY
# transaction of its own on these servers (READ_ONLY_OPTION only changes
# SQLite's BEGIN): none of these is its code's doing.
_READ_ONLY_SQLSTATES = frozenset({"25006"})
_READ_ONLY_MYSQL_CODES = frozenset({1290, 1792, 1036, 1836, 1874})


def driver_code(driver_error: BaseException | None) -> str | int | None:
    """A driver error's code: MySQL/MariaDB's error number, PostgreSQL's SQLSTATE (a str).

    The number first: PyMySQL gives its errors the server's SQLSTATE too, and
    MySQL's are coarse (HY000 for most, 1290 among them; 40001 for a 1213
    deadlock, a PostgreSQL serialization failure's code).
    """
    args = getattr(driver_error, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    sqlstate = getattr(driver_error, "sqlstate", None) or getattr(driver_error, "pgcode", None)
    return str(sqlstate) if sqlstate else None


def refused_as_read_only(driver_error: BaseException | None) -> bool:
    """Whether the server refused a write because it serves reads only (see above)."""
    code = driver_code(driver_error)
    return code in _READ_ONLY_SQLSTATES or code in _READ_ONLY_MYSQL_CODES


def create_engine(
    url: str,
    *,
    pool_size: int = 5,
    max_overflow: int = 10,
    pool_recycle: int = 3600,
    sqlite_busy_timeout: int = 30,
) -> Engine:
    """An engine with the settings a shared ledger needs on each backend."""
    try:
        parsed = sa.make_url(url)
    except (exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        # The URL as written, its password hidden: error messages end up in logs.
        raise exceptions.ConfigError(_("invalid [cloud_credit] connection URL: %(url)r")
                                     % {"url": _password_hidden(url)}) from None
    if parsed.get_backend_name() == "postgres":
        # SQLAlchemy dropped this alias (and its own error says only "Can't load plugin").
        raise exceptions.ConfigError(
            _("[cloud_credit] connection %(url)s: write postgresql+psycopg:// instead of "
              "%(drivername)s://")
            % {"url": shown(parsed), "drivername": parsed.drivername}
        )
    charset = parsed.query.get("charset")
    if (parsed.get_backend_name() == "mysql" and isinstance(charset, str)
            and charset.lower() in ("utf8", "utf8mb3")):
        # MySQL's 3-byte "utf8", which deployment tools write in a host's own URL
        # (OpenStack-Ansible, devstack: CloudKitty's [database] connection, the
        # ledger's inside CloudKitty). The ledger's columns are utf8mb4: over it
        # the server refuses any character outside the BMP (error 1366: a void
        # reason, a voucher description with an emoji, and the request fails).
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(
            parsed, connect_args={"timeout": sqlite_busy_timeout}, pool_pre_ping=False,
            hide_parameters=True,
        )
        _configure_sqlite(engine, busy_timeout=sqlite_busy_timeout)
        _one_process_per_connection(engine)
        return engine
    try:
        engine = sa.create_engine(
            parsed,
            # A statement's values stay out of its errors' text, which hosts log
            # with their tracebacks: a voucher code is one (a credit's source,
            # an activation's key), and codes are masked in logs.
            hide_parameters=True,
            poolclass=_ReadOnlyAwarePool,
            pool_size=pool_size,
            max_overflow=max_overflow,
            # SQLAlchemy's 0 replaces the connection at every checkout (a reconnect
            # per transaction); an operator writing 0 means "never", as -1 does.
            pool_recycle=pool_recycle if pool_recycle > 0 else -1,
            # No ping at checkout: it is a round trip before every transaction
            # (0.2-0.3 ms of an online invoice on loopback PostgreSQL,
            # docs/performance.md), and Database retries every read and write
            # whole on a fresh connection when the pooled one turns out dead.
            pool_pre_ping=False,
            # READ COMMITTED on purpose, the same on both servers. No decision
            # rests on a snapshot: whatever a write depends on is read with a
            # row lock (SELECT ... FOR UPDATE on credits, orders, settlements,
            # in id order), which sees the latest committed row at any level,
            # or is guarded by a unique constraint (an insert race fails and
            # is retried). MariaDB's default REPEATABLE READ would add gap
            # locks on those range scans (blocking a concurrent payment's new
            # credit, more deadlocks); PostgreSQL's REPEATABLE READ would turn
            # every wait on a locked row into a 40001 retry. A transaction that
            # must count before it inserts asks for SERIALIZABLE (write()).
            isolation_level="READ COMMITTED",
        )
    except (exc.NoSuchModuleError, ModuleNotFoundError) as error:
        hint = (_(" (the [postgresql] extra installs psycopg 3: write postgresql+psycopg://)")
                if parsed.get_backend_name() == "postgresql" else "")
        raise exceptions.ConfigError(
            _("no driver for %(drivername)r: install ovh-credit-plugin[postgresql] or "
              "[mysql] (%(error)s)%(hint)s")
            % {"drivername": parsed.drivername, "error": error, "hint": hint}
        ) from None
    _read_only_is_a_lost_connection(engine)
    _one_process_per_connection(engine)
    return engine


def _one_process_per_connection(engine: Engine) -> None:
    """A pooled connection is used only by the process that opened it.

    A process forked with connections in the pool (uWSGI loads the application
    in its master, then forks its workers, and runs no ``os.register_at_fork``
    hook in them) would share their sockets with its parent and siblings: one
    would read another's answers. Nothing of ours opens a connection before a
    host forks today; this keeps it so if anything ever does. At checkout, a
    connection another process opened is let go without closing it (closing
    would end the parent's session) and a new one is opened: oslo.db's process
    guard, SQLAlchemy's recipe for os.fork().
    """
    @event.listens_for(engine, "connect")
    def _opened_by(_dbapi_connection: Any, record: Any) -> None:
        record.info["pid"] = os.getpid()

    @event.listens_for(engine, "checkout")
    def _only_by_its_process(_dbapi_connection: Any, record: Any, proxy: Any) -> None:
        opened_by = record.info.setdefault("pid", os.getpid())
        if opened_by != os.getpid():
            record.dbapi_connection = proxy.dbapi_connection = None
            raise exc.DisconnectionError(
                f"connection opened by process {opened_by}, checked out by {os.getpid()}")


#: Seconds during which a connection refused as read-only, opened since the pool
#: was last replaced, closes alone: the pool is replaced at most this often.
READ_ONLY_REPLACEMENT_INTERVAL = 1.0


class _ReadOnlyAwarePool(QueuePool):
    """A QueuePool that does not replace itself at every write a read-only server refuses.

    A connection the server refused as read-only is closed, as a lost one is
    (see :func:`_read_only_is_a_lost_connection`). SQLAlchemy then also marks
    every connection the pool opened before it for replacement at its next
    checkout (``Pool._invalidate``: ``_invalidate_time``), which after a
    failover is right: they all went to the old server. While the server
    stays read-only, though, each refused write marked them all again, and
    nearly every transaction of every thread opened a new connection (4
    threads, 100 writes refused twice each and 200 reads: 308 connections on
    PostgreSQL, 108 beyond the 200 the refused attempts closed). So within
    ``READ_ONLY_REPLACEMENT_INTERVAL`` of the last replacement, a refused
    connection opened since then closes alone: the connections opened around
    it went to the same address, and each one the server refuses goes in
    turn. Later, the first refusal replaces them all
    again, so that a failover after a read-only spell (the connections opened
    during it sit on the old server) costs one retry, as the first one did.

    ``Pool._invalidate`` is what SQLAlchemy's statements and the ledger's
    driver-cursor statements (``bulk.driver_error``) call on a lost
    connection. A subclass rather than a patched instance: ``Engine.dispose``
    recreates the pool through its class. Lost connections keep SQLAlchemy's
    behaviour.
    """

    # SQLAlchemy names a pool's logger after its class: under our module's name, its
    # DEBUG lines (four per checkout) escaped the "sqlalchemy" logger's WARNING level
    # that hosts set (oslo.log's sqlalchemy=WARN) and flooded a debug log.
    _sqla_logger_namespace = "sqlalchemy.pool.impl.QueuePool"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Threads of the API, CloudKitty's workers: one decision at a time, so
        # that two refusals at once replace the pool once. Held for no I/O.
        self._replacement_lock = threading.Lock()
        self._replaced_at: float | None = None  # time.monotonic() of the last replacement

    def _invalidate(self, connection: Any, exception: BaseException | None = None,
                    _checkin: bool = True) -> None:
        with self._replacement_lock:
            record = getattr(connection, "_connection_record", None)
            now = time.monotonic()
            # SQLAlchemy's clock: wall time, as its records' start times.
            since_replacement = (record is not None
                                 and record.starttime > self._invalidate_time)
            alone = (since_replacement and refused_as_read_only(exception)
                     and self._replaced_at is not None
                     and now - self._replaced_at < READ_ONLY_REPLACEMENT_INTERVAL)
            if not alone:
                replaced = self._invalidate_time
                super()._invalidate(connection, exception, _checkin=False)
                if self._invalidate_time != replaced:
                    self._replaced_at = now
        # As Pool._invalidate does; closing is I/O, out of the lock.
        if _checkin and getattr(connection, "is_valid", False):
            connection.invalidate(exception)


def _read_only_is_a_lost_connection(engine: Engine) -> None:
    """Make ``engine`` drop its connections when the server refuses writes as read-only.

    After a failover, a pooled connection still open on the demoted primary,
    or one that reached a standby through a stale address (DNS, a proxy), is
    on a server that will not take writes again: once the address leads to the
    new primary, only a new connection can write (so too a session whose
    ``default_transaction_read_only`` or ``SET SESSION TRANSACTION READ ONLY``
    was fixed when it started). So the error is handled as a lost connection
    is: this connection closed, and every connection the pool opened before
    it replaced at its next checkout (they went to the same server; at most
    once per ``READ_ONLY_REPLACEMENT_INTERVAL``, :class:`_ReadOnlyAwarePool`);
    then ``Database`` retries the transaction on a new connection
    (``is_retryable``: ``connection_invalidated``), which succeeds as soon as
    the address leads to a writable server. The server refused the statement,
    nothing was written: the retry cannot apply anything twice. A server that
    stays read-only costs a reconnect per refused attempt, and the API answers
    503 once they ran out.

    Through the dialect's ``is_disconnect``, not a ``handle_error`` listener:
    that event only sees the statements SQLAlchemy runs, while the ledger's
    hot writes run on the driver's cursor (``bulk.driver_error``), which asks
    the dialect directly. The dialect is this engine's own instance.
    """
    dialect = engine.dialect
    lost = dialect.is_disconnect

    def is_disconnect(error: Any, connection: Any, cursor: Any) -> bool:
        return bool(lost(error, connection, cursor)) or refused_as_read_only(error)

    dialect.is_disconnect = is_disconnect  # type: ignore[method-assign, assignment]


def shown(url: str | sa.URL) -> str:
    """The URL as an operator may read it: the password hidden."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except (exc.ArgumentError, ValueError):
        return "<invalid URL>"


def _password_hidden(text: str) -> str:
    """``text``, a URL SQLAlchemy cannot parse, with what may be a password masked.

    Everything between the first ``:`` of the user part (after ``//`` when
    there is one) and the last ``@``: more than the password when the URL is
    mangled, never less.
    """
    at = text.rfind("@")
    if at < 0:
        return text
    slashes = text.find("//", 0, at)
    start = slashes + 2 if slashes >= 0 else 0
    colon = text.find(":", start, at)
    if colon < 0:
        return text
    return f"{text[:colon + 1]}***{text[at:]}"


def describe_error(url: str | sa.URL, error: BaseException) -> str:
    """One line naming the ledger database, what failed, and why when it can be told."""
    detail = str(getattr(error, "orig", None) or error).splitlines()[0]
    cause = sqlite_cause(url)
    return f"ledger database {shown(url)}: {detail}" + (f" ({cause})" if cause else "")


def sqlite_cause(url: str | sa.URL) -> str | None:
    """What keeps a SQLite ledger file from being opened or written, if anything."""
    try:
        parsed = sa.make_url(url)
    except (exc.ArgumentError, ValueError):
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    if str(parsed.query.get("mode", "")) == "ro":
        return "the URL asks for mode=ro"
    database = parsed.database
    if str(parsed.query.get("uri", "")).lower() in ("true", "1"):
        database = database.removeprefix("file:")
    path = Path(database).expanduser()
    folder = path.absolute().parent
    if not folder.is_dir():
        return f"directory {folder} does not exist"
    if path.exists():
        if not os.access(path, os.R_OK):
            return f"no permission to read {path}"
        if not os.access(path, os.W_OK):
            return f"{path} is read-only"
    # SQLite writes its journal (WAL) next to the file, and creates the file there.
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"no permission to write in directory {folder}"
    return None


#: Seconds between two tries to switch a locked database to WAL.
_WAL_PAUSE = 0.05


def _wal(cursor: Any, busy_timeout: int) -> None:
    """``PRAGMA journal_mode=WAL``, waiting up to ``busy_timeout`` for a lock.

    A database still in rollback-journal mode (a file another program made,
    the ledger's first connection) cannot switch while another connection
    writes to it, and SQLite answers "database is locked" at once there,
    without its busy handler: the wait that every other statement gets is
    given here, so that ``sqlite_busy_timeout`` (and ``db upgrade
    --lock-timeout``) mean the same for the first connection too. A WAL
    database (every ledger after its first connection) answers at once.
    """
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
            time.sleep(_WAL_PAUSE)


def _configure_sqlite(engine: Engine, *, busy_timeout: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if engine.url.database not in (None, "", ":memory:"):
                _wal(cursor, busy_timeout)
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout) * 1000}")
            cursor.execute("PRAGMA foreign_keys=ON")
            # A ledger commit survives power loss, not only a crash.
            cursor.execute("PRAGMA synchronous=FULL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front: a deferred transaction that
        # read first could not upgrade without a busy error, and a read
        # followed by a write would otherwise race another writer.
        if conn.get_execution_options().get(READ_ONLY_OPTION):
            bulk.driver_sql(conn, "BEGIN")
        else:
            bulk.driver_sql(conn, "BEGIN IMMEDIATE")
