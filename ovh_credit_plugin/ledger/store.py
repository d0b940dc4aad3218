"""Row-level reads and writes of the ledger, on a connection inside a transaction.

Only :mod:`ovh_credit_plugin.service` calls these; each write keeps a
credit's cached balances and its append-only entries in step.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ovh_credit_plugin import allocation, exceptions, models, money
from ovh_credit_plugin.ledger import schema, types

ZERO = money.ZERO
_C = schema.credits.c


@dataclass(slots=True)
class CreditRow:
    """A credit's balances as read in this transaction, changed in memory, then written."""

    id: int
    project_id: str
    kind: str
    currency: str
    products: frozenset[str]
    total: Decimal
    used: Decimal
    expired: Decimal
    voided: Decimal
    available: Decimal
    valid_from: dt.datetime
    valid_until: dt.datetime | None
    created_at: dt.datetime
    voided_at: dt.datetime | None
    dirty: bool = False

    def state(self) -> allocation.CreditState:
        return allocation.CreditState(
            self.id, self.kind, self.available, self.valid_from, self.valid_until,
            self.created_at, self.products,
        )


_BALANCE_COLUMNS = (
    _C.id,
    _C.project_id,
    _C.kind,
    _C.currency,
    _C.products,
    _C.total,
    _C.used,
    _C.expired,
    _C.voided,
    _C.available,
    _C.valid_from,
    _C.valid_until,
    _C.created_at,
    _C.voided_at,
)


_ALL_PRODUCTS: frozenset[str] = frozenset()  # an empty scope: every product


def _credit_row(row: Any) -> CreditRow:
    return CreditRow(
        id=row.id,
        project_id=row.project_id,
        kind=row.kind,
        currency=row.currency,
        products=_ALL_PRODUCTS if row.products == "[]" else frozenset(json.loads(row.products)),
        total=row.total,
        used=row.used,
        expired=row.expired,
        voided=row.voided,
        available=row.available,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        created_at=row.created_at,
        voided_at=row.voided_at,
    )


def lock_open_credits(conn: Connection, project_ids: Iterable[str]) -> dict[str, list[CreditRow]]:
    """Credits of these projects that still hold a balance, locked in id order.

    The fixed lock order (ascending id, one statement) keeps concurrent
    settlements from deadlocking each other on PostgreSQL and MariaDB; SQLite
    already holds the database write lock (BEGIN IMMEDIATE).
    """
    ids = sorted(set(project_ids))
    found: dict[str, list[CreditRow]] = {pid: [] for pid in ids}
    if not ids:
        return found
    if conn.dialect.name in ("mysql", "mariadb"):
        # InnoDB reads the open credits through the (project_id, available)
        # index, which a debit changes. A settlement waiting on a credit that
        # another one is debiting resumes on the old index entry, now gone
        # under READ COMMITTED, and never sees the new one: it would bill an
        # invoice the remaining credit should pay. Settlements of a project
        # queue on its row first (its primary key never changes); the credit
        # read below then starts after the other one committed and sees it.
        # (PostgreSQL re-checks a row it waited for.)
        conn.execute(_LOCK_PROJECTS, {"project_ids": ids}).all()
    query = _OPEN_CREDITS if conn.dialect.name == "sqlite" else _OPEN_CREDITS_LOCKED
    convert = _credit_converter(conn)
    for row in conn.execute(query, {"project_ids": ids}):
        credit = convert(row)
        found[credit.project_id].append(credit)
    return found


# Built once: settling one invoice online runs these on every transaction.
# The columns come back as the driver gives them (no per-value processor
# chain: a month-end batch reads tens of thousands of credits) and are
# converted by _credit_converter, to the same values the column types give.
_OPEN_CREDITS = (
    sa.select(*(sa.type_coerce(c, sa.types.NullType()).label(c.name) for c in _BALANCE_COLUMNS))
    .where(
        _C.project_id.in_(sa.bindparam("project_ids", expanding=True)),
        _C.available > ZERO,
        _C.voided_at.is_(None),
    )
    .order_by(_C.id)
)
_OPEN_CREDITS_LOCKED = _OPEN_CREDITS.with_for_update()
_LOCK_PROJECTS = (
    sa.select(schema.projects.c.id)
    .where(schema.projects.c.id.in_(sa.bindparam("project_ids", expanding=True)))
    .order_by(schema.projects.c.id)
    .with_for_update()
)
_CONVERTERS: dict[str, Callable[[Any], CreditRow]] = {}


