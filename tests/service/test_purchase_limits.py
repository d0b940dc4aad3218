"""Purchase limits per currency (issue 14, point 5).

``purchase_min_amount`` and ``purchase_max_amount`` take one amount (for
``default_currency``) or ``CURRENCY:AMOUNT`` pairs. An order in a currency
with limits of its own is bounded by them; an order in a currency without any
is refused and writes nothing: the customer reads that credit is not sold
in that currency, the operator (a WARNING in the log, the operator CLI) which
options to set (tests/service/test_purchase_refusal_words.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import pytest

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.service import CreditService
from tests.support.ledgers import Ledger

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 31, 10, 0, tzinfo=UTC)

YEN_LIMITS = {"purchase_min_amount": "EUR:5,JPY:500",
              "purchase_max_amount": "EUR:100000,JPY:10000000"}
# The defaults as an operator upgrading from one value per option has them: EUR only.
EUR_ONLY = {"purchase_min_amount": "5", "purchase_max_amount": "100000"}
REFUSAL = r"^cloud credit is not sold in JPY$"


@pytest.fixture(autouse=True)
def _eager_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    # Messages translated at once, as a command line has them: an in-process API
    # test earlier in the session leaves oslo.i18n's lazy mode on, whose str()
    # writes amounts in the machine form (log lines) instead of the reader's.
    import oslo_i18n

    monkeypatch.setattr(oslo_i18n._lazy, "USE_LAZY", False)


@pytest.fixture
def yen(ledger: Ledger) -> Iterator[CreditService]:
    service = ledger.service(**YEN_LIMITS)
    yield service
    service.close()


@pytest.fixture
def eur_only(ledger: Ledger) -> Iterator[CreditService]:
    service = ledger.service(**EUR_ONLY)
    yield service
    service.close()


def test_an_order_in_yen_is_bounded_by_the_yen_limits(yen: CreditService) -> None:
    assert yen.create_order("jp", "500", currency="JPY", at=T0).amount == Decimal(500)
    assert yen.create_order("jp", "10000000", currency="JPY", at=T0).amount == Decimal(10000000)
    for amount in ("499", "10000001"):
        with pytest.raises(exceptions.InvalidAmount,
                           match="a credit purchase is between 500 and "
                                 "10,000,000\u00a0JPY excluding tax"):
            yen.create_order("jp", amount, currency="JPY", at=T0)
    # The project bills in JPY now: an order without a currency takes its limits too.
    with pytest.raises(exceptions.InvalidAmount, match="between 500 and 10,000,000\u00a0JPY"):
        yen.create_order("jp", "100", at=T0)
    # EUR keeps its own.
    assert yen.create_order("eu", "5", at=T0).currency == "EUR"
    with pytest.raises(exceptions.InvalidAmount, match=r"between 5\.00 and 100,000\.00\u00a0EUR"):
        yen.create_order("eu", "4.99", at=T0)
    assert sorted(o.amount for o in yen.list_orders("jp", at=T0)) == [500, 10000000]


def test_an_order_in_a_currency_without_limits_is_refused_and_writes_nothing(
    ledger: Ledger, eur_only: CreditService
) -> None:
    # A project that bills in JPY through a voucher: its orders are in JPY.
    eur_only.activate_voucher("jp", "YEN-1000", at=T0)
    before = ledger.checksum()
    with pytest.raises(exceptions.PurchaseNotOffered, match=REFUSAL):
        eur_only.create_order("new", "1000", currency="JPY", at=T0)
    with pytest.raises(exceptions.PurchaseNotOffered, match=REFUSAL):
        eur_only.create_order("jp", "1000", at=T0)
    with pytest.raises(exceptions.PurchaseNotOffered, match=REFUSAL):
        eur_only.create_order_once("jp", "1000", currency="JPY", idempotency_key="k-1", at=T0)
    assert ledger.checksum() == before
    assert eur_only.project_currency("new") is None
    # The single amounts are the default currency's, as before.
    assert eur_only.create_order("eu", "100000", at=T0).currency == "EUR"


def test_a_single_amount_is_for_the_default_currency_whichever_it_is(ledger: Ledger) -> None:
    service = ledger.service(default_currency="JPY", purchase_min_amount="500",
                             purchase_max_amount="10000000")
    try:
        assert service.create_order("jp", "500", at=T0).currency == "JPY"
        with pytest.raises(exceptions.InvalidAmount, match="between 500 and 10,000,000\u00a0JPY"):
            service.create_order("jp", "499", at=T0)
        with pytest.raises(exceptions.PurchaseNotOffered, match="cloud credit is not sold in EUR"):
            service.create_order("eu", "100", currency="EUR", at=T0)
    finally:
        service.close()
