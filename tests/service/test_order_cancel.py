"""Cancelling an order, stated as rules (DESIGN.md: credit appears only once paid).

Only a pending order that has not lapsed can be cancelled; cancelling a cancelled
order again answers it unchanged (a retried click); a paid or lapsed order is
refused with its status in the message, and nothing is written.
"""

from __future__ import annotations

import datetime as dt

import pytest

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.service import CreditService

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
US = dt.timedelta(microseconds=1)


def test_a_pending_order_is_cancelled_until_the_microsecond_before_it_lapses(
    service: CreditService,
) -> None:
    order = service.create_order("p1", "10", at=T0)
    cancelled = service.cancel_order(order.id, at=order.expires_at - US)
    assert (cancelled.status, cancelled.credit_id) == ("cancelled", None)
    assert service.list_credits("p1", at=order.expires_at) == []


def test_cancelling_twice_answers_the_cancelled_order(service: CreditService) -> None:
    order = service.create_order("p1", "10", at=T0)
    first = service.cancel_order(order.id, at=T0 + dt.timedelta(hours=1))
    again = service.cancel_order(order.id, at=T0 + dt.timedelta(hours=2))
    assert again.status == "cancelled"
    assert again == first  # the first cancellation's record, not a new one


def test_a_lapsed_order_cannot_be_cancelled_from_the_instant_it_lapses(
    service: CreditService,
) -> None:
    order = service.create_order("p1", "10", at=T0)
    with pytest.raises(exceptions.InvalidState,
                       match=f"order {order.id} is expired; only a pending order"):
        service.cancel_order(order.id, at=order.expires_at)
    assert service.list_orders("p1", at=order.expires_at - US)[0].status == "pending"


def test_a_paid_order_cannot_be_cancelled(service: CreditService) -> None:
    order = service.create_order("p1", "10", at=T0)
    paid = service.pay_order(order.id, at=T0)
    with pytest.raises(exceptions.InvalidState,
                       match=f"order {order.id} is paid; only a pending order"):
        service.cancel_order(order.id, at=T0 + dt.timedelta(hours=1))
    [credit] = service.list_credits("p1", at=T0)
    assert credit.id == paid.credit_id
    assert service.list_orders("p1", at=T0)[0].status == "paid"
