"""Projects: the currency each one bills in, fixed at its first credit, order or voucher intent."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.i18n import _
from ovh_credit_plugin.ledger import bulk, schema

_P = schema.projects.c

_CURRENCY = sa.select(_P.currency).where(_P.id == sa.bindparam("project_id"))
_CURRENCY_LOCKED = _CURRENCY.with_for_update()
_INSERT = schema.projects.insert()
_CURRENCIES = sa.select(_P.id, _P.currency).where(
    _P.id.in_(sa.bindparam("project_ids", expanding=True))
)
# What holds a project's currency: any credit (whatever its state: its
# ledger, reversals included, stays in one currency), a pending order (it may
# still be paid) and any voucher activation (a pending intent may still be
# granted). Cancelled and lapsed orders hold nothing.
_HELD = sa.or_(
    sa.exists().where(schema.credits.c.project_id == _P.id),
    sa.exists().where(schema.orders.c.project_id == _P.id,
                      schema.orders.c.status == "pending"),
    sa.exists().where(schema.voucher_activations.c.project_id == _P.id),
)
_HOLDING = sa.select(_P.id).where(_P.id.in_(sa.bindparam("project_ids", expanding=True)), _HELD)
_REFIX = (
    schema.projects.update()
    .where(_P.id == sa.bindparam("project_id"), _P.currency == sa.bindparam("found"), ~_HELD)
    .values(currency=sa.bindparam("code"))
)
# What a project's row is referenced by: it cannot be deleted while any is there.
_REFERENCED = sa.or_(
    sa.exists().where(schema.credits.c.project_id == _P.id),
    sa.exists().where(schema.orders.c.project_id == _P.id),
    sa.exists().where(schema.voucher_activations.c.project_id == _P.id),
)
_FORGET_EMPTY = schema.projects.delete().where(_P.id == sa.bindparam("project_id"), ~_REFERENCED)
_IS_REFERENCED = sa.select(_P.id).where(_P.id == sa.bindparam("project_id"), _REFERENCED)
_FORGET = schema.projects.delete().where(_P.id == sa.bindparam("project_id"))


def currency(conn: Connection, project_id: str, *, lock: bool = False) -> str | None:
    """The project's currency (None: not fixed yet); ``lock`` holds its row until commit."""
    query = _CURRENCY_LOCKED if lock else _CURRENCY
    # On the driver's cursor (bulk): every voucher activation and order reads it.
    for (code,) in bulk.fetchall(conn, query, {"project_id": project_id}):
        return str(code)
    return None


def currencies(conn: Connection, project_ids: Iterable[str]) -> dict[str, str]:
    ids = sorted(set(project_ids))
    if not ids:
        return {}
    return {row.id: row.currency for row in conn.execute(_CURRENCIES, {"project_ids": ids})}


def held(conn: Connection, project_ids: Iterable[str]) -> set[str]:
    """Those of ``project_ids`` whose currency something holds (a credit, a pending
    order, an activation); the others' recorded currency is released."""
    ids = sorted(set(project_ids))
    if not ids:
        return set()
    return {row.id for row in conn.execute(_HOLDING, {"project_ids": ids})}


def ensure(conn: Connection, project_id: str, code: str, *, at: dt.datetime) -> str:
    """The project's currency, fixing it to ``code`` on first use or once released.

    A project's currency is released when nothing holds it any more (no
    credit, no pending order, no activation: its only orders were cancelled
    or lapsed). It is released lazily, here, when an order or a grant needs
    another currency, rather than when the last order is cancelled or lapses:
    a release is then one conditional UPDATE of the project's row, under the
    lock every writer that fixes or relies on the currency takes here (off
    SQLite; SQLite writers are serialized by BEGIN IMMEDIATE). Under READ
    COMMITTED the UPDATE's NOT EXISTS sees what was committed before it, and
    whatever could add a holder concurrently either went through this same
    lock (a new order or activation: it waits, then reads the new currency)
    or turns one holder into another in one transaction (a payment: a pending
    order becomes a credit). A Galera node certifies the UPDATE against the
    orders and credits other nodes insert (their foreign key to this row),
    so one of two racing nodes retries. Releasing at cancel or lapse instead
    would need the same lock in three more places, and would leave the
    projects stuck before this change as they are.
    """
    found = currency(conn, project_id, lock=True)
    if found is None:
        insert(conn, project_id, code, at=at)
        return code
    if found != code:
        released = conn.execute(
            _REFIX, {"project_id": project_id, "found": found, "code": code}
        ).rowcount
        if released != 1:
            raise exceptions.CurrencyMismatch(
                _("project %(project_id)s bills in %(found)s, not %(code)s: credit is never "
                  "converted (a project's currency is released once it holds no credit and "
                  "no pending order)")
                % {"project_id": project_id, "found": found, "code": code}
            )
        return code
    return found


def insert(conn: Connection, project_id: str, code: str, *, at: dt.datetime) -> None:
    """A project in currency ``code``, for a caller that read (locked) that it has none."""
    moment = bulk.driver_value(conn, schema.projects.c.created_at)(at)
    bulk.executemany(conn, _INSERT, ("id", "currency", "created_at"), [(project_id, code, moment)])


def forget_if_empty(conn: Connection, project_id: str) -> None:
    """Release the project's currency when nothing (credit, order, activation) holds it.

    Off SQLite, the row is locked first: an intent or order being written
    holds it (or a key lock), and the check, a statement of its own under
    READ COMMITTED, then sees what they committed.
    """
    values = {"project_id": project_id}
    if conn.dialect.name == "sqlite":
        conn.execute(_FORGET_EMPTY, values)
        return
    if conn.execute(_CURRENCY_LOCKED, values).first() is None:
        return
    # The check is a plain read, then the row is deleted by its id: MariaDB
    # reads a DELETE's subqueries with shared locks, even under READ
    # COMMITTED, and those on the project's activations, taken after the
    # project's row, deadlocked with a resume or a grant, which lock the
    # activation first (the lock order of service/vouchers.py). Nothing can
    # reference the row between the two: a credit or an order inserted
    # waits on the row's lock (their foreign key), an intent is written after
    # locking the row (record_intent).
    if conn.execute(_IS_REFERENCED, values).first() is None:
        conn.execute(_FORGET, values)
