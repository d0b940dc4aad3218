"""Settlements: the recorded result of each settled charge, keyed for idempotency."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any, NamedTuple, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ovh_credit_plugin import models, money
from ovh_credit_plugin.ledger import bulk, schema, types

ZERO = money.ZERO
_S = schema.settlements.c
#: The longest settlement key the ledger stores (the key column's, and its entries').
KEY_LENGTH: int = _S.key.type.length  # type: ignore[attr-defined]

#: One allocation as the ``allocations`` column stores it, in this order.
Stored = tuple[str, int, str, Decimal]  # line_id, credit_id, kind, amount
#: Why an allocation's credit paid its line (``allocation.Why``): its place in the
#: consumption order and the credits ahead of it that scopes kept from the line,
#: each (credit_id, cause, products).
StoredWhy = tuple[int, tuple[tuple[int, str, tuple[str, ...]], ...]]


class Why(Protocol):
    """What the codec reads of an ``allocation.Why`` (the ledger imports no allocation)."""

    @property
    def place(self) -> int: ...
    @property
    def skipped(self) -> Sequence[tuple[int, str, Sequence[str]]]: ...


def encode_allocations(
    shares: Iterable[models.AllocationResult], whys: Iterable[Why] | None = None
) -> str:
    """The ``allocations`` column's JSON text.

    ``[[line_id, credit_id, kind, amount, place, skipped?], ...]``: ``place``
    and ``skipped`` (``[[credit_id, cause, [product, ...]], ...]``, left out
    when empty) explain the allocation. Rows written before explanations
    existed hold ``[line_id, credit_id, kind, amount]`` only; both are read.
    """
    if whys is None:
        return json.dumps([[s.line_id, s.credit_id, s.kind, str(s.amount)] for s in shares])
    return json.dumps([
        [s.line_id, s.credit_id, s.kind, str(s.amount), w.place] if not w.skipped else
        [s.line_id, s.credit_id, s.kind, str(s.amount), w.place,
         [[credit_id, cause, list(products)] for credit_id, cause, products in w.skipped]]
        for s, w in zip(shares, whys, strict=True)
    ])


def decode_allocations(text: str) -> list[Stored]:
    return [(item[0], int(item[1]), item[2], Decimal(item[3])) for item in json.loads(text)]


def decode_explained(text: str) -> list[tuple[Stored, StoredWhy | None]]:
    """Each allocation with why its credit paid its line (None: a row from before that)."""
    found: list[tuple[Stored, StoredWhy | None]] = []
    for item in json.loads(text):
        stored = (item[0], int(item[1]), item[2], Decimal(item[3]))
        why: StoredWhy | None = None
        if len(item) > 4:
            skipped = item[5] if len(item) > 5 else []
            why = (int(item[4]), tuple((int(credit_id), cause, tuple(products))
                                       for credit_id, cause, products in skipped))
        found.append((stored, why))
    return found


# Built once (module level): only the keys change from call to call. Locked
# off SQLite (whose compiler renders no FOR UPDATE), so that two re-ratings of
# one period cannot both reverse the same recorded revision: the second waits,
# then reads the first one's revision.
_RECORDED = (
    sa.select(_S.key, _S.fingerprint, _S.allocations, _S.revision, _S.project_id, _S.currency,
              _S.total, _S.credit_applied, _S.amount_due, _S.invoice_id, _S.note)
    .where(_S.key.in_(sa.bindparam("keys", expanding=True)))
    .order_by(_S.key)
    .with_for_update()
)
# One key (every online settlement): an "=" compiles once, where an expanding
# IN is rendered again per call (~50 us on SQLite); run on the driver's cursor.
_RECORDED_ONE = (
    sa.select(*_RECORDED.selected_columns)
    .where(_S.key == sa.bindparam("key"))
    .with_for_update()
)


class Recorded(NamedTuple):
    """A recorded settlement as _RECORDED reads it, with the values its column types give."""

    key: str
    fingerprint: str
    allocations: str
    revision: int
    project_id: str
    currency: str
    total: Decimal
    credit_applied: Decimal
    amount_due: Decimal
    invoice_id: str
    note: str | None


def _recorded_from_driver(conn: Connection, row: Sequence[Any]) -> Recorded:
    # Once per online settlement that replays or re-rates: not worth a cache.
    amount = types.Money.result_function(conn.dialect)
    (key, fingerprint, allocations, revision, project_id, currency, total, applied, due,
     invoice_id, note) = row
    return Recorded(key, fingerprint, allocations, int(revision), project_id, currency,
                    amount(total), amount(applied), amount(due), invoice_id, note)


_LEGACY = sa.select(_S.key, _S.project_id, _S.invoice_id).where(
    _S.key.in_(sa.bindparam("keys", expanding=True))
)


def lock_recorded(conn: Connection, keys: Sequence[str]) -> dict[str, Any]:
    """The recorded settlements of these keys, locked, by key."""
    recorded: dict[str, Any] = {}
    ordered = sorted(set(keys))
    if len(ordered) == 1:
        for row in bulk.fetchall(conn, _RECORDED_ONE, {"key": ordered[0]}):
            found = _recorded_from_driver(conn, row)
            recorded[found.key] = found
        return recorded
    for start in range(0, len(ordered), 500):
        for typed in conn.execute(_RECORDED, {"keys": ordered[start : start + 500]}):
            recorded[typed.key] = typed
    return recorded


def owners(conn: Connection, keys: Sequence[str]) -> Iterator[Any]:
    """(key, project_id, invoice_id) of the settlements recorded under these keys."""
    return iter(conn.execute(_LEGACY, {"keys": list(keys)}))


_INSERT = schema.settlements.insert()
#: The table's columns, in the order of the row tuples :func:`insert` builds.
COLUMNS = tuple(column.name for column in schema.settlements.columns)


def insert(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """One executemany on the driver; each distinct time is converted once."""
    table = schema.settlements
    money_out = bulk.driver_value(conn, table.c.total)
    time_out = bulk.driver_value(conn, table.c.settled_at)
    times: dict[dt.datetime, Any] = {}

    def moment(value: dt.datetime) -> Any:
        found = times.get(value)
        if found is None:
            found = times[value] = time_out(value)
        return found

    # Spelled out rather than looped over COLUMNS: a month-end batch inserts
    # tens of thousands of rows (tests/unit/test_ledger_layout.py checks the order).
    bulk.executemany(conn, _INSERT, COLUMNS, [
        (r["key"], r["project_id"], r["invoice_id"], r["currency"], money_out(r["total"]),
         money_out(r["credit_applied"]), money_out(r["amount_due"]), r["fingerprint"],
         r["allocations"], r["revision"], moment(r["settled_at"]), moment(r["created_at"]),
         moment(r["updated_at"]), r["note"])
        for r in rows
    ])


def update(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """New revisions of recorded settlements (re-rated periods), by key."""
    if not rows:
        return
    conn.execute(
        schema.settlements.update()
        .where(_S.key == sa.bindparam("b_key"))
        .values({k: sa.bindparam(k) for k in rows[0] if k != "key"}),
        [{**{k: v for k, v in r.items() if k != "key"}, "b_key": r["key"]} for r in rows],
    )


_LATEST_BELOW = (
    sa.select(_S.key)
    .where(_S.key > sa.bindparam("low"), _S.key < sa.bindparam("high"),
           _S.key != sa.bindparam("key"))
    .order_by(_S.key.desc())
    .limit(1)
)
_CHARGE_STATE = sa.select(
    sa.exists().where(_S.key == sa.bindparam("key")),
    sa.exists().where(schema.credits.c.project_id == sa.bindparam("project_id"),
                      schema.credits.c.available > ZERO),
    sa.select(schema.projects.c.currency)
    .where(schema.projects.c.id == sa.bindparam("project_id"))
    .scalar_subquery(),
)
# The same, with the greatest other key in (low, high): one index lookup more.
_CHARGE_STATE_NEAR = _CHARGE_STATE.add_columns(_LATEST_BELOW.scalar_subquery())


def charge_state(
    conn: Connection, key: str, project_id: str, *, between: tuple[str, str] | None = None
) -> tuple[bool, bool, str | None, str | None]:
    """(is ``key`` recorded, does the project hold a balance, its currency, and with
    ``between`` = (low, high) the greatest key strictly between them other than ``key``):
    one statement."""
    statement, params = _CHARGE_STATE, {"key": key, "project_id": project_id}
    if between is not None:
        statement = _CHARGE_STATE_NEAR
        params.update(low=between[0], high=between[1])
    recorded, funded, currency, *near = conn.execute(statement, params).one()
    return bool(recorded), bool(funded), currency, near[0] if near else None


class DailyDebit(NamedTuple):
    """Credit ``credit_id`` applied to charges settled on ``day`` (UTC)."""

    day: dt.date
    credit_id: int
    amount: Decimal


_SETTLED_BETWEEN = (
    sa.select(_S.settled_at, _S.allocations)
    .where(_S.project_id == sa.bindparam("project_id"),
           _S.settled_at >= sa.bindparam("since"), _S.settled_at < sa.bindparam("until"),
           _S.credit_applied > ZERO)
)


def debits_by_day(
    conn: Connection, project_id: str, *, since: dt.datetime, until: dt.datetime
) -> list[DailyDebit]:
    """The credit applied to the project's charges settled in ``[since, until)``, summed
    per day of settlement (UTC) and per credit, by day then credit id.

    A charge counts on the day it was settled for (an invoice's ``issued_at``,
    a rated period's start), not the day it was written; a re-rated period
    counts its current revision only (the debits it reversed are gone from
    its allocations).
    """
    sums: dict[tuple[dt.date, int], Decimal] = {}
    with money.exact():
        for row in conn.execute(_SETTLED_BETWEEN,
                                {"project_id": project_id, "since": since, "until": until}):
            day = row.settled_at.date()
            for _line, credit_id, _kind, amount in decode_allocations(row.allocations):
                sums[day, credit_id] = sums.get((day, credit_id), ZERO) + amount
    return [DailyDebit(day, credit_id, amount)
            for (day, credit_id), amount in sorted(sums.items())]


_SHOWN = sa.select(_S.key, _S.project_id, _S.invoice_id, _S.currency, _S.total,
                   _S.credit_applied, _S.amount_due, _S.allocations, _S.revision,
                   _S.settled_at, _S.note).where(_S.key.in_(sa.bindparam("keys", expanding=True)))


def recorded(conn: Connection, keys: Sequence[str]) -> list[Any]:
    """The settlements recorded under these keys (not locked: for showing), by key."""
    return list(conn.execute(_SHOWN.order_by(_S.key), {"keys": list(keys)}))


def every_row(conn: Connection) -> Iterator[Any]:
    return iter(conn.execute(sa.select(schema.settlements)).yield_per(10000))


def keys(conn: Connection) -> set[str]:
    return {r.key for r in conn.execute(sa.select(_S.key))}
