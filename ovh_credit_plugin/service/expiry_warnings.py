"""The expiry warning job (``ovh-credit notify-expiring``): ``credit.expiring``, once per
credit and threshold.

A credit is warned about when it still holds available credit and ends within
one of ``[cloud_credit] expiry_warning_days`` (30 and 7 days by default). The
rule is the plain one: the credit's available amount is the money at risk,
whatever the project's usage will consume before the end (a burn-aware figure
is the forecast's business). Each warning is recorded in the ledger in the
transaction that decides it and sent after that transaction commits.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from sqlalchemy.engine import Connection

from ovh_credit_plugin import exceptions, models
from ovh_credit_plugin.i18n import _
from ovh_credit_plugin.ledger import expiry_notices
from ovh_credit_plugin.ledger.database import Database
from ovh_credit_plugin.service import events, inputs

LOG = logging.getLogger(__name__)


@dataclass
class ExpiringSummary:
    at: dt.datetime
    thresholds: list[int]
    credits_notified: int = 0
    # Threshold (days) -> warnings sent for it.
    by_threshold: dict[int, int] = field(default_factory=dict)


def notify_expiring(
    database: Database,
    times: inputs.Times,
    *,
    thresholds: list[int],
    notifier: events.Notifier,
    at: dt.datetime | None = None,
    batch_size: int = 500,
) -> ExpiringSummary:
    """Send ``credit.expiring`` for credits with available credit ending within a threshold.

    Thresholds are taken from the smallest: a credit 5 days from its end
    that was never warned gets the 7-day warning only, and its 30-day one is
    recorded as done with it (one message, the most urgent, never two at
    once, and never a 30-day warning after a 7-day one). Each batch is one
    transaction: it records its warnings, then they are sent.

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
    ordered = sorted(set(thresholds))
    summary = ExpiringSummary(at=at, thresholds=ordered)

    for threshold in ordered:
        larger = [days for days in ordered if days >= threshold]

        def work(conn: Connection, threshold: int = threshold,
                 larger: list[int] = larger) -> list[events.Event]:
            rows = expiry_notices.due(conn, at=at, threshold_days=threshold, limit=batch_size)
            done = expiry_notices.recorded(conn, (row.id for row in rows))
            expiry_notices.record(
                conn,
                ((row.id, days) for row in rows for days in larger
                 if (row.id, days) not in done),
                at=at,
            )
            return [
                events.credit_expiring(
                    credit_id=row.id, project_id=row.project_id, kind=row.kind,
                    currency=row.currency, available=row.available,
                    valid_until=row.valid_until, threshold_days=threshold, at=at)
                for row in rows
            ]

        while True:
            sent = database.write(work)
            notifier.emit(sent)
            if not sent:
                break
            summary.credits_notified += len(sent)
            summary.by_threshold[threshold] = summary.by_threshold.get(threshold, 0) + len(sent)
    LOG.info("expiry warnings at %s: %d sent (%s)", models.isoformat(at),
             summary.credits_notified,
             ", ".join(f"{days} days: {count}"
                       for days, count in sorted(summary.by_threshold.items())) or "none")
    return summary
