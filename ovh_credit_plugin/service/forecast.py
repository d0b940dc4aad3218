"""The expiry forecast of a project: its credits and settled history, read in one transaction.

The arithmetic is :mod:`ovh_credit_plugin.forecast` (pure); this module reads
what it needs from the ledger and answers the JSON contract
(:class:`~ovh_credit_plugin.models.Forecast`).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy.engine import Connection

from ovh_credit_plugin import allocation, forecast, models
from ovh_credit_plugin.ledger import credits, projects, settlements
from ovh_credit_plugin.ledger.database import Database
from ovh_credit_plugin.service import inputs
from ovh_credit_plugin.service.settings import Settings


def forecast_of(
    database: Database, settings: Settings, times: inputs.Times, project_id: str, *,
    at: dt.datetime | None = None,
) -> models.Forecast:
    """When the project's credit runs out at its burn rate, and what expires unused first.

    The burn rate is the average of the ``forecast_window_days`` days before
    ``at``; the balances are the ledger's current ones (as ``list_credits``
    shows them), so an ``at`` in the future asks "and if nothing is settled
    until then?".
    """
    at = times.read(at)
    project_id = inputs.project_id(project_id)
    window = settings.forecast_window_days
    since = at - dt.timedelta(days=window)

    def work(conn: Connection) -> tuple[list[Any], str | None, list[settlements.DailyDebit]]:
        return (credits.project_rows(conn, project_id), projects.currency(conn, project_id),
                settlements.debits_by_day(conn, project_id, since=since, until=at))

    rows, currency, daily = database.read(work)
    scopes = {row.id: frozenset(json.loads(row.products)) for row in rows}
    held = [allocation.CreditState(row.id, row.kind, row.available, row.valid_from,
                                   row.valid_until, row.created_at, scopes[row.id])
            for row in rows if row.voided_at is None]
    debits = [forecast.Debit(d.day, scopes.get(d.credit_id, frozenset()), d.amount)
              for d in daily]
    found = forecast.forecast(held, debits, at=at, window_days=window,
                              warning_days=settings.forecast_warning_days)
    return models.Forecast.trusted(
        currency=currency or (rows[0].currency if rows else settings.default_currency),
        available=found.available,
        burn_rate_per_day=found.burn_rate_per_day,
        window_days=found.window_days,
        runs_out_at=found.runs_out_at,
        amount_at_risk=found.amount_at_risk,
        credits=[models.ForecastCredit.trusted(
            credit_id=c.credit_id, kind=c.kind, valid_until=c.valid_until,
            available=c.available, expires_unused=c.expires_unused) for c in found.credits],
        warnings=[models.ForecastWarning.trusted(
            credit_id=w.credit_id, days_left=w.days_left, amount=w.amount)
            for w in found.warnings],
    )
