"""Statements on the driver, for the ledger's hot paths.

SQLAlchemy's executemany builds, and runs every type processor on, one
parameter dict per row; on the ledger's hot writes (entries, balances,
settlements: tens of thousands of rows in a month-end batch) that was most
of the cost. These helpers compile a Core statement once per dialect and
hand the driver rows whose values are already in driver form, converted
with the columns' own bind processors, so what is stored is exactly what
SQLAlchemy would have stored.

:func:`fetchall` goes one step further for the hottest read (a project's
credits, every ``GET credits``): the statement on the driver's own cursor,
without SQLAlchemy's execution around it (docs/performance.md). Its driver
errors come out as SQLAlchemy's would (:func:`driver_error`), so that
retries see them the same; statement events (``before_cursor_execute``) do
not see it.
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
    in the order of each row's values.
    """
    sql, order = _compiled(conn, statement, names, many=True)
    if order is None:
        params: list[Any] = [dict(zip(names, row, strict=True)) for row in rows]
    elif order == tuple(range(len(names))):
        params = list(rows)
    else:
        params = [tuple(row[i] for i in order) for row in rows]
    conn.exec_driver_sql(sql, params)


def fetchall(conn: Connection, statement: Any, params: dict[str, Any]) -> list[Sequence[Any]]:
    """The rows of ``statement`` (a module-level SELECT), as the driver gives them.

    Runs in ``conn``'s transaction if it has begun one; else on its own (one
    statement reads one snapshot on every backend). ``params`` are driver
    values.
    """
    names = tuple(params)
    sql, order = _compiled(conn, statement, names, many=False)
    values: Any = params if order is None else tuple(params[names[i]] for i in order)
    dbapi_error = conn.dialect.loaded_dbapi.Error
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, values)
        return list(cursor.fetchall())
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
    ``Database`` retries on), and ``conn`` invalidated when the error says the
    connection is lost, so that it does not go back to the pool.
    """
    dialect = conn.dialect
    lost = dialect.is_disconnect(error, conn.connection.dbapi_connection, None)
    if lost:
        conn.invalidate(error)
    return exc.DBAPIError.instance(  # type: ignore[no-any-return]
        statement, params, error, dialect.loaded_dbapi.Error,
        connection_invalidated=lost, dialect=dialect,
    )
