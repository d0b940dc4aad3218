"""What a project holds: its credits in consumption order, one credit's ledger, voids.

Credits come back as :class:`CreditResult` (plain values); the facade gives
hosts the pydantic :class:`models.Credit` of each.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from ovh_credit_plugin import allocation, contracts, exceptions
from ovh_credit_plugin.contracts import CreditResult
from ovh_credit_plugin.i18n import _
from ovh_credit_plugin.ledger import credits
from ovh_credit_plugin.ledger.database import Database
from ovh_credit_plugin.service import events, inputs

if TYPE_CHECKING:
    from ovh_credit_plugin import models

LOG = logging.getLogger(__name__)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def list_of(
    database: Database, times: inputs.Times, project_id: str, *, at: dt.datetime | None = None
) -> list[CreditResult]:
    """Every credit of the project, in consumption order."""
    at = times.read(at)
    project_id = inputs.project_id(project_id)

    def work(conn: Connection) -> list[CreditResult]:
        rows = credits.project_rows(conn, project_id)
        rows.sort(key=allocation.consumption_key)
        return [credits.result(row, at=at) for row in rows]

    return database.read_statement(work)


STATUSES = ("active", "exhausted", "expired", "voided")


def page(
    database: Database,
    times: inputs.Times,
    project_id: str,
    *,
    status: str | None = None,
    limit: int = 100,
    marker: str | int | None = None,
    at: dt.datetime | None = None,
) -> tuple[list[CreditResult], bool]:
    """Up to ``limit`` credits after ``marker`` (a credit id), in consumption order; and
    whether more remain.

    The consumption order is a credit's fixed fields (kind, end, creation,
    id), so a marker keeps its place between pages whatever the balances do
    meanwhile; the status filter applies after it. A project holds few
    credits: they are read whole and sorted here, as :func:`list_of` does.
    """
    inputs.page(limit, status, STATUSES)
    every = list_of(database, times, project_id, at=at)
    if marker is not None:
        place = next((index for index, credit in enumerate(every)
                      if str(credit.id) == str(marker)), None)
        if place is None:
            raise exceptions.InvalidInput(_("unknown marker %(marker)r") % {"marker": marker})
        every = every[place + 1:]
    if status is not None:
        every = [credit for credit in every if credit.status == status]
    return every[:limit], len(every) > limit


def show(
    database: Database, times: inputs.Times, credit_id: Any, *, at: dt.datetime | None = None
) -> tuple[CreditResult, list[models.LedgerEntry]]:
    """One credit and its ledger entries, oldest first."""
    at = times.read(at)
    ident = inputs.credit_id(credit_id)

    def work(conn: Connection) -> tuple[CreditResult, list[models.LedgerEntry]]:
        row = credits.row(conn, ident)
        if row is None:
            raise exceptions.CreditNotFound(_("no credit %(id)s") % {"id": credit_id})
        return credits.result(row, at=at), credits.entries_of(conn, ident)

    # One snapshot for both statements (PostgreSQL and MariaDB read each statement's
    # own under READ COMMITTED): a settlement committed between them would show
    # figures that are not the sums of the entries shown with them.
    return database.read(work, isolation_level="REPEATABLE READ")


def void(
    database: Database, times: inputs.Times, credit_id: Any, *, reason: str,
    notifier: events.Notifier, at: dt.datetime | None = None,
) -> CreditResult:
    """Operator action (fraud, charge-back): the balance is voided, with a reason.

    Idempotent on the reason: voiding a voided credit again with the same
    reason returns it unchanged (a retry after a connection lost during
    COMMIT, an operator re-running the command); another reason is refused.
    """
    at = times.change(at)
    ident = inputs.credit_id(credit_id)
    reason = reason.strip() if isinstance(reason, str) else ""
    if not reason:
        raise exceptions.InvalidInput(_("voiding a credit needs a reason"))
    if "\x00" in reason or not _encodable(reason):
        # PostgreSQL refuses a NUL in text, and no backend stores a lone surrogate
        # (a command line argument that was not UTF-8): refused alike everywhere.
        raise exceptions.InvalidInput(
            _("a void reason must be UTF-8 text without NUL characters"))

    def work(conn: Connection) -> tuple[CreditResult, list[events.Event]]:
        credit = credits.lock_credit(conn, ident)
        if credit.voided_at is not None:
            done = credits.row(conn, ident)
            assert done is not None
            if done.void_reason == reason:
                return credits.result(done, at=at), []
            raise exceptions.InvalidState(
                _("credit %(id)s is already voided (%(reason)s)")
                % {"id": ident, "reason": done.void_reason})
        voided_at = times.not_before(
            at, credit.created_at, _("credit %(id)s was granted") % {"id": ident})
        entries, sent = [], []
        ended = credit.valid_until
        if ended is not None and ended <= min(voided_at, times.now()) and credit.available:
            # Past its end, what it holds is lost to expiry, as the expiry job
            # records it (at the same clock guard): a void recorded before the
            # job ran must not move that loss from expired to voided.
            entries.append(credit.expire_rest(note=f"valid until {contracts.isoformat(ended)}"))
            sent.append(events.credit_expired(
                credit_id=ident, project_id=credit.project_id, kind=credit.kind,
                currency=credit.currency, amount=entries[-1].amount, valid_until=ended,
                at=voided_at))
        entry = credit.void_rest(reason=reason)
        entries.append(entry)
        credits.write_balances(conn, [credit])
        credits.mark_voided(conn, ident, at=voided_at, reason=reason)
        credits.insert_entries(conn, entries, at=voided_at)
        row = credits.row(conn, ident)
        assert row is not None
        sent.append(events.credit_voided(
            credit_id=ident, project_id=credit.project_id, kind=credit.kind,
            currency=credit.currency, amount=entry.amount, reason=reason, at=voided_at))
        return credits.result(row, at=voided_at), sent

    voided, voided_events = database.write(work)
    for event in voided_events:  # logged once committed, by the call that voided it
        if event.event_type == events.CREDIT_VOIDED:
            payload = event.payload
            LOG.warning("credit %s of project %s voided (%s): %s %s lost", ident,
                        payload["project_id"], reason, payload["amount"],
                        payload["currency"])
    notifier.emit(voided_events)
    return voided
