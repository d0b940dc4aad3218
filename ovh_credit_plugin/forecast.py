"""Pure expiry forecast: how long a project's credit lasts at its burn rate, what expires unused.

No I/O and no clock, like :mod:`~ovh_credit_plugin.allocation`, whose rule
it replays: the future is simulated day by day with
:func:`~ovh_credit_plugin.allocation.allocate` itself, so the forecast spends
credit in the order settlement does (vouchers first, soonest end, oldest,
id; no usable credit left idle).

The model, in the words docs/api.md uses:

* **History**: the credit applied to the project's charges settled in the
  window (``window_days`` before ``at``), each amount with the scope
  (``products``) of the credit that paid it.
* **Burn rate**: per scope, the window's total divided by ``window_days``,
  rounded down to the ledger's 6 decimal places (a lower rate never hides
  money at risk); ``burn_rate_per_day`` is the sum of the scopes' rates.
* **Scopes**: the ledger does not keep a charge's products, only which
  credit paid it. The burn of a scope S (what credits scoped to S paid) may
  be paid by credits that cover every product of S: unscoped credits and
  credits scoped to S or more. The burn of unscoped credits may be paid by
  unscoped credits only (which products it was for is unknown). A scoped
  credit with no history of its scope is forecast to pay nothing: all of
  it is at risk.
* **Days**: day ``k`` is ``[at + k days, at + k + 1 days)``; its burn is
  settled at its start (a rated period is settled at its start), by the
  credits usable then (``valid_from <= at + k days < valid_until``).
* ``expires_unused``: what a credit still holds at its ``valid_until``
  (0 for a credit without end). ``amount_at_risk`` is their sum.
* ``runs_out_at`` (a credit's): the end of the last day it pays for, the
  day its balance reaches 0; None when it never does (it expires first,
  or nothing consumes it). The project's: the latest of its credits', when
  every one of them runs out; None when some of its credit expires first or
  is never consumed (burn 0, a scope without history), or it holds none.
* Warnings: one per credit with money at risk (at least ``least_at_risk``:
  the currency's minor unit, below which what is left is the burn rate's
  rounding, not money) whose ``valid_until`` is at most the largest of
  ``warning_days`` away; ``days_left`` is the time to
  its end in days, rounded up (ends in 20 days: 20; in 6 hours: 1), and
  ``threshold`` the smallest of ``warning_days`` at or above it.

Day by day in effect, not in cost: while no credit starts, ends or runs
short, every day's allocation is the same, so the simulation moves from one
such event to the next (a few per credit, whatever the horizon).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import NamedTuple

from ovh_credit_plugin import allocation, exceptions, money
from ovh_credit_plugin.allocation import CreditState, Line
from ovh_credit_plugin.i18n import _

ZERO = money.ZERO
DAY = dt.timedelta(days=1)
_END_OF_TIME = dt.datetime.max.replace(tzinfo=dt.timezone.utc)
# A product no simulated line has: a scoped credit that covers none of the
# history's scopes stays scoped (an empty scope would cover everything).
_NO_LINE = ""


class Debit(NamedTuple):
    """Credit applied to a project's charges on ``day`` by credits scoped to ``products``."""

    day: dt.date
    products: frozenset[str]  # empty: unscoped credit
    amount: Decimal


class CreditForecast(NamedTuple):
    credit_id: int
    kind: str
    valid_until: dt.datetime | None
    available: Decimal
    expires_unused: Decimal
    runs_out_at: dt.datetime | None


class ExpiryWarning(NamedTuple):
    credit_id: int
    days_left: int
    amount: Decimal
    threshold: int  # the smallest warning_days at or above days_left


class Forecast(NamedTuple):
    at: dt.datetime
    window_days: int
    available: Decimal
    burn_rate_per_day: Decimal
    runs_out_at: dt.datetime | None
    amount_at_risk: Decimal
    credits: tuple[CreditForecast, ...]  # consumption order
    warnings: tuple[ExpiryWarning, ...]  # soonest end first


def burn_rates(debits: Iterable[Debit], *, window_days: int) -> dict[frozenset[str], Decimal]:
    """Per scope, the window's debits / ``window_days``, rounded down to 6 places (0s left out)."""
    _check_window(window_days)
    totals: dict[frozenset[str], Decimal] = {}
    with money.exact():
        for debit in debits:
            totals[debit.products] = totals.get(debit.products, ZERO) + debit.amount
        rates = {}
        for scope, total in totals.items():
            # Integer division of micro-units: exact, whatever the context's precision.
            micro = int(total.scaleb(money.LEDGER_PLACES)) // window_days
            if micro > 0:
                rates[scope] = Decimal(micro).scaleb(-money.LEDGER_PLACES)
    return rates


