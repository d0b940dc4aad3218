"""Projects: the currency each one bills in, fixed at its first credit, order or voucher intent."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.ledger import schema

_P = schema.projects.c

_CURRENCY = sa.select(_P.currency).where(_P.id == sa.bindparam("project_id"))
_CURRENCY_LOCKED = _CURRENCY.with_for_update()
_CURRENCIES = sa.select(_P.id, _P.currency).where(
    _P.id.in_(sa.bindparam("project_ids", expanding=True))
)
_FORGET_EMPTY = schema.projects.delete().where(
    _P.id == sa.bindparam("project_id"),
    ~sa.exists().where(schema.credits.c.project_id == _P.id),
    ~sa.exists().where(schema.orders.c.project_id == _P.id),
    ~sa.exists().where(schema.voucher_activations.c.project_id == _P.id),
)


def currency(conn: Connection, project_id: str, *, lock: bool = False) -> str | None:
    """The project's currency (None: not fixed yet); ``lock`` holds its row until commit."""
    query = _CURRENCY_LOCKED if lock else _CURRENCY
    return conn.execute(query, {"project_id": project_id}).scalar_one_or_none()


def currencies(conn: Connection, project_ids: Iterable[str]) -> dict[str, str]:
    ids = sorted(set(project_ids))
    if not ids:
        return {}
    return {row.id: row.currency for row in conn.execute(_CURRENCIES, {"project_ids": ids})}


def ensure(conn: Connection, project_id: str, code: str, *, at: dt.datetime) -> str:
    """The project's currency, fixing it to ``code`` on first use."""
    found = currency(conn, project_id)
    if found is None:
        conn.execute(schema.projects.insert().values(id=project_id, currency=code, created_at=at))
        return code
    if found != code:
        raise exceptions.CurrencyMismatch(
            f"project {project_id} bills in {found}, not {code}: credit is never converted"
        )
    return found


def forget_if_empty(conn: Connection, project_id: str) -> None:
    """Release the project's currency when nothing (credit, order, activation) holds it.

    Off SQLite, the row is locked first: an intent or order being written
    holds it (or a key lock), and the check, a statement of its own under
    READ COMMITTED, then sees what they committed.
    """
    values = {"project_id": project_id}
    if conn.dialect.name != "sqlite" and conn.execute(_CURRENCY_LOCKED, values).first() is None:
        return
    conn.execute(_FORGET_EMPTY, values)