def _credit_converter(conn: Connection) -> Callable[[Any], CreditRow]:
    """Raw driver row of _BALANCE_COLUMNS -> CreditRow, for this dialect."""
    dialect = conn.dialect
    found = _CONVERTERS.get(dialect.name)
    if found is not None:
        return found
    amount = types.Money.result_function(dialect)
    moment = types.UTCDateTime.result_function(dialect)
    all_products = _ALL_PRODUCTS
    loads = json.loads

    def convert(row: Any) -> CreditRow:
        (ident, project_id, kind, currency, products, total, used, expired, voided, available,
         valid_from, valid_until, created_at, voided_at) = row
        return CreditRow(
            int(ident), project_id, kind, currency,
            all_products if products == "[]" else frozenset(loads(products)),
            amount(total), amount(used), amount(expired), amount(voided), amount(available),
            moment(valid_from), None if valid_until is None else moment(valid_until),
            moment(created_at), None if voided_at is None else moment(voided_at),
        )

    _CONVERTERS[dialect.name] = convert
    return convert


def lock_credit(conn: Connection, credit_id: int) -> CreditRow:
    query = sa.select(*_BALANCE_COLUMNS).where(_C.id == credit_id)
    if conn.dialect.name != "sqlite":
        query = query.with_for_update()
    row = conn.execute(query).one_or_none()
    if row is None:
        raise exceptions.CreditNotFound(f"no credit {credit_id}")
    return _credit_row(row)


def credits_by_id(conn: Connection, credit_ids: Iterable[int]) -> dict[int, CreditRow]:
    ids = sorted(set(credit_ids))
    if not ids:
        return {}
    query = sa.select(*_BALANCE_COLUMNS).where(_C.id.in_(ids)).order_by(_C.id)
    if conn.dialect.name != "sqlite":
        query = query.with_for_update()
    return {row.id: _credit_row(row) for row in conn.execute(query)}


def write_balances(conn: Connection, credits: Iterable[CreditRow]) -> None:
    """Write the changed balances back (rows are locked by this transaction)."""
    rows = []
    for credit in credits:
        if credit.dirty:
            _check_balances(credit)
            rows.append((credit.id, credit.used, credit.expired, credit.voided, credit.available))
    if rows:
        money_out = driver_value(conn, _C.used)
        executemany(
            conn,
            _UPDATE_BALANCES,
            _BALANCE_BINDS,
            [
                (ident, money_out(used), money_out(expired), money_out(voided),
                 money_out(available))
                for ident, used, expired, voided, available in rows
            ],
        )


_UPDATE_BALANCES = (
    schema.credits.update()
    .where(_C.id == sa.bindparam("b_id"))
    .values(
        used=sa.bindparam("used"),
        expired=sa.bindparam("expired"),
        voided=sa.bindparam("voided"),
        available=sa.bindparam("available"),
    )
)
_BALANCE_BINDS = ("b_id", "used", "expired", "voided", "available")


# -- executemany on the driver --------------------------------------------------
#
# SQLAlchemy's executemany builds, and runs every type processor on, one
# parameter dict per row; on the ledger's hot writes (entries, balances,
# settlements: tens of thousands of rows in a month-end batch) that was most
# of the cost. These helpers compile a Core statement once per dialect and
# hand the driver rows whose values are already in driver form, converted
# with the columns' own bind processors, so what is stored is exactly what
# SQLAlchemy would have stored.

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


def _check_balances(credit: CreditRow) -> None:
    figures = (credit.used, credit.expired, credit.voided, credit.available)
    if any(f < ZERO for f in figures) or sum(figures, ZERO) != credit.total:
        # A bug, never an input problem: refuse to commit a broken ledger.
        raise AssertionError(f"credit {credit.id} balances would break the ledger invariant")


class Entry(NamedTuple):
    credit_id: int
    type: str
    amount: Decimal
    note: str = ""
    settlement_key: str | None = None
    line_id: str | None = None