def forecast(
    credits: Iterable[CreditState],
    debits: Iterable[Debit],
    *,
    at: dt.datetime,
    window_days: int,
    warning_days: Sequence[int] = (30, 7),
    least_at_risk: Decimal = ZERO,
) -> Forecast:
    """The forecast at ``at`` of a project holding ``credits``, given its window's ``debits``.

    ``credits`` may include credits that can pay nothing any more (empty,
    past their end at ``at``): they are left out of the forecast.
    """
    for days in warning_days:
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise exceptions.InvalidInput(_("warning days must be positive integers, not "
                                            "%(days)r")
                                          % {"days": days})
    rates = burn_rates(debits, window_days=window_days)
    held = [c for c in allocation.consumption_order(credits)
            if c.available > ZERO and (c.valid_until is None or c.valid_until > at)]
    with money.exact():
        left, emptied = _simulate(held, rates, at=at)
        results = []
        for credit in held:
            day = emptied.get(credit.id)
            results.append(CreditForecast(
                credit.id, credit.kind, credit.valid_until, credit.available,
                left[credit.id] if credit.valid_until is not None else ZERO,
                None if day is None else at + (day + 1) * DAY,
            ))
        ends = [r.runs_out_at for r in results if r.runs_out_at is not None]
        return Forecast(
            at=at,
            window_days=window_days,
            available=sum((c.available for c in held), ZERO),
            burn_rate_per_day=sum(rates.values(), ZERO),
            runs_out_at=max(ends) if ends and len(ends) == len(results) else None,
            amount_at_risk=sum((r.expires_unused for r in results), ZERO),
            credits=tuple(results),
            warnings=_warnings(held, results, at=at, warning_days=warning_days,
                               least_at_risk=least_at_risk),
        )


def days_until(moment: dt.datetime, *, at: dt.datetime) -> int:
    """Whole days from ``at`` to ``moment``, rounded up; 0 when ``moment <= at``.

    The first day ``k`` with ``at + k days >= moment``: the day a credit
    starting at ``moment`` first pays, the first day one ending then pays no more.
    """
    days, rest = divmod(moment - at, DAY)
    return max(0, days + (1 if rest else 0))


def _simulate(
    held: Sequence[CreditState], rates: dict[frozenset[str], Decimal], *, at: dt.datetime
) -> tuple[dict[int, Decimal], dict[int, int]]:
    """What each credit holds once nothing more can consume it, and the day each runs out on."""
    left = {c.id: c.available for c in held}
    emptied: dict[int, int] = {}
    scopes = sorted(rates, key=sorted)  # deterministic line order
    lines = [Line(str(i), str(i), rates[scope]) for i, scope in enumerate(scopes)]
    if not lines or not held:
        return left, emptied
    # Each scope is a line whose "product" is its index; a credit covers the
    # scopes whose every product it covers.
    states = {
        c.id: c if not c.products else c._replace(products=frozenset(
            [_NO_LINE, *(str(i) for i, scope in enumerate(scopes) if scope <= c.products
                         and scope)]))
        for c in held
    }
    starts = {c.id: days_until(c.valid_from, at=at) for c in held}
    ends = {c.id: None if c.valid_until is None else days_until(c.valid_until, at=at)
            for c in held}
    boundaries = sorted({day for c in held for day in (starts[c.id], ends[c.id])
                         if day is not None and day > 0})
    last_day = (_END_OF_TIME - at) // DAY  # at + last_day days is still a datetime
    day = 0
    while day <= last_day:
        usable = [states[c.id]._replace(available=left[c.id]) for c in held
                  if left[c.id] > ZERO and starts[c.id] <= day
                  and ((end := ends[c.id]) is None or day < end)]
        paid: dict[int, Decimal] = {}
        for share in allocation.allocate(lines, usable, at=at + day * DAY):
            paid[share.credit_id] = paid.get(share.credit_id, ZERO) + share.amount
        upcoming = next((b for b in boundaries if b > day), None)
        if not paid:
            if upcoming is None:
                break
            day = upcoming
            continue
        # The same allocation holds while every payer keeps at least its share.
        span = int(min(left[ident] // amount for ident, amount in paid.items()))
        if upcoming is not None:
            span = min(span, upcoming - day)
        if day + span > last_day:
            break  # lasts past the calendar's end: never runs out
        for ident, amount in paid.items():
            left[ident] -= amount * span
            if left[ident] == ZERO:
                emptied[ident] = day + span - 1
        day += span
    return left, emptied


def _warnings(
    held: Sequence[CreditState], results: Sequence[CreditForecast], *, at: dt.datetime,
    warning_days: Sequence[int], least_at_risk: Decimal,
) -> tuple[ExpiryWarning, ...]:
    if not warning_days:
        return ()
    horizon = max(warning_days)
    found = []
    for credit, result in zip(held, results, strict=True):
        if (result.expires_unused <= ZERO or result.expires_unused < least_at_risk
                or credit.valid_until is None):
            continue
        days_left = days_until(credit.valid_until, at=at)
        if days_left <= horizon:
            threshold = min(d for d in warning_days if d >= days_left)
            found.append((credit, ExpiryWarning(credit.id, days_left, result.expires_unused,
                                                 threshold)))
    found.sort(key=lambda pair: (pair[0].valid_until, allocation.consumption_key(pair[0])))
    return tuple(warning for _credit, warning in found)


def _check_window(window_days: int) -> None:
    if isinstance(window_days, bool) or not isinstance(window_days, int) or window_days < 1:
        raise exceptions.InvalidInput(
            _("the forecast window is a positive number of days, not %(window_days)r")
            % {"window_days": window_days})
