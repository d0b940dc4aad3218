"""Statements on the driver's cursor, for the ledger's hot paths.

SQLAlchemy's executemany builds, and runs every type processor on, one
parameter dict per row; on the ledger's hot writes (entries, balances,
settlements: tens of thousands of rows in a month-end batch) that was most
of the cost. These helpers compile a Core statement once per dialect and
hand the driver rows whose values are already in driver form, converted
with the columns' own bind processors, so what is stored is exactly what
SQLAlchemy would have stored.

Both :func:`executemany` and :func:`fetchall` (the hottest reads: a
settlement's key and its project's open credits, a project's credits for
every ``GET credits``) run on the connection's driver cursor, without
SQLAlchemy's execution context around each statement: ~25-45 us each on
SQLite, about what the driver itself takes (docs/performance.md). What that
context gives is kept: the cursor events (``before_cursor_execute`` and
``after_cursor_execute``, without a context) and driver errors raised as
SQLAlchemy's, the connection invalidated when lost (:func:`driver_error`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Connection

_COMPILED: dict[tuple[str, str, int, tuple[str, ...]], tuple[str, tuple[int, ...] | None]] = {}
_PROCESSORS: dict[tuple[str, sa.Column[Any]], Callable[[Any], Any]] = {}


def _identity(value: Any) -> Any:
    return value


def driver_value(conn: Connection, column: sa.Column[Any]) -> Callable[[Any], Any]:
    """The function that turns a Python value for ``column`` into what the driver takes."""
    dialect = conn.dialect
    key = (dialect.name, column)
    found = _PROCESSORS.get(key)
    if found is None:
        processor = column.type.dialect_impl(dialect).bind_processor(dialect)
        found = _PROCESSORS[key] = processor or _identity
    return found


def _compiled(conn: Connection, statement: Any, names: Sequence[str], *, many: bool
              ) -> tuple[str, tuple[int, ...] | None]:
    """The statement's SQL on this dialect, and the place of each of ``names`` in its binds.

    No places (None) when the driver takes named values (a dict).
    """
    dialect = conn.dialect
    key = (dialect.name, str(dialect.paramstyle), id(statement), tuple(names))
    found = _COMPILED.get(key)
    if found is None:
        compiled = statement.compile(
            dialect=dialect, column_keys=list(names) if many else None, for_executemany=many
        )
        order = compiled.positiontup
        found = (
            compiled.string,
            None if order is None else tuple(names.index(name) for name in order),
        )
        _COMPILED[key] = found
    return found


def executemany(
    conn: Connection, statement: Any, names: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """``statement`` (a module-level Core statement) run once per row of driver values.

    ``names`` are the statement's bind names (column names for an INSERT),
    in the order of each row's values. Runs in ``conn``'s transaction.
    """
    sql, order = _compiled(conn, statement, names, many=True)
    if order is None:
        params: list[Any] = [dict(zip(names, row, strict=True)) for row in rows]
    elif order == tuple(range(len(names))):
        params = list(rows)
    else:
        params = [tuple(row[i] for i in order) for row in rows]
    _on_cursor(conn, sql, params, many=True)


def fetchall(conn: Connection, statement: Any, params: dict[str, Any]) -> list[Sequence[Any]]:
    """The rows of ``statement`` (a module-level SELECT), as the driver gives them.

    Runs in ``conn``'s transaction if it has begun one; else on its own (one
    statement reads one snapshot on every backend). ``params`` are driver
    values.
    """
    names = tuple(params)
    sql, order = _compiled(conn, statement, names, many=False)
    values: Any = params if order is None else tuple(params[names[i]] for i in order)
    return _on_cursor(conn, sql, values, many=False)


def driver_sql(conn: Connection, sql: str) -> None:
    """``sql``, a fixed text without parameters (SQLite's ``BEGIN IMMEDIATE``), on the
    driver's cursor: every SQLite transaction's first statement, ~5 us cheaper so."""
    _on_cursor(conn, sql, (), many=False)


def _on_cursor(conn: Connection, sql: str, values: Any, *, many: bool) -> list[Sequence[Any]]:
    """``sql`` on the driver's cursor, with SQLAlchemy's cursor events around it.

    The events' listeners get no execution context (None), and a
    ``retval=True`` listener cannot change the statement (none of ours is one).
    Rows are fetched only for a single execution.
    """
    dispatch = conn.dispatch
    dbapi_error = conn.dialect.loaded_dbapi.Error
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if dispatch.before_cursor_execute:
            dispatch.before_cursor_execute(conn, cursor, sql, values, None, many)
        if many:
            cursor.executemany(sql, values)
            rows: list[Sequence[Any]] = []
        else:
            cursor.execute(sql, values)
            rows = list(cursor.fetchall())
        if dispatch.after_cursor_execute:
            dispatch.after_cursor_execute(conn, cursor, sql, values, None, many)
        return rows
    except dbapi_error as error:
        raise driver_error(conn, error, sql, values) from error
    finally:
        # On a connection the error above lost (and invalidated), close fails too.
        with contextlib.suppress(dbapi_error):
            cursor.close()


def driver_error(conn: Connection, error: Any, statement: str, params: Any
                 ) -> exc.StatementError:
    """A driver's ``error`` on ``conn``, as SQLAlchemy raises a statement's.

    Wrapped in its :class:`~sqlalchemy.exc.DBAPIError` subclass (what
    ``Database`` retries on). When the error says the connection is lost,
    ``conn`` is invalidated (it does not go back to the pool) and so is every
    connection the pool opened before it, as SQLAlchemy does for its own
    statements: a server restart or a failover closed them all, and a retry
    on the next one would only fail again (a pool of eight dead connections
    used up ``Database``'s attempts).
    """
    dialect = conn.dialect
    lost = dialect.is_disconnect(error, conn.connection.dbapi_connection, None)
    if lost:
        # What Connection._handle_dbapi_exception calls; the pool has no public
        # way to replace a generation of connections but dispose(), which would
        # also close those opened since by other threads' retries.
        conn.engine.pool._invalidate(conn.connection, error)
        conn.invalidate(error)
    return exc.DBAPIError.instance(  # type: ignore[no-any-return]
        statement, params, error, dialect.loaded_dbapi.Error,
        # As the engine's own statements' errors (create_engine: hide_parameters).
        hide_parameters=conn.engine.hide_parameters,
        connection_invalidated=lost, dialect=dialect,
    )
