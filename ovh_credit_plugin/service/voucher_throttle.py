"""The voucher throttle: failed tries (activations, checks) counted per project over a window.

A leaf of the service: it knows attempts, not vouchers. A try is reserved
before the catalog is called and counts as a failure until it ends, so
however many tries run at once no more than the limit get through. An
operator's unblock clears the tries counted against a project, recorded
with who and why.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.engine import Connection

from ovh_credit_plugin import exceptions, i18n
from ovh_credit_plugin.i18n import _
from ovh_credit_plugin.ledger import activations
from ovh_credit_plugin.ledger.database import Database, describe_failure
from ovh_credit_plugin.service import inputs
from ovh_credit_plugin.service.settings import Settings

LOG = logging.getLogger(__name__)
T = TypeVar("T")

def new_attempt() -> str:
    """The key of a new try: drawn once per call, before its transactions, so that
    every retry of a transaction writes the same row (never a second one)."""
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Unblock:
    """What ``voucher unblock`` did: ``unblocked`` False when the project was not blocked."""

    project_id: str
    unblocked: bool
    #: Failed and running tries counted against the project before the unblock.
    counted: int
    limit: int
    id: str | None = None
    cleared: int = 0
    reason: str | None = None
    operator: str | None = None
    created_at: dt.datetime | None = None


class Throttle:
    """Reservations and failures of one ledger's voucher tries."""

    def __init__(self, database: Database, *, settings: Callable[[], Settings]) -> None:
        self.database = database
        self._settings = settings

    def _window(self, at: dt.datetime) -> tuple[int, int, dt.datetime]:
        settings = self._settings()
        limit, window = settings.voucher_max_failed_attempts, settings.voucher_attempt_window
        return limit, window, at - dt.timedelta(seconds=window)

    def reserve(
        self, project_id: str, at: dt.datetime, *, first: Callable[[Connection], T],
        skip: Callable[[T], bool], then: Callable[[Connection], object] | None = None,
    ) -> tuple[T, str | None]:
        """``first(conn)``, then, unless ``skip`` of its result, a reserved try: its key.

        ``first`` runs in the reserving transaction (the activation's status,
        read with the reservation), and so does ``then``, once the try is
        reserved (the activation's intent, written with the reservation).
        Raises TooManyAttempts when the project failed too often; off SQLite
        that is known only after the commit, and ``then`` has run: its writes
        are the caller's to undo.

        Each try counts every reservation committed before its count, its own
        included (when tries collide at the limit, one too many may be
        refused: the safe side). Crashed tries keep their reservation until
        the window ends. The reservation's key is drawn before its
        transaction: a retry of that transaction after a lost COMMIT finds the
        reservation its first attempt committed instead of writing a second
        one (which would count this try twice until the window ends).

        On PostgreSQL and MariaDB (READ COMMITTED) the reservation is
        committed in its own transaction before the count: two concurrent
        transactions that each inserted and then counted could both miss the
        other's uncommitted row. On SQLite, writers run one at a time
        (``BEGIN IMMEDIATE``): counting inside the reserving transaction sees
        every reservation committed before it and is seen by every count
        after it, the same guarantee for one durable commit and no read
        transaction; a throttled try then writes nothing at all.
        """
        limit, window, since = self._window(at)
        serialized = self.database.dialect == "sqlite"
        key = new_attempt()
        # What ``first`` found in a run of the transaction that went on to reserve.
        reserving: list[T] = []

        def begin(conn: Connection) -> tuple[T, str | None, float | None]:
            if reserving and activations.attempt_exists(conn, key):
                # This transaction committed once already (its answer was
                # lost): the try was let through then, and ``then`` wrote what
                # ``first`` would now find instead of what it found then.
                return reserving[0], key, None
            found = first(conn)
            if skip(found):
                return found, None, None
            if serialized and activations.failures_since(conn, project_id, since) >= limit:
                # Throttled: nothing written.
                return found, None, _retry_after(conn, project_id, since=since, limit=limit,
                                                 window=window, at=at)
            reserving[:] = [found]
            activations.insert_attempt(conn, project_id, key, at=at)
            if then is not None:
                then(conn)
            return found, key, None

        found, attempt, retry_after = self.database.write(begin)
        if skip(found):
            return found, None
        # Not mutated: PostgreSQL and MariaDB only, out of the SQLite mutation run's
        # reach; its mutants were checked by hand (docs/testing.md).
        # pragma: no mutate start
        if not serialized:
            failures = self.database.read(
                lambda conn: activations.failures_since(conn, project_id, since)
            )
            if failures > limit:  # its own reservation included
                self.drop(key)
                attempt = None
                retry_after = self.database.read(
                    lambda conn: _retry_after(conn, project_id, since=since, limit=limit,
                                              window=window, at=at)
                )
        # pragma: no mutate end
        if attempt is None:
            refusal = throttled(at, retry_after)
            LOG.warning("voucher attempt throttled for project %s (at least %d failed or "
                        "running attempts in %d s)%s", project_id, limit, window,
                        "" if refusal.retry_after is None
                        else f"; allowed again in {refusal.retry_after} s")
            raise refusal
        return found, attempt

    def drop(self, attempt: str) -> None:
        """Drop a reservation: a try that was nobody's fault is not held against anyone."""
        try:
            self.database.write(lambda conn: activations.drop_attempt(conn, attempt))
        except Exception as error:
            # The try's own result matters more; a reservation left behind
            # only counts as a failure until the window ends.
            LOG.warning("voucher attempt %s could not be closed (%s): it counts as failed "
                        "until its window ends", attempt, describe_failure(error))

    @staticmethod
    def succeeded(conn: Connection, attempt: str, *, reason: str) -> None:
        """Close a reservation as a success, in the caller's (granting) transaction."""
        activations.close_attempt(conn, attempt, succeeded=True, reason=reason)

    @staticmethod
    def failed(
        conn: Connection, project_id: str, attempt: str, *, reason: str, at: dt.datetime
    ) -> None:
        """Record a failed try under its key: its reservation gets the reason, or a row
        is written (once, whatever the retries) for a try that reserved nothing."""
        if activations.attempt_exists(conn, attempt):
            activations.close_attempt(conn, attempt, succeeded=False, reason=reason)
        else:
            activations.insert_attempt(conn, project_id, attempt, at=at, reason=reason)

    # -- operators ------------------------------------------------------------------

    def unblock(self, project_id: str, *, reason: str, operator: str,
                at: dt.datetime) -> Unblock:
        """End a project's throttle window now: its counted tries no longer count.

        Recorded with who, when and why; the tries it cleared point to the
        record. A project that is not blocked (its next try would be let
        through) is left as it is, and nothing is recorded. The tries made
        after the unblock count again, against the same limit.
        """
        project_id = inputs.project_id(project_id)
        reason = _required(reason, "unblocking a project needs a reason")
        operator = _required(operator, "unblocking a project needs the operator's name")
        limit, _, since = self._window(at)
        # Drawn before the transaction: a retry after a lost COMMIT finds its record.
        ident = new_attempt()

        def work(conn: Connection) -> Unblock:
            done = activations.find_unblock(conn, ident)
            if done is not None:
                return Unblock(project_id, True, done.cleared, limit, ident, done.cleared,
                               done.reason, done.operator, done.created_at)
            counted = activations.failures_since(conn, project_id, since)
            if counted < limit:
                return Unblock(project_id, False, counted, limit)
            cleared = activations.unblock(conn, ident, project_id, since=since, reason=reason,
                                          operator=operator, at=at)
            return Unblock(project_id, True, counted, limit, ident, cleared, reason, operator,
                           at)

        result = self.database.write(work)
        if result.unblocked:
            LOG.warning("voucher throttle of project %s ended by %s (%d attempts cleared): %s",
                        project_id, operator, result.cleared, reason)
        return result

    def history(self, project_id: str, *, at: dt.datetime,
                everything: bool = False) -> list[dict[str, Any]]:
        """The project's tries and unblocks, oldest first: those of the window ending at
        ``at``, or ``everything``. ``counted``: whether a try counts against the limit at
        ``at``."""
        project_id = inputs.project_id(project_id)
        _, _, since = self._window(at)
        tries, unblocks = self.database.read(
            lambda conn: activations.history(conn, project_id, None if everything else since)
        )
        # Oldest first; at one instant (a fixed clock), an unblock comes after
        # the tries it cleared (committed before it) and before the others.
        last_cleared: dict[str, int] = {}
        for t in tries:
            if t.unblock_id is not None:
                last_cleared[t.unblock_id] = max(t.id, last_cleared.get(t.unblock_id, 0))
        rows: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
            ((t.created_at, t.id, 0),
             {"created_at": t.created_at,
              "event": "succeeded" if t.succeeded else (
                  "running" if t.reason == activations.RUNNING else "failed"),
              "counted": not t.succeeded and t.unblock_id is None and t.created_at > since,
              "reason": t.reason, "operator": None, "unblock_id": t.unblock_id,
              "cleared": None})
            for t in tries
        ] + [
            ((u.created_at, last_cleared.get(u.id, 0), 1),
             {"created_at": u.created_at, "event": "unblock", "counted": False,
              "reason": u.reason, "operator": u.operator, "unblock_id": u.id,
              "cleared": u.cleared})
            for u in unblocks
        ]
        return [row for _, row in sorted(rows, key=lambda pair: pair[0])]


