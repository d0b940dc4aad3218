"""Purchase orders: every statement that reads or writes them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.contracts import OrderResult
from ovh_credit_plugin.i18n import _
from ovh_credit_plugin.ledger import schema

_O = schema.orders.c
_ORDER = sa.select(schema.orders).where(_O.id == sa.bindparam("order_id"))
_ORDER_LOCKED = _ORDER.with_for_update()


def find(conn: Connection, order_id: str) -> Row[Any] | None:
    return conn.execute(_ORDER, {"order_id": order_id}).one_or_none()


def get(conn: Connection, order_id: Any, *, lock: bool = False) -> Row[Any]:
    """The order's row (locked until commit with ``lock``); OrderNotFound otherwise."""
    if not isinstance(order_id, str) or not order_id or len(order_id) > 36:
        raise exceptions.OrderNotFound(_("no order %(order_id)r")
                                       % {"order_id": order_id})
    query = _ORDER_LOCKED if lock else _ORDER
    row = conn.execute(query, {"order_id": order_id}).one_or_none()
    if row is None:
        raise exceptions.OrderNotFound(_("no order %(order_id)r")
                                       % {"order_id": order_id})
    return row


def insert(
    conn: Connection,
    *,
    order_id: str,
    project_id: str,
    amount: Decimal,
    currency: str,
    created_at: dt.datetime,
    expires_at: dt.datetime,
    payment_url: str,
) -> None:
    conn.execute(
        schema.orders.insert().values(
            id=order_id, project_id=project_id, amount=amount, currency=currency,
            status="pending", created_at=created_at, expires_at=expires_at,
            payment_url=payment_url,
        )
    )


def mark_paid(conn: Connection, order_id: str, *, at: dt.datetime, credit_id: int) -> None:
    conn.execute(
        schema.orders.update().where(_O.id == order_id)
        .values(status="paid", paid_at=at, credit_id=credit_id)
    )


def mark_cancelled(conn: Connection, order_id: str, *, at: dt.datetime) -> None:
    conn.execute(
        schema.orders.update().where(_O.id == order_id)
        .values(status="cancelled", cancelled_at=at)
    )


def of_project(conn: Connection, project_id: str) -> list[Row[Any]]:
    return list(conn.execute(
        sa.select(schema.orders).where(_O.project_id == project_id)
        .order_by(_O.created_at, _O.id)
    ))


def page(
    conn: Connection,
    project_id: str,
    *,
    status: str | None,
    after: str | None,
    limit: int,
    at: dt.datetime,
) -> list[Row[Any]]:
    """Up to ``limit`` of the project's orders after order ``after``, oldest first.

    ``status`` as the contract shows it at ``at``: a pending order past its
    end is ``expired`` even before the expiry job records it. An ``after``
    that is not one of the project's orders: OrderNotFound.
    """
    query = sa.select(schema.orders).where(_O.project_id == project_id)
    if after is not None:
        mark = conn.execute(
            sa.select(_O.created_at, _O.id).where(_O.project_id == project_id, _O.id == after)
        ).first()
        if mark is None:
            raise exceptions.OrderNotFound(_("no order %(after)r")
                                           % {"after": after})
        query = query.where(sa.or_(
            _O.created_at > mark.created_at,
            sa.and_(_O.created_at == mark.created_at, _O.id > mark.id),
        ))
    if status == "pending":
        query = query.where(_O.status == "pending", _O.expires_at > at)
    elif status == "expired":
        query = query.where(sa.or_(
            _O.status == "expired", sa.and_(_O.status == "pending", _O.expires_at <= at)
        ))
    elif status is not None:
        query = query.where(_O.status == status)
    return list(conn.execute(query.order_by(_O.created_at, _O.id).limit(limit)))


# -- Idempotency keys (cloud_credit_order_keys) --------------------------------------

_K = schema.order_keys.c
_KEYED = sa.select(_K.fingerprint, _K.order_id).where(
    _K.project_id == sa.bindparam("project_id"), _K.idempotency_key == sa.bindparam("key")
)


def keyed(conn: Connection, project_id: str, key: str) -> Any:
    """(fingerprint, order_id) of the order a project made under ``key``, if any."""
    return conn.execute(_KEYED, {"project_id": project_id, "key": key}).first()


def insert_key(conn: Connection, *, project_id: str, key: str, fingerprint: str,
               order_id: str, at: dt.datetime) -> None:
    """Record ``key``; a concurrent request that recorded it first makes this an
    IntegrityError, which retries the transaction (that then finds the key)."""
    conn.execute(schema.order_keys.insert().values(
        project_id=project_id, idempotency_key=key, fingerprint=fingerprint,
        order_id=order_id, created_at=at,
    ))


def lapse(conn: Connection, *, at: dt.datetime) -> int:
    """Mark pending orders whose time ran out at ``at`` as expired; how many."""
    return int(conn.execute(
        schema.orders.update()
        .where(_O.status == "pending", _O.expires_at <= at)
        .values(status="expired")
    ).rowcount)


def every_row(conn: Connection) -> Any:
    return conn.execute(sa.select(schema.orders)).yield_per(10000)


def result(row: Any, *, at: dt.datetime | None = None) -> OrderResult:
    """An orders table row as the JSON contract shows it (lapsed at ``at`` shows expired)."""
    status = row.status
    if status == "pending" and at is not None and at >= row.expires_at:
        status = "expired"  # lapsed, even before the expiry job records it
    return OrderResult(
        id=row.id, project_id=row.project_id, amount=row.amount, currency=row.currency,
        status=status, created_at=row.created_at, expires_at=row.expires_at,
        paid_at=row.paid_at, payment_url=row.payment_url, credit_id=row.credit_id,
    )
