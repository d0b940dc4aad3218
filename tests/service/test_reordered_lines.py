"""An invoice is its lines, not their order: the same lines in another order are a
replay, never a conflict (invoices) nor a re-rating (a host's periods).

A host may send an invoice again with its lines in another order (a query without
``ORDER BY``, a reprocessing that walks them otherwise). Each line has its id; an
invoice holds each id once. The replay answers the recorded settlement, its
allocations as they were made the first time, and debits nothing. A settlement
recorded by an earlier version (whose fingerprint followed the lines' order) still
replays when its lines come again in that order.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from ovh_credit_plugin import exceptions, models
from ovh_credit_plugin.allocation import Line
from ovh_credit_plugin.ledger import schema
from ovh_credit_plugin.service import Charge, CreditService, fingerprint
from tests.support.ledgers import Ledger

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
AT = T0 + dt.timedelta(days=1)
LINES = [("L1", "compute", "6.00"), ("L2", "storage", "5.00"), ("L3", "compute", "2.00")]


def buy(service: CreditService, project: str, amount: str) -> None:
    order = service.create_order(project, amount, at=T0)
    service.pay_order(order.id, at=T0)


def invoice(lines: list[tuple[str, str, str]], invoice_id: str = "I1") -> models.Invoice:
    return models.Invoice.model_validate({
        "id": invoice_id, "project_id": "p1", "currency": "EUR", "issued_at": AT.isoformat(),
        "lines": [{"id": i, "product": p, "amount": a} for i, p, a in lines],
    })


def available(service: CreditService) -> Decimal:
    return sum((c.available for c in service.list_credits("p1", at=AT)), Decimal(0))


def test_an_invoice_sent_again_with_its_lines_reordered_is_a_replay(
        service: CreditService) -> None:
    buy(service, "p1", "10")  # less than the 13.00 billed: which line gets it depends on order
    first = service.settle_invoice(invoice(LINES), at=AT)
    again = service.settle_invoice(invoice(LINES[::-1]), at=AT)
    assert not first.replayed and again.replayed
    assert again.allocations == first.allocations
    assert (again.credit_applied, again.amount_due) == (Decimal("10"), Decimal("3"))
    assert available(service) == Decimal(0)


def test_reordered_lines_in_one_batch_are_a_replay_of_the_first(
        service: CreditService) -> None:
    buy(service, "p1", "10")
    first, again = service.settle_invoices([invoice(LINES), invoice(LINES[::-1])])
    assert isinstance(first, models.Settlement) and isinstance(again, models.Settlement)
    assert not first.replayed and again.replayed
    assert again.allocations == first.allocations


def test_other_content_in_another_order_is_still_a_conflict(service: CreditService) -> None:
    buy(service, "p1", "10")
    service.settle_invoice(invoice(LINES), at=AT)
    changed = [("L3", "compute", "2.01"), *LINES[1::-1]]
    with pytest.raises(exceptions.SettlementConflict, match="different content"):
        service.settle_invoice(invoice(changed), at=AT)
    assert available(service) == Decimal(0)


def test_a_hosts_period_with_reordered_lines_is_not_rated_again(
        ledger: Ledger, service: CreditService) -> None:
    buy(service, "p1", "10")

    def period(lines: list[tuple[str, str, str]]) -> Charge:
        return Charge.of(key="host/p1/period-1", project_id="p1", invoice_id="period-1",
                         currency="EUR", at=AT,
                         lines=[Line(i, p, Decimal(a)) for i, p, a in lines])

    (first,) = service.settle([period(LINES)], on_change="replace")
    (again,) = service.settle([period(LINES[::-1])], on_change="replace")
    assert again.replayed and again.allocations == first.allocations
    engine = sa.create_engine(ledger.url)
    try:
        with engine.connect() as conn:
            revision = conn.execute(sa.select(schema.settlements.c.revision)).scalar_one()
    finally:
        engine.dispose()
    assert revision == 1  # not re-rated: its debits were never reversed


def test_a_settlement_an_earlier_version_recorded_still_replays_in_its_order(
        ledger: Ledger, service: CreditService) -> None:
    # Earlier versions fingerprinted the lines in the order they came: L2 before L1.
    lines = [LINES[1], LINES[0]]
    buy(service, "p1", "10")
    first = service.settle_invoice(invoice(lines), at=AT)
    as_they_came = fingerprint("EUR", AT, [Line(i, p, Decimal(a).quantize(Decimal("0.000001")))
                                           for i, p, a in lines])
    engine = sa.create_engine(ledger.url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.update(schema.settlements).values(fingerprint=as_they_came))
    finally:
        engine.dispose()
    again = service.settle_invoice(invoice(lines), at=AT)
    assert again.replayed and again.allocations == first.allocations
    assert available(service) == Decimal(0)
