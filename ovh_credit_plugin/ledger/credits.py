"""Credits and their ledger entries: every statement that reads or writes them.

A credit's balance columns are a cache of its append-only entries, written
in the same transaction. :class:`CreditRow` is the only code that changes
them: each of its balance methods returns the entries that record the
change, so ``total = used + expired + voided + available`` and "each figure
is the sum of its entries" hold by construction.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from ovh_credit_plugin import exceptions, money
from ovh_credit_plugin.contracts import CreditResult, CreditStatus
from ovh_credit_plugin.i18n import _
from ovh_credit_plugin.ledger import bulk, schema, types

if TYPE_CHECKING:
    from ovh_credit_plugin import models

ZERO = money.ZERO
_C = schema.credits.c
_E = schema.ledger_entries.c


class Entry(NamedTuple):
    """One ledger entry to insert."""

    credit_id: int
    type: str
    amount: Decimal
    note: str = ""
    settlement_key: str | None = None
    line_id: str | None = None


@dataclass(slots=True)
class CreditRow:
    """A credit's balances as read (and locked) in this transaction, changed in memory,
    then written back by :func:`write_balances`."""

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

    def debit(self, amount: Decimal, *, settlement_key: str, line_id: str) -> Entry:
        self.available -= amount
        self.used += amount
        self.dirty = True
        return Entry(self.id, "debit", amount, settlement_key=settlement_key, line_id=line_id)

    def reverse(self, amount: Decimal, *, settlement_key: str, line_id: str) -> list[Entry]:
        """Give back a debit of a re-rated settlement."""
        self.used -= amount
        self.available += amount
        self.dirty = True
        entries = [Entry(self.id, "reversal", amount, note="re-rated",
                         settlement_key=settlement_key, line_id=line_id)]
        if self.voided_at is not None:
            # A voided credit stays empty: what comes back is voided at once.
            entries.append(self._void(amount, "reversal on a voided credit"))
        return entries

    def expire_rest(self, *, note: str) -> Entry:
        amount = self.available
        self.expired += amount
        self.available = ZERO
        self.dirty = True
        return Entry(self.id, "expiry", amount, note=note)

    def void_rest(self, *, reason: str) -> Entry:
        return self._void(self.available, reason)

    def _void(self, amount: Decimal, note: str) -> Entry:
        self.available -= amount
        self.voided += amount
        self.dirty = True
        return Entry(self.id, "void", amount, note=note)

    def check(self) -> None:
        figures = (self.used, self.expired, self.voided, self.available)
        if any(f < ZERO for f in figures) or sum(figures, ZERO) != self.total:
            # A bug, never an input problem: refuse to commit a broken ledger.
            raise AssertionError(f"credit {self.id} balances would break the ledger invariant")


_BALANCE_COLUMNS = (
    _C.id, _C.project_id, _C.kind, _C.currency, _C.products, _C.total, _C.used, _C.expired,
    _C.voided, _C.available, _C.valid_from, _C.valid_until, _C.created_at, _C.voided_at,
)
_ALL_PRODUCTS: frozenset[str] = frozenset()  # an empty scope: every product

# The columns come back as the driver gives them (no per-value processor
# chain: a month-end batch reads tens of thousands of credits) and are
# converted by _converter, to the same values the column types give.
_RAW_BALANCES = sa.select(
    *(sa.type_coerce(c, sa.types.NullType()).label(c.name) for c in _BALANCE_COLUMNS)
)
# Built once: settling one invoice online runs these on every transaction.
_OPEN_CREDITS = _RAW_BALANCES.where(
    _C.project_id.in_(sa.bindparam("project_ids", expanding=True)),
    _C.available > ZERO,
    _C.voided_at.is_(None),
).order_by(_C.id).with_for_update()
# One project (every online settlement): an "=" compiles once, where an
# expanding IN is rendered again per call (~40 us on SQLite); run on the
# driver's cursor (bulk.fetchall), so zero is a bind whose driver value is given.
_OPEN_CREDITS_ONE = _RAW_BALANCES.where(
    _C.project_id == sa.bindparam("project_id"),
    _C.available > sa.bindparam("zero"),
    _C.voided_at.is_(None),
).order_by(_C.id).with_for_update()
_LOCK_PROJECTS = (
    sa.select(schema.projects.c.id)
    .where(schema.projects.c.id.in_(sa.bindparam("project_ids", expanding=True)))
    .order_by(schema.projects.c.id)
    .with_for_update()
)
_BY_IDS = (
    _RAW_BALANCES.where(_C.id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(_C.id).with_for_update()
)
_CONVERTERS: dict[str, Callable[[Any], CreditRow]] = {}


def _converter(conn: Connection) -> Callable[[Any], CreditRow]:
    """Raw driver row of _BALANCE_COLUMNS -> CreditRow, for this dialect: the one reader."""
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


def lock_open_credits(conn: Connection, project_ids: Iterable[str]) -> dict[str, list[CreditRow]]:
    """Credits of these projects that still hold a balance, locked in id order.

    The fixed lock order (ascending id, one statement) keeps concurrent
    settlements from deadlocking each other on PostgreSQL and MariaDB; SQLite
    already holds the database write lock (BEGIN IMMEDIATE), and its compiler
    renders no FOR UPDATE.
    """
    ids = sorted(set(project_ids))
    found: dict[str, list[CreditRow]] = {pid: [] for pid in ids}
    if not ids:
        return found
    # Not mutated: MariaDB only, out of the SQLite mutation run's reach; its
    # mutants were checked by hand (docs/testing.md).
    # pragma: no mutate start
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
    # pragma: no mutate end
    convert = _converter(conn)
    rows = (bulk.fetchall(conn, _OPEN_CREDITS_ONE, {
                "project_id": ids[0], "zero": bulk.driver_value(conn, _C.available)(ZERO)})
            if len(ids) == 1 else conn.execute(_OPEN_CREDITS, {"project_ids": ids}))
    for row in rows:
        credit = convert(row)
        found[credit.project_id].append(credit)
    return found


_BY_ID = _RAW_BALANCES.where(_C.id == sa.bindparam("credit_id")).with_for_update()


def lock_credit(conn: Connection, credit_id: int) -> CreditRow:
    """One credit, locked until commit; CreditNotFound otherwise."""
    row = conn.execute(_BY_ID, {"credit_id": credit_id}).one_or_none()
    if row is None:
        raise exceptions.CreditNotFound(_("no credit %(credit_id)s")
                                        % {"credit_id": credit_id})
    return _converter(conn)(row)


def credits_by_id(conn: Connection, credit_ids: Iterable[int]) -> dict[int, CreditRow]:
    """These credits, locked in id order."""
    ids = sorted(set(credit_ids))
    if not ids:
        return {}
    convert = _converter(conn)
    return {credit.id: credit
            for credit in map(convert, conn.execute(_BY_IDS, {"ids": ids}))}


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


def write_balances(conn: Connection, credits: Iterable[CreditRow]) -> None:
    """Write the changed balances back (rows are locked by this transaction)."""
    rows = []
    for credit in credits:
        if credit.dirty:
            credit.check()
            rows.append((credit.id, credit.used, credit.expired, credit.voided, credit.available))
    if rows:
        money_out = bulk.driver_value(conn, _C.used)
        bulk.executemany(
            conn, _UPDATE_BALANCES, _BALANCE_BINDS,
            [(ident, money_out(used), money_out(expired), money_out(voided),
              money_out(available))
             for ident, used, expired, voided, available in rows],
        )


_INSERT_ENTRY = schema.ledger_entries.insert()
_ENTRY_COLUMNS = ("credit_id", "type", "amount", "settlement_key", "line_id", "note",
                  "created_at")


def insert_entries(conn: Connection, entries: Sequence[Entry], *, at: dt.datetime) -> None:
    if not entries:
        return
    table = schema.ledger_entries
    money_out = bulk.driver_value(conn, table.c.amount)
    created_at = bulk.driver_value(conn, table.c.created_at)(at)
    bulk.executemany(
        conn, _INSERT_ENTRY, _ENTRY_COLUMNS,
        [(e.credit_id, e.type, money_out(e.amount), e.settlement_key, e.line_id, e.note,
          created_at)
         for e in entries],
    )


# Built once, its values given at execution (a statement built per call cost
# more than running it on SQLite).
_INSERT_CREDIT = schema.credits.insert()
_GRANT_COLUMNS = ("project_id", "kind", "description", "source", "currency", "products",
                  "total", "used", "expired", "voided", "available", "valid_from",
                  "valid_until", "created_at")


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
) -> CreditRecord:
    """Create a credit and its grant entry; returns the credit as stored.

    The row is read back by its unique (project, kind, source) rather than
    returned by the INSERT: one way on every backend (MySQL has no
    ``INSERT ... RETURNING``), both statements on the driver's cursor.
    """
    # One column type for every amount, one for every moment (None passes through).
    money_in = bulk.driver_value(conn, _C.total)
    moment_in = bulk.driver_value(conn, _C.valid_from)
    zero = money_in(ZERO)
    bulk.executemany(conn, _INSERT_CREDIT, _GRANT_COLUMNS, [(
        project_id, kind, description, source, currency, json.dumps(sorted(set(products))),
        money_in(amount), zero, zero, zero, money_in(amount), moment_in(valid_from),
        moment_in(valid_until), moment_in(at),
    )])
    (record,) = [_record_converter(conn)(row) for row in bulk.fetchall(
        conn, _GRANTED, {"project_id": project_id, "kind": kind, "source": source})]
    insert_entries(conn, [Entry(record.id, "grant", amount, note=f"{kind} {source}")], at=at)
    return record


def mark_voided(conn: Connection, credit_id: int, *, at: dt.datetime, reason: str) -> None:
    conn.execute(
        schema.credits.update().where(_C.id == credit_id).values(voided_at=at, void_reason=reason)
    )


# -- what customers and operators read -------------------------------------------

_ROW = sa.select(schema.credits).where(_C.id == sa.bindparam("credit_id"))


def row(conn: Connection, credit_id: int) -> Row[Any] | None:
    """The credit's whole row (description, source, void reason...), or None."""
    return conn.execute(_ROW, {"credit_id": credit_id}).one_or_none()


