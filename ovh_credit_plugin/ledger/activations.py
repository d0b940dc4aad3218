"""Voucher activations (intents and grants) and the throttle's attempts.

Statements are built once: building a Core statement (and its cache key)
per call cost more than running it on SQLite. Those of an activation's two
transactions run on the driver's cursor (:mod:`bulk`): ~5 us each on SQLite
instead of ~27 us through SQLAlchemy's execution, about 0.25 ms of an
activation's ~3.5 ms against the loopback catalog (docs/performance.md).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from ovh_credit_plugin.ledger import bulk, schema

_A = schema.voucher_activations
_T = schema.voucher_attempts


class Activation(NamedTuple):
    """What a grant reads of an activation."""

    id: int
    status: str
    credit_id: int | None
    #: Pending, and its key may have been sent to the catalog (:func:`mark_sent`).
    sent: bool = False


#: The ``redemption_id`` of a pending activation whose key may have been sent to
#: the catalog (:func:`mark_sent`): by a resumed try, and the try that wrote the
#: intent must not drop it when it fails before its own POST; or by a try whose
#: POST failed, and the next try replays the key whatever its lookup says.
SENT = "(redemption sent)"

_ACTIVATION = sa.select(_A.c.id, _A.c.status, _A.c.credit_id, _A.c.redemption_id).where(
    _A.c.project_id == sa.bindparam("project_id"), _A.c.code == sa.bindparam("code")
)
_ACTIVATION_LOCKED = _ACTIVATION.with_for_update()
_STATUS = sa.select(_A.c.status).where(
    _A.c.project_id == sa.bindparam("project_id"), _A.c.code == sa.bindparam("code")
)
_RECORD_INTENT = _A.insert().values(
    project_id=sa.bindparam("project_id"), code=sa.bindparam("code"),
    idempotency_key=sa.bindparam("key"), status="pending",
    created_at=sa.bindparam("at"), updated_at=sa.bindparam("at"),
)
_DROP_INTENT = _A.delete().where(
    _A.c.idempotency_key == sa.bindparam("key"), _A.c.status == "pending"
)
_DROP_UNSENT = _DROP_INTENT.where(_A.c.redemption_id.is_(None))
_MARK_SENT = _A.update().where(
    _A.c.idempotency_key == sa.bindparam("key"), _A.c.status == "pending"
).values(redemption_id=SENT)
_GRANTED = _A.update().where(_A.c.id == sa.bindparam("activation")).values(
    status="granted", credit_id=sa.bindparam("credit_id"),
    redemption_id=sa.bindparam("redemption_id"), updated_at=sa.bindparam("at"),
)
_PENDING = (
    sa.select(_A.c.project_id, _A.c.code, _A.c.created_at)
    .where(_A.c.status == "pending")
    .order_by(_A.c.created_at, _A.c.id)
)


def find(conn: Connection, project_id: str, code: str, *, lock: bool = False
         ) -> Activation | None:
    """The project's activation of ``code`` (locked until commit with ``lock``)."""
    query = _ACTIVATION_LOCKED if lock else _ACTIVATION
    for ident, found, credit_id, redemption_id in bulk.fetchall(
            conn, query, {"project_id": project_id, "code": code}):
        return Activation(int(ident), found, None if credit_id is None else int(credit_id),
                          found == "pending" and redemption_id == SENT)
    return None


def status(conn: Connection, project_id: str, code: str) -> str | None:
    """``pending``, ``granted`` or None (never tried, or refused)."""
    for (found,) in bulk.fetchall(conn, _STATUS, {"project_id": project_id, "code": code}):
        return str(found)
    return None


def record_intent(
    conn: Connection, *, project_id: str, code: str, key: str, at: dt.datetime
) -> None:
    moment = bulk.driver_value(conn, _A.c.created_at)(at)
    # "status" is the statement's literal (pending), a bind like the others.
    bulk.executemany(conn, _RECORD_INTENT, ("project_id", "code", "key", "status", "at"),
                     [(project_id, code, key, "pending", moment)])


def drop_intent(conn: Connection, key: str, *, sent: bool = False) -> None:
    """Drop the pending intent under ``key``: only one no try sent to the catalog,
    unless ``sent`` (the catalog refused the key: nothing is redeemed under it)."""
    conn.execute(_DROP_INTENT if sent else _DROP_UNSENT, {"key": key})


def mark_sent(conn: Connection, key: str) -> bool:
    """Record that the pending intent under ``key`` is about to be sent to the catalog
    by a try that did not write it (a resume), or was sent by a try whose POST failed;
    False when there is no such intent."""
    return bool(conn.execute(_MARK_SENT, {"key": key}).rowcount)


def mark_granted(
    conn: Connection, activation: int, *, credit_id: int, redemption_id: str, at: dt.datetime
) -> None:
    moment = bulk.driver_value(conn, _A.c.updated_at)(at)
    bulk.executemany(conn, _GRANTED,
                     ("activation", "credit_id", "redemption_id", "status", "at"),
                     [(activation, credit_id, redemption_id, "granted", moment)])


def pending(conn: Connection) -> list[dict[str, Any]]:
    """(project_id, code, created_at) of activations recorded but not granted."""
    return [dict(row._mapping) for row in conn.execute(_PENDING)]


# -- the throttle's attempts ----------------------------------------------------------
# A try is named by the key its caller drew before the transaction (a UUID):
# a retry after a lost COMMIT finds the row its first attempt wrote.

