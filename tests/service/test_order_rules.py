"""Buying credit, stated as rules the customer and the operator see.

Each refusal names what was refused and why, in full (the CLI prints it, the
API returns it); a request retried with its idempotency key is answered with
the order as it stands at the retry's time; a payment at the instant the order
lapses, or of an order the expiry job already lapsed, is refused; an order
lists with its status at the time asked; the credit a payment grants names its
order; the payment link carries what the template asks for.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.ledger import schema
from ovh_credit_plugin.ledger.database import Database
from ovh_credit_plugin.service import CreditService
from tests.support.ledgers import Ledger

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
US = dt.timedelta(microseconds=1)
HOUR = dt.timedelta(hours=1)


@pytest.fixture(autouse=True)
def _eager_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    # Messages translated at once, as a command line has them: an in-process API
    # test earlier in the session leaves oslo.i18n's lazy mode on, whose str()
    # writes amounts in the machine form (log lines) instead of the reader's.
    import oslo_i18n

    monkeypatch.setattr(oslo_i18n._lazy, "USE_LAZY", False)


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def refusal(error: pytest.ExceptionInfo[Exception]) -> str:
    return str(error.value)


def test_each_refusal_of_a_payment_or_a_cancellation_says_why(
        service: CreditService) -> None:
    order = service.create_order("p1", "10", at=T0)
    with pytest.raises(exceptions.InvalidInput) as wrong:
        service.pay_order(order.id, amount="9.99", at=T0)
    assert refusal(wrong) == (
        f"payment of 9.99 does not match order {order.id} (10.00\u00a0EUR excluding tax)")
    with pytest.raises(exceptions.InvalidInput) as wrong:
        service.pay_order(order.id, currency="USD", at=T0)
    assert refusal(wrong) == f"payment in USD does not match order {order.id} (EUR)"
    with pytest.raises(exceptions.InvalidInput) as early:
        service.pay_order(order.id, at=T0 - HOUR)
    assert refusal(early) == (f"order {order.id} was created at 2026-01-31T10:00:00Z: "
                              "--at 2026-01-31T09:00:00Z is earlier")
    with pytest.raises(exceptions.InvalidInput) as early:
        service.cancel_order(order.id, at=T0 - HOUR)
    assert refusal(early) == (f"order {order.id} was created at 2026-01-31T10:00:00Z: "
                              "--at 2026-01-31T09:00:00Z is earlier")
    service.cancel_order(order.id, at=T0 + HOUR)
    with pytest.raises(exceptions.InvalidState) as cancelled:
        service.pay_order(order.id, at=T0 + 2 * HOUR)
    assert refusal(cancelled) == f"order {order.id} is cancelled"

    paid = service.create_order("p1", "10", at=T0)
    service.pay_order(paid.id, at=T0)
    with pytest.raises(exceptions.InvalidState) as done:
        service.cancel_order(paid.id, at=T0 + HOUR)
    assert refusal(done) == f"order {paid.id} is paid; only a pending order can be cancelled"


def test_a_purchase_out_of_bounds_and_a_reused_key_are_refused_in_full(
        service: CreditService) -> None:
    with pytest.raises(exceptions.InvalidAmount) as small:
        service.create_order("p1", "4.99", at=T0)
    assert refusal(small) == (
        "a credit purchase is between 5.00 and 100,000.00\u00a0EUR excluding tax")
    service.create_order_once("p1", "10", idempotency_key="k-1", at=T0)
    with pytest.raises(exceptions.IdempotencyConflict) as reused:
        service.create_order_once("p1", "11", idempotency_key="k-1", at=T0)
    assert refusal(reused) == "idempotency key 'k-1' was used for another order request"
    with pytest.raises(exceptions.InvalidInput) as marker:
        service.list_orders_page("p1", marker="no-such-order", at=T0)
    assert refusal(marker) == "unknown marker 'no-such-order'"


def test_a_retried_request_answers_the_order_as_it_stands_at_the_retry(
        service: CreditService) -> None:
    first, created = service.create_order_once("p1", "10", idempotency_key="k-1", at=T0)
    assert created and first.status == "pending"
    again, created = service.create_order_once("p1", "10.00", idempotency_key="k-1",
                                               at=T0 + HOUR)
    assert not created and again == first
    lapsed, created = service.create_order_once("p1", "10", idempotency_key="k-1",
                                                at=first.expires_at)
    assert not created and (lapsed.id, lapsed.status) == (first.id, "expired")


def test_a_payment_at_the_instant_an_order_lapses_is_refused(service: CreditService) -> None:
    order = service.create_order("p1", "10", at=T0)
    with pytest.raises(exceptions.InvalidState) as lapsed:
        service.pay_order(order.id, at=order.expires_at)
    assert refusal(lapsed) == f"order {order.id} has lapsed unpaid"
    paid = service.pay_order(order.id, at=order.expires_at - US)
    assert paid.status == "paid"


def test_an_order_the_job_lapsed_is_not_paid_by_a_late_back_dated_payment(
        service: CreditService) -> None:
    # The expiry job ran: the order is lapsed in the ledger. A payment
    # provider's webhook arriving after that, dated a little earlier, is refused.
    order = service.create_order("p1", "10", at=T0)
    service.expire(at=order.expires_at + HOUR)
    with pytest.raises(exceptions.InvalidState) as lapsed:
        service.pay_order(order.id, at=order.expires_at - HOUR)
    assert refusal(lapsed) == f"order {order.id} has lapsed unpaid"
    assert service.list_credits("p1", at=order.expires_at + HOUR) == []


def test_orders_list_with_their_status_at_the_time_asked(service: CreditService) -> None:
    order = service.create_order("p1", "10", at=T0)
    assert [o.status for o in service.list_orders("p1", at=T0)] == ["pending"]
    assert [o.status for o in service.list_orders("p1", at=order.expires_at)] == ["expired"]
    page, more = service.list_orders_page("p1", at=T0)
    assert ([o.status for o in page], more) == (["pending"], False)
    page, more = service.list_orders_page("p1", at=order.expires_at)
    assert ([o.status for o in page], more) == (["expired"], False)


def test_a_cancellation_is_recorded_with_its_time(
        service: CreditService, database: Database) -> None:
    order = service.create_order("p1", "10", at=T0)
    service.cancel_order(order.id, at=T0 + HOUR)
    orders = schema.orders
    with database.engine.connect() as conn:
        stored = conn.execute(sa.select(orders.c.status, orders.c.cancelled_at)
                              .where(orders.c.id == order.id)).one()
    assert tuple(stored) == ("cancelled", T0 + HOUR)


def test_a_page_holding_exactly_the_last_orders_says_there_is_no_more(
        service: CreditService) -> None:
    made = [service.create_order("p1", "10", at=T0 + n * US) for n in range(3)]
    page, more = service.list_orders_page("p1", limit=3, at=T0)
    assert ([o.id for o in page], more) == ([o.id for o in made], False)
    page, more = service.list_orders_page("p1", limit=2, at=T0)
    assert (len(page), more) == (2, True)


def test_the_credit_a_payment_grants_names_its_order(service: CreditService) -> None:
    order = service.create_order("p1", "10", at=T0)
    paid = service.pay_order(order.id, at=T0)
    [credit] = service.list_credits("p1", at=T0)
    assert (credit.id, credit.source) == (paid.credit_id, order.id)
    assert order.id in credit.description


def test_the_payment_link_carries_what_its_template_asks_for(ledger: Ledger) -> None:
    service = ledger.service(payment_url_template=(
        "https://pay.example/{project_id}/{order_id}?amount={amount}&currency={currency}"))
    try:
        order = service.create_order("p1", "10", currency="JPY", at=T0)
    finally:
        service.close()
    assert order.payment_url == (
        f"https://pay.example/p1/{order.id}?amount=10&currency=JPY")
    assert order.amount == Decimal(10)
