"""Expiry warnings sent: every statement of ``ovh-credit notify-expiring``.

One row per (credit, threshold in days): the warning for that threshold was
sent (or, with a lower threshold, made needless). Its primary key makes the
job send each warning once, however often it runs and however many run at
once: the second of two concurrent jobs fails its insert, and its retried
transaction finds the row.

A row is written with ``sending_since`` (the wall clock) and cleared by
:func:`sent` once the transport has taken the warning: a row that keeps it
belongs to a run that died between its commit and its send, and
:func:`reclaim` deletes it for a later run to send.

The job's candidates (:func:`projects_due`) are read here too; which of their
credits have money at risk is the forecast's to say (``service/forecast.py``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ovh_credit_plugin import money
from ovh_credit_plugin.ledger import schema

_C = schema.credits.c
_N = schema.expiry_notices.c


def projects_due(
    conn: Connection, *, at: dt.datetime, thresholds: Sequence[int], after: str | None,
    limit: int,
) -> list[str]:
    """Projects holding a credit that may be due a warning at ``at``: not voided, still
    holding available credit, ending after ``at`` and within one of ``thresholds`` days
    that it was not warned for; after ``after`` (a project id), in id order.

    Only the candidates: whether money is at risk is the forecast's to say.
    """
    within = [
        sa.and_(
            _C.valid_until <= at + dt.timedelta(days=days),
            ~sa.select(_N.credit_id)
            .where(_N.credit_id == _C.id, _N.threshold_days == days)
            .exists(),
        )
        for days in sorted(set(thresholds))
    ]
    if not within:
        return []
    conditions = [
        _C.valid_until > at,
        _C.valid_until <= at + dt.timedelta(days=max(thresholds)),
        _C.available > money.ZERO,
        _C.voided_at.is_(None),
        sa.or_(*within),
    ]
    if after is not None:
        conditions.append(_C.project_id > after)
    return [
        str(project_id)
        for project_id in conn.execute(
            sa.select(_C.project_id).where(*conditions).distinct()
            .order_by(_C.project_id).limit(limit)
        ).scalars()
    ]


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


def record(conn: Connection, notices: Iterable[tuple[int, int]], *, at: dt.datetime,
           now: dt.datetime) -> None:
    """Record (credit_id, threshold_days) pairs for the warnings about to be sent at
    ``at`` (the forecast's moment), being sent since ``now`` (the wall clock)."""
    rows = [{"credit_id": credit_id, "threshold_days": days, "created_at": at,
             "sending_since": now}
            for credit_id, days in sorted(set(notices))]
    if rows:
        conn.execute(schema.expiry_notices.insert(), rows)


def sent(conn: Connection, notices: Iterable[tuple[int, int]]) -> None:
    """The transport took these pairs' warnings: they are sent."""
    for pairs in _per_threshold(notices):
        conn.execute(schema.expiry_notices.update().where(pairs).values(sending_since=None))


def reclaim(conn: Connection, *, before: dt.datetime) -> list[tuple[int, int, dt.datetime]]:
    """Delete the pairs still being sent since before ``before``: their run died
    between recording and sending them. (credit_id, threshold_days, sending_since)
    of each, in that order.

    Each delete still requires ``sending_since < before``: another run reclaiming at
    the same time may delete a pair between this read and this delete, record it
    again and send it (being sent since now, or marked sent): that one is not
    deleted. (Both runs then name the pair in their log.)
    """
    found = [
        (int(row.credit_id), int(row.threshold_days), row.sending_since)
        for row in conn.execute(
            sa.select(_N.credit_id, _N.threshold_days, _N.sending_since)
            .where(_N.sending_since < before)
            .order_by(_N.credit_id, _N.threshold_days))
    ]
    for pairs in _per_threshold((credit_id, days) for credit_id, days, _since in found):
        conn.execute(schema.expiry_notices.delete().where(pairs, _N.sending_since < before))
    return found


def forget(conn: Connection, notices: Iterable[tuple[int, int]], *,
           sending_since: dt.datetime) -> None:
    """Delete (credit_id, threshold_days) pairs recorded, being sent since
    ``sending_since``, by a run that could not send their warning: the next run finds
    them unsent, and sends them.

    Only the run's own records: a run that took longer than the timeout may find its
    pairs reclaimed by another run meanwhile, recorded again and sent (marked sent,
    or being sent since another moment); those are the other run's, and stay.
    """
    for pairs in _per_threshold(notices):
        conn.execute(schema.expiry_notices.delete().where(
            pairs, _N.sending_since == sending_since))


def _per_threshold(notices: Iterable[tuple[int, int]]) -> list[sa.ColumnElement[bool]]:
    """The (credit_id, threshold_days) pairs as one condition per threshold (its credit
    ids), in threshold order: one statement each, rows taken in one order by all."""
    by_days: dict[int, set[int]] = {}
    for credit_id, days in notices:
        by_days.setdefault(days, set()).add(credit_id)
    return [sa.and_(_N.threshold_days == days, _N.credit_id.in_(sorted(ids)))
            for days, ids in sorted(by_days.items())]
