"""Voucher activations (intents and grants) and the throttle's attempts.

Statements are built once: building a Core statement (and its cache key)
per call cost more than running it on SQLite.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from ovh_credit_plugin.ledger import schema

_A = schema.voucher_activations
_T = schema.voucher_attempts

_ACTIVATION = sa.select(_A).where(
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
_GRANTED = _A.update().where(_A.c.id == sa.bindparam("activation")).values(
    status="granted", credit_id=sa.bindparam("credit_id"),
    redemption_id=sa.bindparam("redemption_id"), updated_at=sa.bindparam("at"),
)
_PENDING = (
    sa.select(_A.c.project_id, _A.c.code, _A.c.created_at)
    .where(_A.c.status == "pending")
    .order_by(_A.c.created_at, _A.c.id)
)


def find(conn: Connection, project_id: str, code: str, *, lock: bool = False) -> Row[Any] | None:
    """The project's activation of ``code`` (locked until commit with ``lock``)."""
    query = _ACTIVATION_LOCKED if lock else _ACTIVATION
    return conn.execute(query, {"project_id": project_id, "code": code}).one_or_none()


def status(conn: Connection, project_id: str, code: str) -> str | None:
    """``pending``, ``granted`` or None (never tried, or refused)."""
    return conn.execute(_STATUS, {"project_id": project_id, "code": code}).scalar_one_or_none()


def record_intent(
    conn: Connection, *, project_id: str, code: str, key: str, at: dt.datetime
) -> None:
    conn.execute(_RECORD_INTENT, {"project_id": project_id, "code": code, "key": key, "at": at})


def drop_intent(conn: Connection, key: str) -> None:
    conn.execute(_DROP_INTENT, {"key": key})


def mark_granted(
    conn: Connection, activation: int, *, credit_id: int, redemption_id: str, at: dt.datetime
) -> None:
    conn.execute(_GRANTED, {"activation": activation, "credit_id": credit_id,
                            "redemption_id": redemption_id, "at": at})


def pending(conn: Connection) -> list[dict[str, Any]]:
    """(project_id, code, created_at) of activations recorded but not granted."""
    return [dict(row._mapping) for row in conn.execute(_PENDING)]


# -- the throttle's attempts ----------------------------------------------------------

_RESERVE = _T.insert().values(
    project_id=sa.bindparam("project_id"), succeeded=False, reason="in progress",
    created_at=sa.bindparam("at"),
)
_FAILED = _T.insert().values(
    project_id=sa.bindparam("project_id"), succeeded=False, reason=sa.bindparam("reason"),
    created_at=sa.bindparam("at"),
)
_CLOSE = _T.update().where(_T.c.id == sa.bindparam("attempt")).values(
    succeeded=sa.bindparam("succeeded"), reason=sa.bindparam("reason")
)
_DROP = _T.delete().where(_T.c.id == sa.bindparam("attempt"))
# Failed and running tries of a project since a moment. No upper bound on
# created_at: a concurrent try may have taken a later timestamp and committed
# before this count.
_FAILURES = sa.select(sa.func.count()).select_from(_T).where(
    _T.c.project_id == sa.bindparam("project_id"),
    _T.c.succeeded.is_(False),
    _T.c.created_at > sa.bindparam("since"),
)


def reserve_attempt(conn: Connection, project_id: str, *, at: dt.datetime) -> int:
    """A running try, counted as a failure until it is closed; its id."""
    result = conn.execute(_RESERVE, {"project_id": project_id, "at": at})
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


def record_failure(conn: Connection, project_id: str, *, reason: str, at: dt.datetime) -> None:
    conn.execute(_FAILED, {"project_id": project_id, "reason": reason, "at": at})


def close_attempt(conn: Connection, attempt: int, *, succeeded: bool, reason: str) -> None:
    conn.execute(_CLOSE, {"attempt": attempt, "succeeded": succeeded, "reason": reason})


def drop_attempt(conn: Connection, attempt: int) -> None:
    conn.execute(_DROP, {"attempt": attempt})


def failures_since(conn: Connection, project_id: str, since: dt.datetime) -> int:
    """Failed and running tries of the project after ``since``."""
    return int(conn.execute(_FAILURES, {"project_id": project_id, "since": since}).scalar_one())
