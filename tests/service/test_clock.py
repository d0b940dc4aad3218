"""The service's clock: no change is dated in the future, and expiry waits for the clock.

An operator's ``expire --at 2072-01-01`` used to expire live credit for good
(the audit stayed clean: the ledger recorded exactly what it was told).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from ovh_credit_plugin import exceptions, models
from ovh_credit_plugin.service import CreditService
from tests.support.ledgers import Ledger

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
SKEW = dt.timedelta(seconds=300)


@pytest.fixture
def clocked(ledger: Ledger) -> CreditService:
    service = ledger.service()
    return CreditService(database=service.database, settings=service.settings,
                         catalog=service.catalog, clock=lambda: NOW)


def _invoice(invoice_id: str, issued_at: dt.datetime) -> models.Invoice:
    return models.Invoice.model_validate({
        "id": invoice_id, "project_id": "p1", "currency": "EUR", "issued_at": issued_at,
        "lines": [{"id": "1", "product": "compute", "amount": "1.00"}],
    })


def test_every_change_refuses_a_time_after_now_and_the_skew(clocked: CreditService) -> None:
    later = NOW + SKEW + dt.timedelta(seconds=1)
    order = clocked.create_order("p1", "100", at=NOW)
    paid = clocked.create_order("p1", "10", at=NOW)
    credit_id = clocked.pay_order(paid.id, at=NOW).credit_id
    changes = {
        "create": lambda: clocked.create_order("p1", "10", at=later),
        "pay": lambda: clocked.pay_order(order.id, at=later),
        "cancel": lambda: clocked.cancel_order(order.id, at=later),
        "void": lambda: clocked.void_credit(credit_id, reason="fraud", at=later),
        "activate": lambda: clocked.activate_voucher("p1", "WELCOME-2026", at=later),
        "settle": lambda: clocked.settle_invoice(_invoice("INV-1", NOW), at=later),
        "expire": lambda: clocked.expire(at=later),
    }
    for name, change in changes.items():
        with pytest.raises(exceptions.InvalidInput, match="is in the future"):
            change()
        assert clocked.audit().ok, name
    assert sorted(o.status for o in clocked.list_orders("p1", at=NOW)) == ["paid", "pending"]
    [credit] = clocked.list_credits("p1", at=NOW)
    assert (credit.status, credit.available) == ("active", Decimal("10.00"))
    # Within the skew: another node's clock, accepted.
    assert clocked.cancel_order(order.id, at=NOW + SKEW).status == "cancelled"


def test_reads_may_look_ahead(clocked: CreditService) -> None:
    order = clocked.create_order("p1", "10", at=NOW)
    clocked.pay_order(order.id, at=NOW)
    far = dt.datetime(2072, 1, 1, tzinfo=dt.timezone.utc)
    [credit] = clocked.list_credits("p1", at=far)
    assert (credit.status, credit.available, credit.expired) == (
        "expired", Decimal("0"), Decimal("10.00"))
    [shown] = clocked.list_orders("p1", at=far)
    assert shown.status == "paid"
    # Nothing was recorded by looking: today the credit is whole.
    [today] = clocked.list_credits("p1", at=NOW)
    assert (today.status, today.available) == ("active", Decimal("10.00"))


def test_expiry_waits_for_the_clock_even_within_the_skew(ledger: Ledger) -> None:
    base = ledger.service()
    clock = [NOW - dt.timedelta(days=396)]  # the credit is bought 13 months before NOW
    service = CreditService(database=base.database, settings=base.settings,
                            clock=lambda: clock[0])
    order = service.create_order("p1", "10", at=clock[0])
    service.pay_order(order.id, at=clock[0])
    [credit] = service.list_credits("p1", at=clock[0])
    assert credit.valid_until is not None
    # The clock one minute before the end; --at two minutes after it (within the skew).
    clock[0] = credit.valid_until - dt.timedelta(minutes=1)
    summary = service.expire(at=credit.valid_until + dt.timedelta(minutes=2))
    assert summary.credits_expired == 0
    [kept] = service.list_credits("p1", at=clock[0])
    assert (kept.status, kept.available) == ("active", Decimal("10.00"))
    # Once the clock passes the end, the job records the loss.
    clock[0] = credit.valid_until + dt.timedelta(seconds=1)
    assert service.expire().credits_expired == 1
    assert service.audit().ok


def test_the_expiry_job_ahead_of_the_clock_lapses_no_order_still_payable(
        clocked: CreditService) -> None:
    # Created almost a lapse delay ago: payable for one more minute on the clock.
    order = clocked.create_order("p1", "10", at=NOW - dt.timedelta(days=7, minutes=-1))
    assert order.expires_at == NOW + dt.timedelta(minutes=1)
    # --at four minutes ahead (within the skew): past the order's end, not on the clock.
    assert clocked.expire(at=NOW + dt.timedelta(minutes=4)).orders_lapsed == 0
    # The customer paid; the payment provider's confirmation arrives now.
    assert clocked.pay_order(order.id, at=NOW).status == "paid"
    # An order whose end the clock has passed is lapsed by the same run.
    late = clocked.create_order("p1", "10", at=NOW - dt.timedelta(days=7, minutes=1))
    assert clocked.expire(at=NOW + dt.timedelta(minutes=4)).orders_lapsed == 1
    with pytest.raises(exceptions.InvalidState, match="has lapsed unpaid"):
        clocked.pay_order(late.id, at=NOW)