_ORDER_FIELDS = sa.select(_C.id, _C.kind, _C.valid_until, _C.created_at).where(
    _C.id.in_(sa.bindparam("ids", expanding=True)))


def order_fields(conn: Connection, credit_ids: Iterable[int]) -> dict[int, Any]:
    """(id, kind, valid_until, created_at) of these credits, by id: fields no write changes."""
    ids = sorted(set(credit_ids))
    if not ids:
        return {}
    return {row.id: row for row in conn.execute(_ORDER_FIELDS, {"ids": ids})}


class CreditRecord(NamedTuple):
    """A credits table row, with the values its column types give."""

    id: int
    project_id: str
    kind: str
    description: str
    source: str
    currency: str
    products: str
    total: Decimal
    used: Decimal
    expired: Decimal
    voided: Decimal
    available: Decimal
    valid_from: dt.datetime
    valid_until: dt.datetime | None
    created_at: dt.datetime
    voided_at: dt.datetime | None
    void_reason: str | None


# Built once: every REST API's GET credits and `credit list` runs it.
_RECORD_COLUMNS = [schema.credits.c[name] for name in CreditRecord._fields]
_PROJECT_ROWS = sa.select(*_RECORD_COLUMNS).where(_C.project_id == sa.bindparam("project_id"))
# A credit just granted, by its unique key (grant).
_GRANTED = sa.select(*_RECORD_COLUMNS).where(
    _C.project_id == sa.bindparam("project_id"), _C.kind == sa.bindparam("kind"),
    _C.source == sa.bindparam("source"))
