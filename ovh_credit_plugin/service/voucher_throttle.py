"""The voucher throttle: failed activations counted per project over a window.

A leaf of the service: it knows attempts, not vouchers. A try is reserved
before the catalog is called and counts as a failure until it ends, so
however many tries run at once no more than the limit get through.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.engine import Connection

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.i18n import _
from ovh_credit_plugin.ledger import activations
from ovh_credit_plugin.ledger.database import Database
from ovh_credit_plugin.service.settings import Settings

LOG = logging.getLogger(__name__)
T = TypeVar("T")


class Throttle:
    """Reservations and failures of one ledger's voucher activations."""

    def __init__(self, database: Database, *, settings: Callable[[], Settings]) -> None:
        self.database = database
        self._settings = settings

    def reserve(
        self, project_id: str, at: dt.datetime, *, first: Callable[[Connection], T],
        skip: Callable[[T], bool],
    ) -> tuple[T, int | None]:
        """``first(conn)``, then, unless ``skip`` of its result, a reserved try.

        ``first`` runs in the reserving transaction (the activation's status,
        read with the reservation). Raises TooManyAttempts when the project
        failed too often.

        Each try counts every reservation committed before its count, its own
        included (when tries collide at the limit, one too many may be
        refused: the safe side). Crashed tries keep their reservation until
        the window ends.

        On PostgreSQL and MariaDB (READ COMMITTED) the reservation is
        committed in its own transaction before the count: two concurrent
        transactions that each inserted and then counted could both miss the
        other's uncommitted row. On SQLite, writers run one at a time
        (``BEGIN IMMEDIATE``): counting inside the reserving transaction sees
        every reservation committed before it and is seen by every count
        after it, the same guarantee for one durable commit and no read
        transaction; a throttled try then writes nothing at all.
        """
        settings = self._settings()
        limit, window = settings.voucher_max_failed_attempts, settings.voucher_attempt_window
        since = at - dt.timedelta(seconds=window)
        serialized = self.database.dialect == "sqlite"

        def begin(conn: Connection) -> tuple[T, int | None, int]:
            found = first(conn)
            if skip(found):
                return found, None, 0
            failures = 0
            if serialized:
                failures = activations.failures_since(conn, project_id, since) + 1  # this try
                if failures > limit:
                    return found, None, failures  # throttled: nothing written
            return found, activations.reserve_attempt(conn, project_id, at=at), failures

        found, attempt, failures = self.database.write(begin)
        if skip(found):
            return found, None
        if not serialized:
            failures = self.database.read(
                lambda conn: activations.failures_since(conn, project_id, since)
            )
            if failures > limit:
                assert attempt is not None
                self.drop(attempt)
                attempt = None
        if attempt is None:
            LOG.warning("voucher activation throttled for project %s (%d failed or running "
                        "tries in %d s)", project_id, failures - 1, window)
            raise exceptions.TooManyAttempts(
                _("too many failed voucher activations on this project: "
                  "try again in %(seconds)d seconds") % {"seconds": window}
            )
        return found, attempt

    def drop(self, attempt: int) -> None:
        """Drop a reservation: a try that was nobody's fault is not held against anyone."""
        try:
            self.database.write(lambda conn: activations.drop_attempt(conn, attempt))
        except Exception as error:
            # The activation's own result matters more; a reservation left
            # behind only counts as a failure until the window ends.
            LOG.warning("voucher attempt %s could not be closed: %s", attempt, error)

    @staticmethod
    def succeeded(conn: Connection, attempt: int, *, reason: str) -> None:
        """Close a reservation as a success, in the caller's (granting) transaction."""
        activations.close_attempt(conn, attempt, succeeded=True, reason=reason)

    @staticmethod
    def failed(
        conn: Connection, project_id: str, attempt: int | None, *, reason: str, at: dt.datetime
    ) -> None:
        """Record a failed try: the reservation gets its reason, or a new row is written."""
        if attempt is None:
            activations.record_failure(conn, project_id, reason=reason, at=at)
        else:
            activations.close_attempt(conn, attempt, succeeded=False, reason=reason)