_U = schema.voucher_unblocks
#: The reason of a try still running (or whose process died): counted as a failure.
RUNNING = "in progress"

_ATTEMPT_EXISTS = sa.select(_T.c.id).where(_T.c.attempt_key == sa.bindparam("key"))
_INSERT_ATTEMPT = _T.insert().values(
    project_id=sa.bindparam("project_id"), attempt_key=sa.bindparam("key"), succeeded=False,
    reason=sa.bindparam("reason"), created_at=sa.bindparam("at"),
)
_CLOSE = _T.update().where(_T.c.attempt_key == sa.bindparam("key")).values(
    succeeded=sa.bindparam("succeeded"), reason=sa.bindparam("reason")
)
_DROP = _T.delete().where(_T.c.attempt_key == sa.bindparam("key"))
# What the throttle counts: the project's failed and running tries since a
# moment that no unblock cleared. No upper bound on created_at: a concurrent
# try may have taken a later timestamp and committed before this count.
_COUNTED = sa.and_(
    _T.c.project_id == sa.bindparam("project"),
    _T.c.succeeded.is_(False),
    _T.c.unblock_id.is_(None),
    _T.c.created_at > sa.bindparam("since"),
)
_FAILURES = sa.select(sa.func.count()).select_from(_T).where(_COUNTED)
# The n-th oldest counted try (n from 0): when it leaves the window, one
# more try fits under the limit.
_NTH_COUNTED = (
    sa.select(_T.c.created_at).where(_COUNTED)
    .order_by(_T.c.created_at, _T.c.id)
    .limit(1).offset(sa.bindparam("n"))
)
_CLEAR = _T.update().where(_COUNTED).values(unblock_id=sa.bindparam("unblock_id"))
_INSERT_UNBLOCK = _U.insert()
_UNBLOCK = sa.select(_U).where(_U.c.id == sa.bindparam("unblock_id"))


def attempt_exists(conn: Connection, key: str) -> bool:
    return conn.execute(_ATTEMPT_EXISTS, {"key": key}).first() is not None


def insert_attempt(conn: Connection, project_id: str, key: str, *, at: dt.datetime,
                   reason: str = RUNNING) -> None:
    """A try, counted as a failure: running until it is closed (a reservation), or
    failed with ``reason`` (a try that reserved nothing).

    The caller read that ``key`` is not written yet (``Throttle.reserve``,
    ``Throttle.failed``): a retry after a lost COMMIT finds its row.
    """
    bulk.executemany(conn, _INSERT_ATTEMPT, ("project_id", "key", "succeeded", "reason", "at"),
                     [(project_id, key, bulk.driver_value(conn, _T.c.succeeded)(False), reason,
                       bulk.driver_value(conn, _T.c.created_at)(at))])


def close_attempt(conn: Connection, key: str, *, succeeded: bool, reason: str) -> None:
    bulk.executemany(conn, _CLOSE, ("key", "succeeded", "reason"),
                     [(key, bulk.driver_value(conn, _T.c.succeeded)(succeeded), reason)])


def drop_attempt(conn: Connection, key: str) -> None:
    conn.execute(_DROP, {"key": key})


def failures_since(conn: Connection, project_id: str, since: dt.datetime) -> int:
    """Failed and running tries of the project after ``since`` that no unblock cleared."""
    [(count,)] = bulk.fetchall(conn, _FAILURES, {
        "project": project_id, "since": bulk.driver_value(conn, _T.c.created_at)(since)})
    return int(count)


def nth_counted(conn: Connection, project_id: str, since: dt.datetime, n: int
                ) -> dt.datetime | None:
    """When the ``n``-th oldest (from 0) of the tries :func:`failures_since` counts began."""
    return conn.execute(_NTH_COUNTED, {"project": project_id, "since": since, "n": n}
                        ).scalar_one_or_none()


def unblock(
    conn: Connection, unblock_id: str, project_id: str, *, since: dt.datetime, reason: str,
    operator: str, at: dt.datetime,
) -> int:
    """Record an unblock and clear the project's counted tries since ``since``; how many."""
    conn.execute(_INSERT_UNBLOCK, {"id": unblock_id, "project_id": project_id,
                                   "reason": reason, "operator": operator, "cleared": 0,
                                   "created_at": at})
    cleared = conn.execute(_CLEAR, {"project": project_id, "since": since,
                                    "unblock_id": unblock_id}).rowcount
    conn.execute(_U.update().where(_U.c.id == unblock_id).values(cleared=cleared))
    return int(cleared)


def find_unblock(conn: Connection, unblock_id: str) -> Row[Any] | None:
    return conn.execute(_UNBLOCK, {"unblock_id": unblock_id}).one_or_none()


def history(conn: Connection, project_id: str, since: dt.datetime | None
            ) -> tuple[list[Row[Any]], list[Row[Any]]]:
    """The project's tries and unblocks (after ``since``, if given), oldest first."""
    tries = sa.select(_T).where(_T.c.project_id == project_id)
    unblocks = sa.select(_U).where(_U.c.project_id == project_id)
    if since is not None:
        tries = tries.where(_T.c.created_at > since)
        unblocks = unblocks.where(_U.c.created_at > since)
    return (list(conn.execute(tries.order_by(_T.c.created_at, _T.c.id))),
            list(conn.execute(unblocks.order_by(_U.c.created_at, _U.c.id))))