_RECORD_CONVERTERS: dict[str, Callable[[Sequence[Any]], CreditRecord]] = {}


def _record_converter(conn: Connection) -> Callable[[Sequence[Any]], CreditRecord]:
    """Raw driver row of _PROJECT_ROWS -> CreditRecord, for this dialect."""
    dialect = conn.dialect
    found = _RECORD_CONVERTERS.get(dialect.name)
    if found is not None:
        return found
    amount = types.Money.result_function(dialect)
    moment = types.UTCDateTime.result_function(dialect)

    def convert(row: Sequence[Any]) -> CreditRecord:
        (ident, project_id, kind, description, source, currency, products, total, used,
         expired, voided, available, valid_from, valid_until, created_at, voided_at,
         void_reason) = row
        return CreditRecord(
            int(ident), project_id, kind, description, source, currency, products,
            amount(total), amount(used), amount(expired), amount(voided), amount(available),
            moment(valid_from), None if valid_until is None else moment(valid_until),
            moment(created_at), None if voided_at is None else moment(voided_at), void_reason,
        )

    _RECORD_CONVERTERS[dialect.name] = convert
    return convert


def project_rows(conn: Connection, project_id: str) -> list[CreditRecord]:
    """Every credit of the project, in no particular order.

    On the driver's cursor (:func:`bulk.fetchall`): in ``conn``'s transaction
    if it began one, else on its own (``Database.read_statement``).
    """
    convert = _record_converter(conn)
    return [convert(row)
            for row in bulk.fetchall(conn, _PROJECT_ROWS, {"project_id": project_id})]


