"""The expiry warning job (``ovh-credit notify-expiring``): ``credit.expiring``, once per
credit and threshold.

The warnings are the forecast's (:mod:`.forecast`, the same as ``GET
{base}/forecast``): a credit is warned about when, at the project's burn rate,
it will still hold money at its end (``expires_unused``) and that end is
within one of ``[cloud_credit] forecast_warning_days``. A credit that the
project's usage will consume before its end is not warned about.

Only projects holding a credit that ends within the largest threshold and was
not warned for it yet are forecast, once each per run: the job's cost follows
the credits about to end, not the ledger's size. Each batch of projects is
forecast in a read transaction (no write lock is held while it simulates),
then its new warnings are recorded in one write transaction, which decides
which are new, and sent after it commits. A warning the notification
transport fails to send (a broker down past ``retry``) is not left recorded
as sent: its records are deleted, the run stops there, and the next run sends
it (``credits_unsent`` says how many were left for it).

A warning is recorded as being sent, and marked sent once the transport has
taken it. A run killed between the two leaves it being sent: once that is
older than ``[cloud_credit] expiry_warning_send_timeout`` (plus
``clock_skew_allowance``, for another node's clock), the next run deletes
its records and sends it again if it is still due. So a warning is sent at
least once; a run killed after sending and before marking sends it twice
(consumers tell them apart by ``credit_id`` and ``threshold_days``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from sqlalchemy.engine import Connection

from ovh_credit_plugin import contracts, exceptions
from ovh_credit_plugin.forecast import CreditForecast, ExpiryWarning
from ovh_credit_plugin.i18n import _
from ovh_credit_plugin.ledger import expiry_notices
from ovh_credit_plugin.ledger.database import Database
from ovh_credit_plugin.service import events, inputs
from ovh_credit_plugin.service.forecast import ProjectForecast, forecasts
from ovh_credit_plugin.service.settings import Settings

LOG = logging.getLogger(__name__)


@dataclass
class ExpiringSummary:
    at: dt.datetime
    thresholds: list[int]
    # Projects that held a credit ending within a threshold, each forecast once.
    projects_forecast: int = 0
    credits_notified: int = 0
    # Threshold (days) -> warnings sent for it.
    by_threshold: dict[int, int] = field(default_factory=dict)
    # Warnings the transport failed to send: not recorded, the next run sends them.
    credits_unsent: int = 0
    # Why (events.Delivery.failure): the transport's error, for the operator's console.
    send_failure: str = ""


def notify_expiring(
    database: Database,
    settings: Settings,
    times: inputs.Times,
    *,
    notifier: events.Notifier,
    at: dt.datetime | None = None,
    batch_size: int = 500,
) -> ExpiringSummary:
    """Send ``credit.expiring`` for each warning of the forecasts at ``at`` not sent before.

    A warning names the smallest threshold at or above its ``days_left``: a
    credit 5 days from its end that was never warned gets the 7-day warning
    only, and its 30-day one is recorded as done with it (one message, the
    most urgent, never two at once, and never a 30-day warning after a 7-day
    one). ``batch_size`` projects are forecast at a time.

    Refused when no notification driver is configured: the warnings would be
    recorded as sent, and never sent again.
    """
    at = times.change(at)
    inputs.batch_size(batch_size)
    if not notifier.enabled:
        raise exceptions.ConfigError(
            _("notifications are off: set [oslo_messaging_notifications] driver "
              "(e.g. messagingv2 or log) before sending expiry warnings")
        )
    thresholds = sorted(set(settings.forecast_warning_days))
    summary = ExpiringSummary(at=at, thresholds=thresholds)
    # Another node's clock may be ahead of ours by up to the allowance: a run there,
    # recording by its clock, is not taken for dead before the whole timeout.
    _reclaim(database, before=times.now() - dt.timedelta(
        seconds=settings.expiry_warning_send_timeout + settings.clock_skew_allowance))
    after: str | None = None
    while thresholds:
        def due(conn: Connection, after: str | None = after) -> list[str]:
            return expiry_notices.projects_due(conn, at=at, thresholds=thresholds,
                                               after=after, limit=batch_size)

        batch = database.read(due)
        if not batch:
            break
        after = batch[-1]
        found = forecasts(database, settings, batch, at=at)
        summary.projects_forecast += len(found)

        def work(conn: Connection, found: Sequence[ProjectForecast] = found
                 ) -> tuple[dt.datetime, list[_New]]:
            now = times.now()  # each attempt's own: the one committed is returned
            return now, _record_new(conn, found, thresholds=thresholds, at=at, now=now)

        since, recorded = database.write(work)
        delivery = notifier.deliver(new.event for new in recorded)
        delivered = delivery.sent
        if delivered:
            def mark(conn: Connection, done: Sequence[_New] = recorded[:delivered]) -> None:
                expiry_notices.sent(conn, (pair for new in done for pair in new.recorded))

            database.write(mark)
        for new in recorded[:delivered]:
            summary.credits_notified += 1
            summary.by_threshold[new.warning.threshold] = (
                summary.by_threshold.get(new.warning.threshold, 0) + 1)
        if delivered < len(recorded):
            # Recorded as sent, never sent: forgotten, so that the next run sends
            # them. The transport is failing: the next batches would fail as well.
            unsent = recorded[delivered:]

            def forget(conn: Connection, unsent: Sequence[_New] = unsent,
                       since: dt.datetime = since) -> None:
                expiry_notices.forget(conn, (pair for new in unsent for pair in new.recorded),
                                      sending_since=since)

            database.write(forget)
            summary.credits_unsent += len(unsent)
            summary.send_failure = delivery.failure
            LOG.warning("expiry warnings at %s: %d could not be sent; not recorded as sent, "
                        "the next run sends them", contracts.isoformat(at), len(unsent))
            break
    LOG.info("expiry warnings at %s: %s forecast, %d sent (%s)",
             contracts.isoformat(at), _counted(summary.projects_forecast, "project"),
             summary.credits_notified,
             ", ".join(f"{_counted(days, 'day')}: {count}"
                       for days, count in sorted(summary.by_threshold.items())) or "none")
    return summary


#: Of the records a run takes back from a dead run, how many its WARNING line names.
_RECLAIMED_NAMED = 20


def _reclaim(database: Database, *, before: dt.datetime) -> None:
    """Forget the warnings recorded by a run that died before it could send them
    (still being sent since before ``before``): this run sends those still due.

    One WARNING line: how many records of how many credits, since when, and the
    first :data:`_RECLAIMED_NAMED` of them (a dead run's batch can hold thousands,
    and a line of all of them is more than syslog keeps)."""
    found = database.write(lambda conn: expiry_notices.reclaim(conn, before=before))
    if found:
        named = ", ".join(f"credit {credit_id} ({_counted(days, 'day')})"
                          for credit_id, days, _since in found[:_RECLAIMED_NAMED])
        more = len(found) - _RECLAIMED_NAMED
        LOG.warning(
            "expiry warnings recorded by a run that never said it sent them (it died "
            "between recording and sending?), being sent since %s: %s of %s: %s%s; "
            "forgotten, so that this run sends those still due",
            contracts.isoformat(min(since for _c, _d, since in found)),
            _counted(len(found), "record"),
            _counted(len({credit_id for credit_id, _d, _s in found}), "credit"),
            named, f" and {more} more" if more > 0 else "")


def _counted(count: int, noun: str) -> str:
    """``1 project``, ``2 projects``: a log line's count and its noun (English)."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


