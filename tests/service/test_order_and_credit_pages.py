"""The service's reads and keys behind the REST API, on SQLite, PostgreSQL and MariaDB:
order lookup, pages of orders and credits (marker, status, lapsed orders), idempotency keys.
"""

from __future__ import annotations

import datetime as dt

import pytest

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.contracts import CreditResult
from ovh_credit_plugin.service import CreditService
from tests.support.ledgers import T0


def test_show_order_and_its_status_as_of_a_time(service: CreditService) -> None:
    order = service.create_order("p1", "20.00", at=T0)
    assert service.show_order(order.id, at=T0) == order
    lapsed = service.show_order(order.id, at=T0 + dt.timedelta(days=8))
    assert (lapsed.status, lapsed.id) == ("expired", order.id)
    with pytest.raises(exceptions.OrderNotFound):
        service.show_order("00000000-0000-0000-0000-000000000000")


def test_order_pages_markers_and_statuses(service: CreditService) -> None:
    made = [service.create_order("p1", f"{10 + i}.00", at=T0 + dt.timedelta(minutes=i))
            for i in range(5)]
    service.create_order("p2", "10.00", at=T0)
    service.cancel_order(made[1].id, at=T0 + dt.timedelta(hours=1))
    service.pay_order(made[2].id, at=T0 + dt.timedelta(hours=1))
    later = T0 + dt.timedelta(hours=2)

    seen, marker, more = [], None, True
    while more:
        page, more = service.list_orders_page("p1", limit=2, marker=marker, at=later)
        seen += [o.id for o in page]
        marker = page[-1].id
    assert seen == [o.id for o in made]

    def ids(status: str, at: dt.datetime = later) -> list[str]:
        return [o.id for o in service.list_orders_page("p1", status=status, at=at)[0]]

    assert ids("pending") == [made[0].id, made[3].id, made[4].id]
    assert ids("cancelled") == [made[1].id]
    assert ids("paid") == [made[2].id]
    # Pending orders past their end are expired before the expiry job runs.
    week = T0 + dt.timedelta(days=8)
    assert ids("expired", week) == [made[0].id, made[3].id, made[4].id]
    assert ids("pending", week) == []
    after = service.list_orders_page("p1", status="pending", marker=made[0].id, at=later)
    assert [o.id for o in after[0]] == [made[3].id, made[4].id]
    with pytest.raises(exceptions.InvalidInput, match="unknown marker"):
        service.list_orders_page("p2", marker=made[0].id)  # another project's order
    for bad in ({"limit": 0}, {"limit": 1001}, {"limit": True}, {"status": "open"}):
        with pytest.raises(exceptions.InvalidInput):
            service.list_orders_page("p1", **bad)  # type: ignore[arg-type]


def test_credit_pages_keep_consumption_order(service: CreditService) -> None:
    for amount in ("10.00", "20.00", "30.00"):
        service.pay_order(service.create_order("p1", amount, at=T0).id, at=T0)
    service.activate_voucher("p1", "WELCOME-2026", at=T0)
    every = service.list_credits("p1", at=T0)
    first, more = service.list_credits_page("p1", limit=3, at=T0)
    rest, done = service.list_credits_page("p1", limit=3, marker=first[-1].id, at=T0)
    assert (first + rest, more, done) == (every, True, False)
    # The REST API's page: the same credits as plain values.
    results, more = service.list_credit_results_page("p1", limit=3, at=T0)
    assert ([c.model() for c in results], more) == (first, True)
    assert all(isinstance(c, CreditResult) for c in results)
    service.void_credit(every[0].id, reason="fraud", at=T0)
    active, _ = service.list_credits_page("p1", status="active", at=T0)
    assert [c.id for c in active] == [c.id for c in every[1:]]
    # The marker keeps its place though its credit no longer matches the filter.
    after, _ = service.list_credits_page("p1", status="active", marker=every[0].id, at=T0)
    assert [c.id for c in after] == [c.id for c in every[1:]]
    with pytest.raises(exceptions.InvalidInput, match="unknown marker"):
        service.list_credits_page("p2", marker=every[0].id)


def test_idempotency_keys(service: CreditService) -> None:
    order, created = service.create_order_once("p1", "20.00", idempotency_key="k1", at=T0)
    assert created
    again = service.create_order_once("p1", "20", idempotency_key="k1", at=T0)
    assert again == (order, False)
    with pytest.raises(exceptions.IdempotencyConflict):
        service.create_order_once("p1", "21.00", idempotency_key="k1", at=T0)
    with pytest.raises(exceptions.IdempotencyConflict):
        service.create_order_once("p1", "20.00", currency="EUR", idempotency_key="k1", at=T0)
    other, created = service.create_order_once("p2", "20.00", idempotency_key="k1", at=T0)
    assert created and other.id != order.id
    for bad in ("", "k" * 256, "tab\there", "é"):
        with pytest.raises(exceptions.InvalidInput):
            service.create_order_once("p1", "20.00", idempotency_key=bad, at=T0)
    assert len(service.list_orders("p1")) == 1
