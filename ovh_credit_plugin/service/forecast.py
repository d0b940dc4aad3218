"""The expiry forecast of a project: its credits and settled history, read in one transaction.

The arithmetic is :mod:`ovh_credit_plugin.forecast` (pure); this module reads
what it needs from the ledger and answers the JSON contract
(:class:`~ovh_credit_plugin.models.Forecast`). The expiry warning job
(:mod:`.expiry_warnings`) forecasts its projects with :func:`forecasts`, so
that a warning says what ``GET {base}/forecast`` says.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy.engine import Connection

from ovh_credit_plugin import allocation, forecast, models, money
from ovh_credit_plugin.ledger import credits, projects, settlements
from ovh_credit_plugin.ledger.database import Database
from ovh_credit_plugin.service import inputs
from ovh_credit_plugin.service.settings import Settings


class ProjectForecast(NamedTuple):
    """A project's forecast as :mod:`ovh_credit_plugin.forecast` computes it (its
    warnings carry their threshold), with the project's currency."""

    project_id: str
    currency: str
    forecast: forecast.Forecast


class _History(NamedTuple):
    """What a project's forecast is computed from, as read from the ledger."""

    project_id: str
    rows: list[Any]
    currency: str | None
    daily: list[settlements.DailyDebit]


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
    (found,) = forecasts(database, settings, [project_id], at=at)
    result = found.forecast
    return models.Forecast.trusted(
        currency=found.currency,
        available=result.available,
        burn_rate_per_day=result.burn_rate_per_day,
        window_days=result.window_days,
        runs_out_at=result.runs_out_at,
        amount_at_risk=result.amount_at_risk,
        credits=[models.ForecastCredit.trusted(
            credit_id=c.credit_id, kind=c.kind, valid_until=c.valid_until,
            available=c.available, expires_unused=c.expires_unused) for c in result.credits],
        warnings=[models.ForecastWarning.trusted(
            credit_id=w.credit_id, days_left=w.days_left, amount=w.amount)
            for w in result.warnings],
    )


def forecasts(
    database: Database, settings: Settings, project_ids: Sequence[str], *, at: dt.datetime
) -> list[ProjectForecast]:
    """The forecast at ``at`` (already checked) of each of ``project_ids``, in their order.

    Every project's credits and history are read in one transaction; the
    simulations run after it, so that no transaction stays open while they do.
    """
    since = at - dt.timedelta(days=settings.forecast_window_days)

    def work(conn: Connection) -> list[_History]:
        return [_History(project_id, credits.project_rows(conn, project_id),
                         projects.currency(conn, project_id),
                         settlements.debits_by_day(conn, project_id, since=since, until=at))
                for project_id in project_ids]

    return [_forecast(history, settings, at=at) for history in database.read(work)]


def _forecast(history: _History, settings: Settings, *, at: dt.datetime) -> ProjectForecast:
    rows = history.rows
    scopes = {row.id: frozenset(json.loads(row.products)) for row in rows}
    held = [allocation.CreditState(row.id, row.kind, row.available, row.valid_from,
                                   row.valid_until, row.created_at, scopes[row.id])
            for row in rows if row.voided_at is None]
    debits = [forecast.Debit(d.day, scopes.get(d.credit_id, frozenset()), d.amount)
              for d in history.daily]
    currency = history.currency or (rows[0].currency if rows else settings.default_currency)
    # Less than a cent left at the end is the burn rate's rounding (to 6 decimals):
    # no customer is warned about it.
    found = forecast.forecast(
        held, debits, at=at, window_days=settings.forecast_window_days,
        warning_days=settings.forecast_warning_days,
        least_at_risk=Decimal(1).scaleb(-money.held_places(currency)))
    return ProjectForecast(history.project_id, currency, found)