class _New(NamedTuple):
    """A warning recorded by this run: its event, and the (credit_id, threshold_days)
    pairs recorded for it (its threshold and the larger ones it makes needless)."""

    warning: ExpiryWarning
    event: events.Event
    recorded: tuple[tuple[int, int], ...]


def _record_new(
    conn: Connection, found: Sequence[ProjectForecast], *, thresholds: Sequence[int],
    at: dt.datetime, now: dt.datetime,
) -> list[_New]:
    """Record the forecasts' warnings not sent before, with the larger thresholds they
    make needless; their events, to send once this transaction commits."""
    warned = [(project, warning) for project in found for warning in project.forecast.warnings]
    done = expiry_notices.recorded(conn, (warning.credit_id for _p, warning in warned))
    new = [(project, warning) for project, warning in warned
           if (warning.credit_id, warning.threshold) not in done]
    made = []
    for project, warning in new:
        credit = _credit(project, warning.credit_id)
        assert credit.valid_until is not None  # a credit without end is never at risk
        made.append(_New(warning, events.credit_expiring(
            credit_id=warning.credit_id, project_id=project.project_id, kind=credit.kind,
            currency=project.currency, expires_unused=warning.amount,
            available=credit.available, valid_until=credit.valid_until,
            days_left=warning.days_left, threshold_days=warning.threshold, at=at),
            tuple((warning.credit_id, days) for days in thresholds
                  if days >= warning.threshold and (warning.credit_id, days) not in done)))
    expiry_notices.record(conn, (pair for new in made for pair in new.recorded), at=at,
                          now=now)
    return made


def _credit(project: ProjectForecast, credit_id: int) -> CreditForecast:
    return next(c for c in project.forecast.credits if c.credit_id == credit_id)
