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
which are new, and sent after it commits.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

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
                 ) -> list[tuple[ExpiryWarning, events.Event]]:
            return _record_new(conn, found, thresholds=thresholds, at=at)

        sent = database.write(work)
        notifier.emit(event for _warning, event in sent)
        for warning, _event in sent:
            summary.credits_notified += 1
            summary.by_threshold[warning.threshold] = (
                summary.by_threshold.get(warning.threshold, 0) + 1)
    LOG.info("expiry warnings at %s: %d projects forecast, %d sent (%s)",
             contracts.isoformat(at), summary.projects_forecast, summary.credits_notified,
             ", ".join(f"{days} days: {count}"
                       for days, count in sorted(summary.by_threshold.items())) or "none")
    return summary


def _record_new(
    conn: Connection, found: Sequence[ProjectForecast], *, thresholds: Sequence[int],
    at: dt.datetime,
) -> list[tuple[ExpiryWarning, events.Event]]:
    """Record the forecasts' warnings not sent before, with the larger thresholds they
    make needless; their events, to send once this transaction commits."""
    warned = [(project, warning) for project in found for warning in project.forecast.warnings]
    done = expiry_notices.recorded(conn, (warning.credit_id for _p, warning in warned))
    new = [(project, warning) for project, warning in warned
           if (warning.credit_id, warning.threshold) not in done]
    expiry_notices.record(
        conn,
        ((warning.credit_id, days) for _p, warning in new for days in thresholds
         if days >= warning.threshold and (warning.credit_id, days) not in done),
        at=at,
    )
    sent = []
    for project, warning in new:
        credit = _credit(project, warning.credit_id)
        assert credit.valid_until is not None  # a credit without end is never at risk
        sent.append((warning, events.credit_expiring(
            credit_id=warning.credit_id, project_id=project.project_id, kind=credit.kind,
            currency=project.currency, expires_unused=warning.amount,
            available=credit.available, valid_until=credit.valid_until,
            days_left=warning.days_left, threshold_days=warning.threshold, at=at)))
    return sent


def _credit(project: ProjectForecast, credit_id: int) -> CreditForecast:
    return next(c for c in project.forecast.credits if c.credit_id == credit_id)
