"""The expiry forecast read from a real ledger, on SQLite, PostgreSQL and MariaDB.

Settled invoices are the history: the burn rate is the credit they took per
day over ``forecast_window_days``; the arithmetic itself is tested against a
brute-force simulation in tests/unit/test_forecast.py.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from ovh_credit_plugin import exceptions, models
from ovh_credit_plugin.allocation import Line
from ovh_credit_plugin.ledger import settlements
from ovh_credit_plugin.ledger.database import Database
from ovh_credit_plugin.service import Charge, CreditService
from tests.support.ledgers import Ledger

UTC = dt.timezone.utc
PAID = dt.datetime(2026, 1, 1, tzinfo=UTC)
# Purchased credit paid at PAID ends 13 months later, on 2027-02-01: AT is 20 days before.
AT = dt.datetime(2027, 1, 12, tzinfo=UTC)
DAY = dt.timedelta(days=1)


def buy(service: CreditService, amount: str, *, project: str = "p1",
        at: dt.datetime = PAID) -> int:
    order = service.pay_order(service.create_order(project, amount, at=at).id, at=at)
    assert order.credit_id is not None
    return order.credit_id


def invoice(invoice_id: str, issued_at: dt.datetime, *lines: tuple[str, str],
            project: str = "p1", currency: str = "EUR") -> models.Invoice:
    return models.Invoice.model_validate({
        "id": invoice_id, "project_id": project, "currency": currency,
        "issued_at": issued_at.isoformat(),
        "lines": [{"id": str(n), "product": product, "amount": amount}
                  for n, (product, amount) in enumerate(lines)],
    })


def settle_daily(service: CreditService, *lines: tuple[str, str], days: int = 30,
                 project: str = "p1") -> None:
    """One invoice a day, at noon, on each of the ``days`` days before AT."""
    for k in range(1, days + 1):
        service.settle_invoice(invoice(f"{project}-I{k}", AT - k * DAY + DAY / 2, *lines,
                                       project=project))


def test_the_issue_example_100_eur_ending_in_20_days_at_2_eur_a_day(
        service: CreditService) -> None:
    credit_id = buy(service, "160.00")
    settle_daily(service, ("instance", "2.00"))  # 30 days x 2: 100 left
    found = service.forecast("p1", at=AT)
    assert found.model_dump(mode="json") == {
        "currency": "EUR",
        "available": "100.00",
        "burn_rate_per_day": "2.00",
        "window_days": 30,
        "runs_out_at": None,
        "amount_at_risk": "60.00",
        "credits": [{"credit_id": credit_id, "kind": "purchased",
                     "valid_until": "2027-02-01T00:00:00Z", "available": "100.00",
                     "expires_unused": "60.00"}],
        "warnings": [{"credit_id": credit_id, "days_left": 20, "amount": "60.00"}],
    }


def test_debits_are_summed_per_day_and_credit_over_the_window(
        service: CreditService, database: Database) -> None:
    purchased = buy(service, "100.00")
    voucher = service.activate_voucher("p1", "WELCOME-2026", at=AT - 40 * DAY).id
    assert purchased < voucher  # the order of the list below
    # The window is [AT - 30 days, AT): its first instant counts, AT does not.
    service.settle_invoice(invoice("D", AT - 30 * DAY, ("instance", "0.25")))
    service.settle_invoice(invoice("E", AT, ("instance", "7.00")))
    # The voucher pays first; two invoices on one day are one day's sum.
    service.settle_invoice(invoice("A", AT - 2 * DAY, ("instance", "30.00")))
    service.settle_invoice(invoice("B", AT - 2 * DAY + DAY / 3, ("instance", "30.00")))
    service.settle_invoice(invoice("C", AT - DAY, ("instance", "1.50")))
    service.settle_invoice(invoice("F", AT - 30 * DAY - dt.timedelta(seconds=1),
                                   ("instance", "0.75")))
    # Nothing of credit in another currency (a mismatch settles with no credit).
    service.settle_invoice(invoice("G", AT - DAY, ("instance", "9.00"), currency="USD"))

    found = database.read(lambda conn: settlements.debits_by_day(
        conn, "p1", since=AT - 30 * DAY, until=AT))
    assert found == [
        settlements.DailyDebit((AT - 30 * DAY).date(), voucher, Decimal("0.25")),
        settlements.DailyDebit((AT - 2 * DAY).date(), purchased, Decimal("17.25")),
        settlements.DailyDebit((AT - 2 * DAY).date(), voucher, Decimal("42.75")),
        settlements.DailyDebit((AT - DAY).date(), purchased, Decimal("1.50")),
    ]
    assert database.read(lambda conn: settlements.debits_by_day(
        conn, "p2", since=AT - 30 * DAY, until=AT)) == []


def test_a_rerated_period_counts_its_current_amounts_only(
        service: CreditService, database: Database) -> None:
    buy(service, "100.00")

    def period(amount: str) -> Charge:
        return Charge.of(key="host/p1/period-1", project_id="p1", invoice_id="period-1",
                         currency="EUR", at=AT - DAY,
                         lines=[Line("l1", "instance", Decimal(amount))])

    service.settle([period("5.00")], on_change="replace")
    service.settle([period("3.00")], on_change="replace")
    (debit,) = database.read(lambda conn: settlements.debits_by_day(
        conn, "p1", since=AT - 30 * DAY, until=AT))
    assert debit.amount == Decimal("3.00")
    assert service.forecast("p1", at=AT).burn_rate_per_day == Decimal("0.1")


def test_a_scoped_voucher_burns_what_its_scope_took(service: CreditService) -> None:
    at = dt.datetime(2026, 12, 20, tzinfo=UTC)
    purchased = buy(service, "200.00", at=at - 60 * DAY)  # ends at + 336 days
    # GPU-ONLY: 20.00 for gpu, ends 2027-01-01 (at + 12 days); WELCOME-2026: 50.00,
    # 90 days from activation (at + 55 days).
    gpu = service.activate_voucher("p1", "GPU-ONLY", at=at - 35 * DAY).id
    welcome = service.activate_voucher("p1", "WELCOME-2026", at=at - 35 * DAY).id
    for k in range(1, 11):  # the gpu voucher pays the gpu line, WELCOME the instance
        service.settle_invoice(invoice(f"I{k}", at - k * DAY + DAY / 2,
                                       ("gpu", "0.60"), ("instance", "1.50")))
    found = service.forecast("p1", at=at)
    # 6.00 of gpu and 15.00 of anything over 30 days: 0.20 + 0.50 a day.
    assert found.burn_rate_per_day == Decimal("0.7")
    assert found.available == Decimal("249")  # 14 + 35 + 200
    assert [(c.credit_id, c.expires_unused) for c in found.credits] == [
        # 12 days of gpu at 0.20 out of 14.00.
        (gpu, Decimal("11.6")),
        # 0.50 a day, 0.70 once the gpu voucher ended: 35.00 gone on day 53.
        (welcome, Decimal("0")),
        # 0.40 on day 53, then 0.70 a day on days 54 to 335: 197.80 of 200.00.
        (purchased, Decimal("2.2")),
    ]
    assert found.amount_at_risk == Decimal("13.8")
    assert found.runs_out_at is None  # some of it expires first
    assert [(w.credit_id, w.days_left, w.amount) for w in found.warnings] == [
        (gpu, 12, Decimal("11.6"))]


def test_no_history_and_unknown_projects(service: CreditService) -> None:
    buy(service, "100.00", at=AT - DAY)
    found = service.forecast("p1", at=AT)
    assert (found.burn_rate_per_day, found.amount_at_risk, found.runs_out_at) == (
        0, Decimal("100"), None)
    assert found.warnings == []  # 13 months away
    assert service.forecast("nobody", at=AT).model_dump(mode="json") == {
        "currency": "EUR", "available": "0.00", "burn_rate_per_day": "0.00",
        "window_days": 30, "runs_out_at": None, "amount_at_risk": "0.00",
        "credits": [], "warnings": []}
    with pytest.raises(exceptions.InvalidInput, match="invalid project id"):
        service.forecast("not a project id", at=AT)


def test_voided_expired_and_empty_credit_holds_nothing_at_risk(
        service: CreditService) -> None:
    voided = buy(service, "50.00", at=AT - 10 * DAY)
    kept = buy(service, "20.00", at=AT - 10 * DAY)
    service.void_credit(voided, reason="charge-back", at=AT - 5 * DAY)
    found = service.forecast("p1", at=AT)
    assert [c.credit_id for c in found.credits] == [kept]
    assert found.available == Decimal("20")
    # Past every end: nothing is held, nothing is at risk.
    later = service.forecast("p1", at=AT + 500 * DAY)
    assert (later.credits, later.available, later.amount_at_risk) == ([], 0, 0)


def test_options_set_the_window_and_the_warnings(ledger: Ledger) -> None:
    service = ledger.service(forecast_window_days=10, forecast_warning_days=[60])
    try:
        credit_id = buy(service, "160.00")
        settle_daily(service, ("instance", "2.00"))
        found = service.forecast("p1", at=AT)
        # 10 days of 2.00: the same rate over a shorter window.
        assert (found.window_days, found.burn_rate_per_day) == (10, Decimal("2"))
        assert [(w.credit_id, w.days_left) for w in found.warnings] == [(credit_id, 20)]
        quiet = ledger.service(forecast_warning_days=[])
        try:
            assert quiet.forecast("p1", at=AT).warnings == []
        finally:
            quiet.close()
    finally:
        service.close()


def test_no_warning_for_what_the_burn_rates_rounding_leaves(service: CreditService) -> None:
    # 40.00 bought, 20.00 used in the window: 0.666666 a day (rounded down), and the
    # 20.00 left ends in 30 days: 0.000020 would be left, less than a cent.
    credit_id = buy(service, "40.00", at=PAID + 10 * DAY)  # ends 30 days after AT
    service.settle_invoice(invoice("I1", AT - 2 * DAY, ("instance", "20.00")))
    found = service.forecast("p1", at=AT)
    assert found.burn_rate_per_day == Decimal("0.666666")
    assert [(c.credit_id, c.expires_unused) for c in found.credits] == [
        (credit_id, Decimal("0.000020"))]
    assert found.warnings == []
