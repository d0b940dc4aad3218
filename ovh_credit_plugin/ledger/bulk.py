"""executemany on the driver, for the ledger's hot writes.

SQLAlchemy's executemany builds, and runs every type processor on, one
parameter dict per row; on the ledger's hot writes (entries, balances,
settlements: tens of thousands of rows in a month-end batch) that was most
of the cost. These helpers compile a Core statement once per dialect and
hand the driver rows whose values are already in driver form, converted
with the columns' own bind processors, so what is stored is exactly what
SQLAlchemy would have stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
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


def executemany(
    conn: Connection, statement: Any, names: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """``statement`` (a module-level Core statement) run once per row of driver values.

    ``names`` are the statement's bind names (column names for an INSERT),
    in the order of each row's values.
    """
    dialect = conn.dialect
    key = (dialect.name, str(dialect.paramstyle), id(statement), tuple(names))
    found = _COMPILED.get(key)
    if found is None:
        compiled = statement.compile(
            dialect=dialect, column_keys=list(names), for_executemany=True
        )
        order = compiled.positiontup
        found = (
            compiled.string,
            None if order is None else tuple(names.index(name) for name in order),
        )
        _COMPILED[key] = found
    sql, order = found
    if order is None:
        params: list[Any] = [dict(zip(names, row, strict=True)) for row in rows]
    elif order == tuple(range(len(names))):
        params = list(rows)
    else:
        params = [tuple(row[i] for i in order) for row in rows]
    conn.exec_driver_sql(sql, params)