def throttled(at: dt.datetime, retry_after: float | None) -> exceptions.TooManyAttempts:
    """The error of a throttled try, saying when the project may try again.

    ``retry_after``: the seconds from ``at`` until the throttle lets a try in,
    exactly (a fraction of a second included). Each thing said is rounded up
    once from that moment, never earlier than it: the moment in the message to
    the whole second, the error's ``retry_after`` (the REST API's Retry-After)
    to whole seconds, 1 at least. The moment is not ``at`` plus the rounded
    seconds, rounded up again: that said up to a second later than needed.
    """
    if retry_after is None:
        return exceptions.TooManyAttempts(
            _("too many failed voucher attempts on this project: try again later"))
    allowed = at + dt.timedelta(seconds=retry_after)
    message = (
        _("too many failed voucher attempts on this project: try again after %(when)s")
        % {"when": i18n.moment(_to_the_second(allowed))})
    return exceptions.TooManyAttempts(message, retry_after=max(1, math.ceil(retry_after)))


def _to_the_second(moment: dt.datetime) -> dt.datetime:
    """``moment`` rounded up to a whole second: a customer reads the time, and a
    time a fraction too early would be refused."""
    whole = moment.replace(microsecond=0)
    return whole if whole == moment else whole + dt.timedelta(seconds=1)


def _retry_after(conn: Connection, project_id: str, *, since: dt.datetime, limit: int,
                 window: int, at: dt.datetime) -> float:
    """Seconds until enough counted tries leave the window for one more to fit,
    exactly (:func:`throttled` rounds them up, once).

    One second when one fits already: a try that ended well or an unblock
    freed a place after the refused try was counted (PostgreSQL and MariaDB
    count after reserving), and the project may try again at once.
    """
    counted = activations.failures_since(conn, project_id, since)
    oldest = (activations.nth_counted(conn, project_id, since, counted - limit)
              if counted >= limit else None)
    if oldest is None:
        return 1
    return (oldest + dt.timedelta(seconds=window) - at).total_seconds()


def _required(value: Any, message: str) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise exceptions.InvalidInput(message)
    return text
