"""The expiry forecast (issue 13, point 1): burn rate, run-out date, money at risk, warnings.

Property tests compare :func:`forecast.forecast` with brute-force simulations
written here from the documented model (ovh_credit_plugin/forecast.py,
docs/api.md), one plain day after another, never using the module's own
helpers:

* rates: each scope's window total in integer micro-units, floor-divided
  by the window's days;
* day ``k`` is settled at ``at + k days`` by the credits usable then;
* with scopes, each day is settled by :func:`allocation.allocate` (the
  settlement rule, tested on its own in test_allocation.py) on one line per
  scope, a credit covering the scopes whose every product it covers;
* without scopes, a second oracle spends each day's burn on the credits in
  consumption order written out from DESIGN.md rule 7, without allocate.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.allocation import CreditState, Line, allocate
from ovh_credit_plugin.forecast import Debit, burn_rates, forecast

UTC = dt.timezone.utc
AT = dt.datetime(2035, 1, 1, tzinfo=UTC)
DAY = dt.timedelta(days=1)
MICRO = 10**6
ALL: frozenset[str] = frozenset()
SCOPES = (ALL, frozenset({"gpu"}), frozenset({"compute"}), frozenset({"gpu", "compute"}))
# Every credit the strategies make ends within this many days of `at`, or never.
HORIZON = 400


def eur(text: str) -> Decimal:
    return Decimal(text)


def credit(ident: int, amount: str, *, kind: str = "purchased", ends_in: float | None = None,
           starts_in: float = -10, created_days_ago: float = 10,
           products: frozenset[str] = ALL) -> CreditState:
    return CreditState(
        ident, kind, eur(amount), AT + dt.timedelta(days=starts_in),
        None if ends_in is None else AT + dt.timedelta(days=ends_in),
        AT - dt.timedelta(days=created_days_ago), products)


def daily(amount: str, *, days: int = 30, products: frozenset[str] = ALL) -> list[Debit]:
    """``amount`` paid on each of the ``days`` days before AT."""
    return [Debit((AT - (i + 1) * DAY).date(), products, eur(amount)) for i in range(days)]


# --------------------------------------------------------------------------- examples


def test_the_issue_example_100_eur_expiring_in_20_days_at_2_eur_a_day() -> None:
    result = forecast([credit(1, "100.00", ends_in=20)], daily("2.00"), at=AT, window_days=30)
    assert result.burn_rate_per_day == eur("2")
    assert result.amount_at_risk == eur("60")
    assert result.runs_out_at is None  # it expires before it runs out
    (only,) = result.credits
    assert (only.available, only.expires_unused, only.runs_out_at) == (eur("100"), eur("60"),
                                                                       None)
    (warning,) = result.warnings
    assert (warning.credit_id, warning.days_left, warning.amount, warning.threshold) == (
        1, 20, eur("60"), 30)


def test_the_example_of_docs_api_md() -> None:
    held = [credit(7, "10.00", kind="voucher", ends_in=40), credit(3, "100.00", ends_in=20)]
    result = forecast(held, daily("2.00"), at=AT, window_days=30)
    assert [(c.credit_id, c.expires_unused) for c in result.credits] == [
        (7, 0), (3, eur("70"))]
    assert (result.available, result.amount_at_risk, result.runs_out_at) == (
        eur("110"), eur("70"), None)
    assert [(w.credit_id, w.days_left, w.amount) for w in result.warnings] == [
        (3, 20, eur("70"))]


def test_no_history_burns_nothing_and_everything_that_ends_is_at_risk() -> None:
    held = [credit(1, "50.00", kind="voucher", ends_in=90), credit(2, "100.00", ends_in=5),
            credit(3, "7.00")]
    result = forecast(held, [], at=AT, window_days=30)
    assert result.burn_rate_per_day == 0
    assert result.available == eur("157")
    assert [(c.credit_id, c.expires_unused) for c in result.credits] == [
        (1, eur("50")), (2, eur("100")), (3, 0)]  # no end: never lost
    assert result.amount_at_risk == eur("150")
    assert result.runs_out_at is None
    assert all(c.runs_out_at is None for c in result.credits)
    assert [(w.credit_id, w.days_left, w.threshold) for w in result.warnings] == [(2, 5, 7)]


def test_vouchers_first_then_purchased_credit_runs_out() -> None:
    held = [credit(1, "100.00", ends_in=400), credit(2, "10.00", kind="voucher", ends_in=30)]
    result = forecast(held, daily("2.00"), at=AT, window_days=30)
    assert [c.credit_id for c in result.credits] == [2, 1]  # consumption order
    voucher, purchased = result.credits
    # The voucher pays days 0-4, the purchased credit days 5-54.
    assert voucher.runs_out_at == AT + 5 * DAY
    assert purchased.runs_out_at == AT + 55 * DAY
    assert result.runs_out_at == AT + 55 * DAY
    assert (result.amount_at_risk, result.warnings) == (0, ())


def test_a_voucher_is_spent_first_even_when_purchased_credit_ends_sooner() -> None:
    held = [credit(1, "30.00", ends_in=10), credit(2, "100.00", kind="voucher", ends_in=100)]
    result = forecast(held, daily("5.00"), at=AT, window_days=30)
    by_id = {c.credit_id: c for c in result.credits}
    # Days 0-9 are the voucher's: the purchased credit ends untouched.
    assert by_id[1].expires_unused == eur("30")
    assert by_id[2].expires_unused == 0 and by_id[2].runs_out_at == AT + 20 * DAY
    assert result.amount_at_risk == eur("30")
    assert [(w.credit_id, w.days_left, w.threshold) for w in result.warnings] == [(1, 10, 30)]


def test_among_purchased_credits_the_soonest_end_pays_first() -> None:
    held = [credit(1, "20.00", ends_in=300), credit(2, "20.00", ends_in=15)]
    result = forecast(held, daily("1.00"), at=AT, window_days=30)
    by_id = {c.credit_id: c for c in result.credits}
    assert by_id[2].expires_unused == eur("5")  # 15 days paid before its end
    assert by_id[1].runs_out_at == AT + 35 * DAY


def test_the_last_partial_day_counts_as_a_day() -> None:
    result = forecast([credit(1, "100.00")], daily("30.00"), at=AT, window_days=30)
    # 30, 30, 30, then 10 of day 3's 30: it lasts into the fourth day.
    assert result.runs_out_at == AT + 4 * DAY


def test_a_scoped_voucher_without_history_of_its_scope_is_all_at_risk() -> None:
    held = [credit(1, "20.00", kind="voucher", ends_in=25, products=frozenset({"gpu"})),
            credit(2, "100.00")]
    result = forecast(held, daily("2.00"), at=AT, window_days=30)
    voucher, purchased = result.credits
    assert voucher.expires_unused == eur("20")
    assert purchased.runs_out_at == AT + 50 * DAY
    assert result.runs_out_at is None  # the voucher is never consumed


def test_a_scoped_voucher_pays_the_burn_of_its_scope_then_credit_covering_it_takes_over() -> None:
    gpu = frozenset({"gpu"})
    held = [credit(1, "10.00", kind="voucher", ends_in=25, products=gpu),
            credit(2, "100.00", ends_in=400)]
    history = daily("1.00", products=gpu) + daily("2.00")
    result = forecast(held, history, at=AT, window_days=30)
    assert result.burn_rate_per_day == eur("3")
    voucher, purchased = result.credits
    # The voucher pays the gpu burn on days 0-9; the purchased credit pays 2 a day,
    # then 3 a day from day 10: 100 - 20 = 80 left, 80 / 3 = 26.67 more days.
    assert voucher.runs_out_at == AT + 10 * DAY
    assert purchased.runs_out_at == AT + 37 * DAY
    assert result.amount_at_risk == 0


def test_a_wider_scope_covers_a_narrower_history_but_not_the_other_way() -> None:
    wide = frozenset({"gpu", "compute"})
    held = [credit(1, "10.00", kind="voucher", ends_in=60, products=wide)]
    covered = forecast(held, daily("1.00", products=frozenset({"gpu"})), at=AT, window_days=30)
    assert covered.credits[0].runs_out_at == AT + 10 * DAY
    narrow = [credit(1, "10.00", kind="voucher", ends_in=60, products=frozenset({"gpu"}))]
    uncovered = forecast(narrow, daily("1.00", products=wide), at=AT, window_days=30)
    assert uncovered.credits[0].expires_unused == eur("10")


def test_credit_that_starts_later_pays_from_its_first_day() -> None:
    held = [credit(1, "10.00", starts_in=10.5, ends_in=40)]
    result = forecast(held, daily("1.00"), at=AT, window_days=30)
    # Day 10 starts before valid_from; days 11-20 are paid.
    assert result.credits[0].runs_out_at == AT + 21 * DAY


def test_credit_past_its_end_or_empty_is_left_out() -> None:
    held = [credit(1, "10.00", ends_in=0), credit(2, "0"), credit(3, "5.00", ends_in=1)]
    result = forecast(held, [], at=AT, window_days=30)
    assert [c.credit_id for c in result.credits] == [3]
    empty = forecast([], daily("1.00"), at=AT, window_days=30)
    assert (empty.available, empty.amount_at_risk, empty.runs_out_at) == (0, 0, None)


def test_burn_rate_is_rounded_down_to_six_places() -> None:
    assert burn_rates([Debit(AT.date(), ALL, eur("10.00"))], window_days=3) == {
        ALL: eur("3.333333")}
    assert burn_rates([Debit(AT.date(), ALL, eur("0.000029"))], window_days=30) == {}
    rates = burn_rates(daily("0.000001", days=30) + daily("1", days=1, products=SCOPES[1]),
                       window_days=30)
    assert rates == {ALL: eur("0.000001"), SCOPES[1]: eur("0.033333")}


def test_warning_thresholds() -> None:
    held = [credit(1, "10.00", ends_in=5.25), credit(2, "10.00", ends_in=30),
            credit(3, "10.00", ends_in=30.01), credit(4, "10.00", ends_in=0.1)]
    result = forecast(held, [], at=AT, window_days=30)
    assert [(w.credit_id, w.days_left, w.threshold) for w in result.warnings] == [
        (4, 1, 7), (1, 6, 7), (2, 30, 30)]
    assert forecast(held, [], at=AT, window_days=30, warning_days=()).warnings == ()
    only = forecast(held, [], at=AT, window_days=30, warning_days=[3])
    assert [w.credit_id for w in only.warnings] == [4]


def test_credit_that_lasts_beyond_the_calendar_never_runs_out() -> None:
    held = [credit(1, "999999999999.000000")]
    result = forecast(held, [Debit(AT.date(), ALL, eur("0.000030"))], at=AT, window_days=30)
    assert result.burn_rate_per_day == eur("0.000001")
    assert (result.runs_out_at, result.credits[0].runs_out_at) == (None, None)


@pytest.mark.parametrize("window", [0, -1, True, 1.5])
def test_bad_window_is_refused(window: object) -> None:
    with pytest.raises(exceptions.InvalidInput, match="window"):
        forecast([], [], at=AT, window_days=window)  # type: ignore[arg-type]


@pytest.mark.parametrize("days", [[0], [30, -7], [True], ["7"]])
def test_bad_warning_days_are_refused(days: list[object]) -> None:
    with pytest.raises(exceptions.InvalidInput, match="warning days"):
        forecast([], [], at=AT, window_days=30, warning_days=days)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- oracles


def micros(amount: Decimal) -> int:
    scaled = amount * MICRO
    assert scaled == scaled.to_integral_value()
    return int(scaled)


def oracle_rates(debits: list[Debit], window_days: int) -> dict[frozenset[str], int]:
    """Micro-units per day of each scope: the window's total, floor-divided by its days."""
    totals: dict[frozenset[str], int] = {}
    for debit in debits:
        totals[debit.products] = totals.get(debit.products, 0) + micros(debit.amount)
    return {scope: total // window_days for scope, total in totals.items()
            if total // window_days > 0}


@dataclass
class Outcome:
    left: dict[int, int]  # micro-units held once the horizon is reached
    emptied: dict[int, int] = field(default_factory=dict)  # credit id -> day it reached 0


def usable(c: CreditState, left: int, when: dt.datetime) -> bool:
    return left > 0 and c.valid_from <= when and (c.valid_until is None or when < c.valid_until)


def brute_force(credits: list[CreditState], rates: dict[frozenset[str], int]) -> Outcome:
    """Every day up to HORIZON, each settled with allocate() on one line per scope."""
    left = {c.id: micros(c.available) for c in credits}
    outcome = Outcome(left)
    names = {scope: "+".join(sorted(scope)) or "*" for scope in rates}
    lines = [Line(names[s], names[s], Decimal(rate) / MICRO) for s, rate in rates.items()]

    def covers(c: CreditState) -> frozenset[str]:
        if not c.products:
            return frozenset()
        return frozenset({"(none)"} | {names[s] for s in rates if s and s <= c.products})

    for day in range(HORIZON):
        when = AT + day * DAY
        states = [c._replace(available=Decimal(left[c.id]) / MICRO, products=covers(c))
                  for c in credits if usable(c, left[c.id], when)]
        for share in allocate(lines, states, at=when):
            left[share.credit_id] -= micros(share.amount)
            if left[share.credit_id] == 0:
                outcome.emptied[share.credit_id] = day
    return outcome


def consumption(c: CreditState) -> tuple[object, ...]:
    """DESIGN.md rule 7: vouchers first; soonest end (none last); oldest; lowest id."""
    return (c.kind != "voucher", c.valid_until is None, c.valid_until or AT, c.created_at, c.id)


def plain_unscoped(credits: list[CreditState], burn: int) -> Outcome:
    """Unscoped credit only: each day's burn taken from the usable credits in order."""
    left = {c.id: micros(c.available) for c in credits}
    outcome = Outcome(left)
    ordered = sorted(credits, key=consumption)
    for day in range(HORIZON):
        due = burn
        for c in ordered:
            if due == 0:
                break
            if usable(c, left[c.id], AT + day * DAY):
                take = min(due, left[c.id])
                left[c.id] -= take
                due -= take
                if left[c.id] == 0:
                    outcome.emptied[c.id] = day
    return outcome


# --------------------------------------------------------------------------- strategies


amounts = st.builds(
    lambda units, places: Decimal(units).scaleb(-places),
    st.integers(1, 40_000), st.sampled_from([2, 2, 2, 6]))


@st.composite
def credit_lists(draw: st.DrawFn, *, scoped: bool = True) -> list[CreditState]:
    made = []
    for ident in range(1, draw(st.integers(0, 5)) + 1):
        starts = draw(st.integers(-240, 960))  # hours from AT
        ends = draw(st.none() | st.integers(1, 1500))  # hours after valid_from
        made.append(CreditState(
            ident, draw(st.sampled_from(["voucher", "purchased"])), draw(amounts),
            AT + dt.timedelta(hours=starts),
            None if ends is None else AT + dt.timedelta(hours=starts + ends),
            AT - dt.timedelta(hours=draw(st.integers(0, 5))),
            draw(st.sampled_from(SCOPES)) if scoped else ALL,
        ))
    return made


@st.composite
def histories(draw: st.DrawFn, *, scoped: bool = True) -> list[Debit]:
    return [Debit((AT - DAY).date(), draw(st.sampled_from(SCOPES)) if scoped else ALL,
                  draw(amounts))
            for _ in range(draw(st.integers(0, 4)))]


windows = st.sampled_from([1, 3, 7, 30])


def check_against(result_credits: tuple, credits: list[CreditState],  # type: ignore[type-arg]
                  outcome: Outcome) -> None:
    held = {c.id: c for c in credits
            if c.available > 0 and (c.valid_until is None or c.valid_until > AT)}
    assert {c.credit_id for c in result_credits} == set(held)
    for found in result_credits:
        c = held[found.credit_id]
        if c.valid_until is not None:
            assert micros(found.expires_unused) == outcome.left[c.id], c
        else:
            assert found.expires_unused == 0
        day = outcome.emptied.get(c.id)
        if day is not None:
            assert found.runs_out_at == AT + (day + 1) * DAY, c
        else:
            # Not within the horizon: never, or (without an end) later.
            assert found.runs_out_at is None or (
                c.valid_until is None and found.runs_out_at > AT + HORIZON * DAY), c


def check_totals(result, credits: list[CreditState], outcome: Outcome,  # type: ignore[no-untyped-def]
                 rates: dict[frozenset[str], int]) -> None:
    assert micros(result.burn_rate_per_day) == sum(rates.values())
    assert result.amount_at_risk == sum((c.expires_unused for c in result.credits), Decimal(0))
    assert result.available == sum((c.available for c in result.credits), Decimal(0))
    every_day = [outcome.emptied.get(c.credit_id) for c in result.credits]
    if result.credits and None not in every_day:
        assert result.runs_out_at == AT + (max(every_day) + 1) * DAY  # type: ignore[type-var]
    elif any(c.expires_unused > 0 for c in result.credits) or not result.credits:
        assert result.runs_out_at is None
    else:  # only credits without an end still hold money at the horizon
        assert result.runs_out_at is None or result.runs_out_at > AT + HORIZON * DAY
    for c in result.credits:
        assert 0 <= c.expires_unused <= c.available
    warned = {w.credit_id: w for w in result.warnings}
    for c in result.credits:
        if c.expires_unused > 0 and c.valid_until is not None \
                and c.valid_until - AT <= dt.timedelta(days=30):
            days_left = -((AT - c.valid_until) // DAY)  # rounded up
            warning = warned.pop(c.credit_id)
            assert (warning.days_left, warning.amount) == (days_left, c.expires_unused)
            assert warning.threshold == (7 if days_left <= 7 else 30)
    assert warned == {}


# --------------------------------------------------------------------------- properties


# deadline=None: what this checks is values, not speed; on the shared 2-core CI
# machine an example now and then passes hypothesis' 200 ms default under load,
# which would fail a correct run. Each example simulates up to a year day by day.
@settings(max_examples=200, deadline=None)
@given(credits=credit_lists(), debits=histories(), window=windows)
def test_matches_a_day_by_day_simulation(credits: list[CreditState], debits: list[Debit],
                                         window: int) -> None:
    result = forecast(credits, debits, at=AT, window_days=window)
    rates = oracle_rates(debits, window)
    outcome = brute_force(credits, rates)
    check_against(result.credits, credits, outcome)
    check_totals(result, credits, outcome, rates)


# deadline=None: what this checks is values, not speed; on the shared 2-core CI
# machine an example now and then passes hypothesis' 200 ms default under load,
# which would fail a correct run. Each example simulates up to a year day by day.
@settings(max_examples=200, deadline=None)
@given(credits=credit_lists(scoped=False), debits=histories(scoped=False), window=windows)
def test_unscoped_credit_matches_the_plain_consumption_order(
        credits: list[CreditState], debits: list[Debit], window: int) -> None:
    result = forecast(credits, debits, at=AT, window_days=window)
    rates = oracle_rates(debits, window)
    outcome = plain_unscoped(credits, sum(rates.values()))
    check_against(result.credits, credits, outcome)
    check_totals(result, credits, outcome, rates)
    assert [c.credit_id for c in result.credits] == [
        c.id for c in sorted(credits, key=consumption)
        if c.available > 0 and (c.valid_until is None or c.valid_until > AT)]


# deadline=None: what this checks is values, not speed; on the shared 2-core CI
# machine an example now and then passes hypothesis' 200 ms default under load,
# which would fail a correct run. Each example simulates up to a year day by day.
@settings(max_examples=100, deadline=None)
@given(credits=credit_lists(), debits=histories(), window=windows)
def test_no_history_puts_everything_that_ends_at_risk(
        credits: list[CreditState], debits: list[Debit], window: int) -> None:
    result = forecast(credits, [], at=AT, window_days=window)
    assert result.burn_rate_per_day == 0 and result.runs_out_at is None
    for c in result.credits:
        assert c.expires_unused == (c.available if c.valid_until is not None else 0)


def test_what_the_burn_rates_rounding_leaves_is_no_money_at_risk() -> None:
    # 20.00 used in 30 days: 0.666666 a day (rounded down), so 20.00 ending in 30
    # days keeps 0.000020 at its end: shown, but no customer is warned about it.
    used = [Debit((AT - DAY).date(), ALL, eur("20.00"))]
    result = forecast([credit(1, "20.00", ends_in=30)], used, at=AT, window_days=30,
                      least_at_risk=eur("0.01"))
    assert result.burn_rate_per_day == eur("0.666666")
    assert result.credits[0].expires_unused == eur("0.000020")
    assert result.warnings == ()
    # A cent is money: warned.
    result = forecast([credit(1, "20.01", ends_in=30)], used, at=AT, window_days=30,
                      least_at_risk=eur("0.01"))
    assert [(w.credit_id, w.amount) for w in result.warnings] == [(1, eur("0.010020"))]
