"""Second read of this session's changes: what a legitimate ledger or a caller still met."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from ovh_credit_plugin.allocation import Line
from ovh_credit_plugin.service import Charge, CreditService

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 31, 10, 0, tzinfo=UTC)


def _period(currency: str, amount: str) -> Charge:
    return Charge.of(key="rating/p1/2026-02-01", project_id="p1", invoice_id="2026-02-01",
                     currency=currency, at=T0 + dt.timedelta(days=1),
                     lines=[Line("l1", "compute", Decimal(amount))])


def test_a_period_re_rated_in_another_currency_passes_the_audit(service: CreditService) -> None:
    """CloudKitty re-rates a period in another currency than the credit's: the credit
    gets its debit back (net zero on it) and the settlement is a currency_mismatch.
    Nothing was moved to another project's or currency's credit."""
    order = service.create_order("p1", "100", currency="EUR", at=T0)
    service.pay_order(order.id, at=T0)
    [first] = service.settle([_period("EUR", "10")], on_change="replace")
    assert first.credit_applied == Decimal(10)
    [again] = service.settle([_period("USD", "10")], on_change="replace")
    assert again.note == "currency_mismatch" and again.credit_applied == 0
    report = service.audit()
    assert report.violations == []
