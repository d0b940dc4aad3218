"""A ledger that holds a currency ISO 4217 has since withdrawn.

Bulgaria moved to the euro on 1 January 2026, and ``iso4217`` 1.15 dropped BGN;
``pyproject.toml`` allows any release from 1.11, whose table also had HRK, CUC,
ANG, SLL and ZWL. Credits bought in leva before an operator upgrades the package
are still the customer's for up to 13 months: they must still read, settle,
expire and audit. New money in a withdrawn currency (an order, a voucher, a
charge) is refused as before.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest

from ovh_credit_plugin import exceptions, money
from ovh_credit_plugin.allocation import Line
from ovh_credit_plugin.api import ovh
from ovh_credit_plugin.service import Charge, CreditService
from tests.support.ledgers import Ledger

UTC = dt.timezone.utc
T0 = dt.datetime(2025, 12, 1, 10, 0, tzinfo=UTC)
AT = dt.datetime(2026, 2, 1, 10, 0, tzinfo=UTC)
LEVA = {"default_currency": "BGN", "purchase_min_amount": "BGN:5",
        "purchase_max_amount": "BGN:1000"}


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def leva_bought_before_the_upgrade(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[CreditService, str]]:
    """A project's 100.50 BGN of credit bought with the older package, read with today's."""
    today: Callable[[str], int] = money.currency_places

    def as_iso4217_1_14(code: str) -> int:
        return 2 if code == "BGN" else today(code)

    with monkeypatch.context() as older:
        older.setattr(money, "currency_places", as_iso4217_1_14)
        before = ledger.service(**LEVA)
        order = before.create_order("bg", "100.50", at=T0)
        paid = before.pay_order(order.id, at=T0)
        before.close()
    assert paid.credit_id is not None
    with pytest.raises(exceptions.InvalidCurrency):
        money.currency_places("BGN")  # the installed package no longer knows it
    # Today's configuration: the operator sells in euros now.
    service = ledger.service()
    yield service, paid.credit_id
    service.close()


def test_credits_in_a_withdrawn_currency_still_read_with_their_decimals(
    leva_bought_before_the_upgrade: tuple[CreditService, str],
) -> None:
    service, credit_id = leva_bought_before_the_upgrade
    [credit] = service.list_credits("bg", at=AT)
    assert (credit.currency, credit.total, credit.available) == (
        "BGN", Decimal("100.50"), Decimal("100.50"))
    dumped = credit.model_dump(mode="json")
    assert (dumped["total"], dumped["available"]) == ("100.50", "100.50")
    shown, _entries = service.show_credit(credit_id, at=AT)
    assert shown.model_dump(mode="json")["total"] == "100.50"
    assert ovh.credit(shown)["available_credit"]["text"] == "100.50 BGN"
    forecast = service.forecast("bg", at=AT)
    assert forecast.currency == "BGN"


def test_a_charge_in_the_withdrawn_currency_is_still_refused(
    leva_bought_before_the_upgrade: tuple[CreditService, str],
) -> None:
    service, _credit_id = leva_bought_before_the_upgrade
    charge = Charge.of(key="host/bg/2026-01", project_id="bg", invoice_id="2026-01",
                       currency="BGN", at=AT, lines=[Line("l0", "compute", Decimal("1"))])
    with pytest.raises(exceptions.InvalidCurrency):
        service.settle([charge], at=AT)
    with pytest.raises(exceptions.InvalidCurrency):
        service.create_order("bg", "10", currency="BGN", at=AT)
    [credit] = service.list_credits("bg", at=AT)
    assert credit.available == Decimal("100.50")


def test_what_is_left_expires_and_the_ledger_still_audits(
    leva_bought_before_the_upgrade: tuple[CreditService, str],
) -> None:
    service, _credit_id = leva_bought_before_the_upgrade
    end = dt.datetime(2027, 1, 1, 10, 0, tzinfo=UTC)  # 13 months after T0
    service.expire(at=end)
    [credit] = service.list_credits("bg", at=end)
    assert (credit.status, credit.expired, credit.available) == (
        "expired", Decimal("100.50"), Decimal(0))
    assert service.audit().ok
