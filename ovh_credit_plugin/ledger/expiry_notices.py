"""Expiry warnings sent: every statement of ``ovh-credit notify-expiring``.

One row per (credit, threshold in days): the warning for that threshold was
sent (or, with a lower threshold, made needless). Its primary key makes the
job send each warning once, however often it runs and however many run at
once: the second of two concurrent jobs fails its insert, and its retried
transaction finds the row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from ovh_credit_plugin import money
from ovh_credit_plugin.ledger import schema

_C = schema.credits.c
_N = schema.expiry_notices.c


def due(
    conn: Connection, *, at: dt.datetime, threshold_days: int, limit: int
) -> list[Row[Any]]:
    """Credits ending within ``threshold_days`` after ``at`` that still hold available
    credit and were not warned for that threshold; lowest id first.

    Rows of (id, project_id, kind, currency, available, valid_until).
    """
    warned = (
        sa.select(_N.credit_id)
        .where(_N.credit_id == _C.id, _N.threshold_days == threshold_days)
        .exists()
    )
    return list(conn.execute(
        sa.select(_C.id, _C.project_id, _C.kind, _C.currency, _C.available, _C.valid_until)
        .where(
            _C.valid_until > at,
            _C.valid_until <= at + dt.timedelta(days=threshold_days),
            _C.available > money.ZERO,
            _C.voided_at.is_(None),
            ~warned,
        )
        .order_by(_C.id)
        .limit(limit)
    ))


def recorded(conn: Connection, credit_ids: Iterable[int]) -> set[tuple[int, int]]:
    """The (credit_id, threshold_days) pairs already recorded for these credits."""
    ids = sorted(set(credit_ids))
    if not ids:
        return set()
    return {
        (int(row.credit_id), int(row.threshold_days))
        for row in conn.execute(
            sa.select(_N.credit_id, _N.threshold_days).where(_N.credit_id.in_(ids))
        )
    }


def record(conn: Connection, notices: Iterable[tuple[int, int]], *, at: dt.datetime) -> None:
    """Record (credit_id, threshold_days) pairs as sent."""
    rows = [{"credit_id": credit_id, "threshold_days": days, "created_at": at}
            for credit_id, days in sorted(set(notices))]
    if rows:
        conn.execute(schema.expiry_notices.insert(), rows)
