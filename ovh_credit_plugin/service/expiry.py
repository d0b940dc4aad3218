"""The expiry job: unpaid orders lapse, and credit past its end records what it lost."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy.engine import Connection

from ovh_credit_plugin import contracts, money
from ovh_credit_plugin.ledger import credits, orders
from ovh_credit_plugin.ledger.database import Database
from ovh_credit_plugin.service import events, inputs

LOG = logging.getLogger(__name__)
ZERO = money.ZERO


@dataclass
class ExpirySummary:
    at: dt.datetime
    orders_lapsed: int = 0
    credits_expired: int = 0
    amount_expired: dict[str, Decimal] = field(default_factory=dict)


def expire(
    database: Database,
    times: inputs.Times,
    *,
    notifier: events.Notifier,
    at: dt.datetime | None = None,
    batch_size: int = 500,
    progress: Callable[[int], None] | None = None,
) -> ExpirySummary:
    """Lapse unpaid orders and record the balance lost by credits past their end.

    Credits are expired in batches of one transaction each, so that a large
    run holds few locks at a time; a run interrupted between batches is
    finished by the next one.

    A credit is expired, and an order lapsed, only once its end has passed on
    the clock as well as at ``at``: a mistyped ``--at`` must not destroy live
    credit (there is no undo), nor refuse the payment of an order its
    customer may still pay, and ``at`` may run ahead of the clock by the skew
    allowance.

    Each credit expired sends ``credit.expired`` once its batch committed. Once
    a send failed, the rest of the run sends nothing and logs what it lost: each
    send to a transport that is down waits out its retries (seconds), and one
    per credit would stall the job for hours.
    """
    at = times.change(at)
    inputs.batch_size(batch_size)
    ended = min(at, times.now())
    summary = ExpirySummary(at=at)
    summary.orders_lapsed = database.write(lambda conn: orders.lapse(conn, at=ended))

    def work(conn: Connection) -> tuple[int, int, dict[str, Decimal], list[events.Event]]:
        ids = credits.expiring_ids(conn, at=ended, limit=batch_size)
        locked = credits.credits_by_id(conn, ids)
        entries = []
        # Counted here, added to the summary once committed: a retried
        # attempt must not count twice.
        lost: dict[str, Decimal] = {}
        expired: list[events.Event] = []
        for credit in locked.values():
            if credit.available <= ZERO or credit.voided_at is not None:
                # A concurrent expiry job (or a void) took it while we
                # waited for its row lock: nothing is left to expire.
                continue
            until = contracts.isoformat(credit.valid_until or at)
            entry = credit.expire_rest(note=f"valid until {until}")
            entries.append(entry)
            lost[credit.currency] = lost.get(credit.currency, ZERO) + entry.amount
            expired.append(events.credit_expired(
                credit_id=credit.id, project_id=credit.project_id, kind=credit.kind,
                currency=credit.currency, amount=entry.amount, valid_until=credit.valid_until,
                at=at))
        credits.write_balances(conn, locked.values())
        credits.insert_entries(conn, entries, at=at)
        return len(ids), len(entries), lost, expired

    notifying = sending = notifier.enabled
    while True:
        selected, done, lost, expired = database.write(work)
        unsent = expired
        if sending:
            unsent = expired[notifier.deliver(expired).sent:]
            sending = not unsent
        if unsent and notifying:
            LOG.error("notifications %s not sent: the notification transport failed; the "
                      "credits are expired all the same", events.about(unsent))
        if not selected:
            break
        for currency, amount in lost.items():
            summary.amount_expired[currency] = summary.amount_expired.get(currency, ZERO) + amount
        summary.credits_expired += done
        if progress:
            progress(done)
    LOG.info("expiry at %s: %d credits expired, %d orders lapsed",
             contracts.isoformat(at), summary.credits_expired, summary.orders_lapsed)
    return summary