def insert_entries(conn: Connection, entries: Sequence[Entry], *, at: dt.datetime) -> None:
    if not entries:
        return
    table = schema.ledger_entries
    money_out = driver_value(conn, table.c.amount)
    created_at = driver_value(conn, table.c.created_at)(at)
    executemany(
        conn,
        _INSERT_ENTRY,
        _ENTRY_COLUMNS,
        [
            (e.credit_id, e.type, money_out(e.amount), e.settlement_key, e.line_id, e.note,
             created_at)
            for e in entries
        ],
    )


_INSERT_ENTRY = schema.ledger_entries.insert()
_ENTRY_COLUMNS = ("credit_id", "type", "amount", "settlement_key", "line_id", "note",
                  "created_at")


def ensure_project(
    conn: Connection, project_id: str, currency: str, *, at: dt.datetime
) -> str:
    """The project's currency, fixing it to ``currency`` on first use."""
    found = project_currency(conn, project_id)
    if found is None:
        conn.execute(
            schema.projects.insert().values(id=project_id, currency=currency, created_at=at)
        )
        return currency
    if found != currency:
        raise exceptions.CurrencyMismatch(
            f"project {project_id} bills in {found}, not {currency}: credit is never converted"
        )
    return found


def project_currency(conn: Connection, project_id: str) -> str | None:
    return conn.execute(
        sa.select(schema.projects.c.currency).where(schema.projects.c.id == project_id)
    ).scalar_one_or_none()


def project_currencies(conn: Connection, project_ids: Iterable[str]) -> dict[str, str]:
    ids = sorted(set(project_ids))
    if not ids:
        return {}
    return {row.id: row.currency for row in conn.execute(_CURRENCIES, {"project_ids": ids})}


_CURRENCIES = sa.select(schema.projects.c.id, schema.projects.c.currency).where(
    schema.projects.c.id.in_(sa.bindparam("project_ids", expanding=True))
)


def grant(
    conn: Connection,
    *,
    project_id: str,
    kind: str,
    source: str,
    description: str,
    currency: str,
    amount: Decimal,
    products: Sequence[str],
    valid_from: dt.datetime,
    valid_until: dt.datetime | None,
    at: dt.datetime,
) -> int:
    """Create a credit and its grant entry; returns the credit id."""
    result = conn.execute(
        schema.credits.insert().values(
            project_id=project_id,
            kind=kind,
            source=source,
            description=description,
            currency=currency,
            products=json.dumps(sorted(set(products))),
            total=amount,
            used=ZERO,
            expired=ZERO,
            voided=ZERO,
            available=amount,
            valid_from=valid_from,
            valid_until=valid_until,
            created_at=at,
        )
    )
    assert result.inserted_primary_key is not None
    credit_id = result.inserted_primary_key[0]
    insert_entries(conn, [Entry(int(credit_id), "grant", amount, note=f"{kind} {source}")], at=at)
    return int(credit_id)


def credit_model(row: Any, *, at: dt.datetime) -> models.Credit:
    """A credits table row as the JSON contract shows it at time ``at``.

    The balances are the ledger's current ones, not a replay of the moment
    ``at``; but a credit past its end at ``at`` shows what was left on it as
    expired, even before the expiry job records that (the job may run
    lagged, docs/operations.md): a customer must never read money as
    available on a credit that can pay nothing.
    """
    status = credit_status(row, at=at)
    expired, available = row.expired, row.available
    if status == "expired" and available > ZERO:
        expired, available = money.add(expired, available), ZERO
    return models.Credit.model_construct(
        id=row.id,
        project_id=row.project_id,
        kind=row.kind,
        description=row.description,
        source=row.source,
        currency=row.currency,
        total=row.total,
        used=row.used,
        expired=expired,
        voided=row.voided,
        available=available,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        status=status,
        products=json.loads(row.products),
    )


def credit_status(row: Any, *, at: dt.datetime) -> str:
    if row.voided_at is not None:
        return "voided"
    if row.valid_until is not None and at >= row.valid_until:
        return "expired" if row.expired > ZERO or row.available > ZERO else "exhausted"
    if row.available == ZERO:
        return "exhausted"
    return "active"