def entries_of(conn: Connection, credit_id: int) -> list[models.LedgerEntry]:
    # Imported here: listing credits needs no pydantic (contracts.py).
    from ovh_credit_plugin import models

    table = schema.ledger_entries
    return [
        models.LedgerEntry.model_construct(**entry._asdict())
        for entry in conn.execute(
            sa.select(table).where(_E.credit_id == credit_id).order_by(_E.id)
        )
    ]


def result(row: Any, *, at: dt.datetime) -> CreditResult:
    """A credits table row as the JSON contract shows it at time ``at``.

    The balances are the ledger's current ones, not a replay of the moment
    ``at``; but a credit past its end at ``at`` shows what was left on it as
    expired, even before the expiry job records that (the job may run
    lagged, docs/operations.md): a customer must never read money as
    available on a credit that can pay nothing.
    """
    status = status_of(row, at=at)
    expired, available = row.expired, row.available
    if status == "expired" and available > ZERO:
        expired, available = money.add(expired, available), ZERO
    return CreditResult(
        id=row.id, project_id=row.project_id, kind=row.kind, description=row.description,
        source=row.source, currency=row.currency, total=row.total, used=row.used,
        expired=expired, voided=row.voided, available=available, valid_from=row.valid_from,
        valid_until=row.valid_until, status=status, products=json.loads(row.products),
    )


def status_of(row: Any, *, at: dt.datetime) -> CreditStatus:
    if row.voided_at is not None:
        return "voided"
    if row.valid_until is not None and at >= row.valid_until:
        return "expired" if row.expired > ZERO or row.available > ZERO else "exhausted"
    if row.available == ZERO:
        return "exhausted"
    return "active"


# -- expiry and audit ---------------------------------------------------------------

def expiring_ids(conn: Connection, *, at: dt.datetime, limit: int) -> list[int]:
    """Ids of credits past their end at ``at`` that still hold a balance, lowest id first."""
    return list(conn.execute(
        sa.select(_C.id)
        .where(_C.valid_until <= at, _C.available > ZERO, _C.voided_at.is_(None))
        .order_by(_C.id)
        .limit(limit)
    ).scalars())


def every_entry(conn: Connection) -> Iterator[Any]:
    """(credit_id, type, amount, settlement_key) of every entry, streamed."""
    return iter(conn.execute(
        sa.select(_E.credit_id, _E.type, _E.amount, _E.settlement_key)
    ).yield_per(10000))


def every_row(conn: Connection) -> Iterator[Any]:
    return iter(conn.execute(sa.select(schema.credits)).yield_per(10000))


def purchased(conn: Connection) -> dict[int, Any]:
    """(id, total, source, project_id, currency) of every purchased credit, by id: the
    audit's match of orders."""
    return {
        r.id: r for r in conn.execute(
            sa.select(_C.id, _C.total, _C.source, _C.project_id, _C.currency)
            .where(_C.kind == "purchased")
        )
    }
