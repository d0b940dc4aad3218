"""A recorded settlement read back with why each credit paid its line, on every backend.

The explanation is kept with the settlement's allocations when the charge is
settled (the credits' balances move on afterwards, so it could not be rebuilt
later); rows recorded before explanations existed are still read, without one.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
import sqlalchemy as sa

from ovh_credit_plugin import exceptions, models
from ovh_credit_plugin.allocation import Line
from ovh_credit_plugin.ledger import schema
from ovh_credit_plugin.service import Charge, CreditService, invoice_key

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
AT = T0 + dt.timedelta(days=1)


def seed(service: CreditService) -> tuple[int, int]:
    """p1 holds the GPU-only voucher (20.00, first in order) and 100.00 purchased."""
    voucher = service.activate_voucher("p1", "GPU-ONLY", at=T0)
    order = service.create_order("p1", "100.00", at=T0)
    paid = service.pay_order(order.id, at=T0)
    assert paid.credit_id is not None
    return voucher.id, paid.credit_id


def settle(service: CreditService, invoice_id: str = "I1") -> models.Settlement:
    return service.settle_invoice(models.Invoice.model_validate({
        "id": invoice_id, "project_id": "p1", "currency": "EUR", "issued_at": AT.isoformat(),
        "lines": [{"id": "c", "product": "compute", "amount": "30.00"},
                  {"id": "g", "product": "gpu", "amount": "5.00"}],
    }), at=AT)


def test_each_allocation_says_why_its_credit_paid(service: CreditService) -> None:
    voucher, bought = seed(service)
    settle(service)
    shown = service.show_invoice_settlement("p1", "I1")
    assert shown == service.show_settlement(invoice_key("p1", "I1"))
    document = shown.model_dump(mode="json")
    assert {k: v for k, v in document.items() if k != "allocations"} == {
        "key": "invoice/p1/I1", "invoice_id": "I1", "project_id": "p1", "currency": "EUR",
        "total": "35.00", "credit_applied": "35.00", "amount_due": "0.00",
        "settled_at": "2026-02-01T10:00:00Z", "revision": 1,
    }
    assert document["allocations"] == [
        {"line_id": "g", "credit_id": voucher, "kind": "voucher", "amount": "5.00",
         "explanation": {
             "place": 1,
             "order_key": {"kind": "voucher", "valid_until": "2027-01-01T00:00:00Z",
                           "created_at": "2026-01-31T10:00:00Z", "credit_id": voucher},
             "reason": "order", "skipped": []}},
        {"line_id": "c", "credit_id": bought, "kind": "purchased", "amount": "30.00",
         "explanation": {
             "place": 2,
             "order_key": {"kind": "purchased", "valid_until": "2027-02-28T10:00:00Z",
                           "created_at": "2026-01-31T10:00:00Z", "credit_id": bought},
             "reason": "scope",
             "skipped": [{"credit_id": voucher, "cause": "not_covered", "products": []}]}},
    ]


def test_a_replay_keeps_the_explanation_of_the_first_settlement(service: CreditService) -> None:
    seed(service)
    settle(service)
    first = service.show_invoice_settlement("p1", "I1")
    assert settle(service).replayed
    assert service.show_invoice_settlement("p1", "I1") == first


def test_a_rerated_period_is_explained_anew(service: CreditService) -> None:
    voucher, bought = seed(service)

    def charge(gpu: str) -> Charge:
        return Charge.of(key="host/p1/period-1", project_id="p1", invoice_id="period-1",
                         currency="EUR", at=AT,
                         lines=[Line("g", "gpu", Decimal(gpu))])

    service.settle([charge("5")], on_change="replace")
    service.settle([charge("25")], on_change="replace")
    shown = service.show_settlement("host/p1/period-1")
    assert shown.revision == 2
    assert [(a.line_id, a.credit_id, a.amount, a.explanation and a.explanation.place,
             a.explanation and a.explanation.reason) for a in shown.allocations] == [
        ("g", voucher, Decimal(20), 1, "order"), ("g", bought, Decimal(5), 2, "order")]


def test_a_row_recorded_before_explanations_is_read_without_one(
    service: CreditService,
) -> None:
    voucher, bought = seed(service)
    settle(service)
    table = schema.settlements
    old = json.dumps([["g", voucher, "voucher", "5.000000"], ["c", bought, "purchased",
                                                              "30.000000"]])
    with service.database.engine.begin() as conn:
        conn.execute(table.update().where(table.c.key == "invoice/p1/I1")
                     .values(allocations=old))
    shown = service.show_invoice_settlement("p1", "I1")
    assert [(a.line_id, a.credit_id, a.amount, a.explanation) for a in shown.allocations] == [
        ("g", voucher, Decimal(5), None), ("c", bought, Decimal(30), None)]
    assert shown.model_dump(mode="json")["allocations"][0] == {
        "line_id": "g", "credit_id": voucher, "kind": "voucher", "amount": "5.00",
        "explanation": None}
    # A replay of it still reads the old row (and the ledger fixture audits it after).
    assert settle(service).replayed


def test_an_unknown_settlement_is_not_found(service: CreditService) -> None:
    seed(service)
    settle(service)
    with pytest.raises(exceptions.SettlementNotFound) as missing:
        service.show_invoice_settlement("p1", "I2")
    # What the CLI prints and the API's error says: which one is missing.
    assert str(missing.value) == "no settlement of invoice I2 of project p1"
    with pytest.raises(exceptions.SettlementNotFound):
        service.show_invoice_settlement("p2", "I1")  # another project's invoice
    with pytest.raises(exceptions.SettlementNotFound) as missing:
        service.show_settlement("invoice/p1/I2")
    assert str(missing.value) == "no settlement invoice/p1/I2"
    with pytest.raises(exceptions.InvalidInput):
        service.show_invoice_settlement("p1", "bad id!")
    with pytest.raises(exceptions.InvalidInput):
        service.show_settlement("")


def test_what_is_stored_is_the_explanation(service: CreditService) -> None:
    """The allocations column holds place and skipped credits next to each allocation."""
    voucher, bought = seed(service)
    settle(service)
    with service.database.engine.connect() as conn:
        stored = conn.execute(sa.select(schema.settlements.c.allocations)).scalar_one()
    assert json.loads(stored) == [
        ["g", voucher, "voucher", "5.000000", 1],
        ["c", bought, "purchased", "30.000000", 2, [[voucher, "not_covered", []]]],
    ]


def test_an_invoice_of_a_project_whose_id_holds_a_slash_is_shown(service: CreditService) -> None:
    # Its key escapes the project's "/" (charges.invoice_key): shown by its ids all the same.
    service.settle_invoice(models.Invoice.model_validate({
        "id": "2026/11/0042", "project_id": "dept/p1", "currency": "EUR",
        "issued_at": AT.isoformat(), "lines": [{"id": "c", "product": "compute",
                                                "amount": "3.00"}],
    }), at=AT)
    shown = service.show_invoice_settlement("dept/p1", "2026/11/0042")
    assert (shown.key, shown.project_id, shown.invoice_id) == (
        "invoice/dept%2Fp1/2026/11/0042", "dept/p1", "2026/11/0042")


def test_a_settlement_is_shown_with_its_note(service: CreditService) -> None:
    seed(service)  # p1 holds euros
    service.settle_invoice(models.Invoice.model_validate({
        "id": "I9", "project_id": "p1", "currency": "CHF", "issued_at": AT.isoformat(),
        "lines": [{"id": "c", "product": "compute", "amount": "3.00"}],
    }), at=AT)
    shown = service.show_invoice_settlement("p1", "I9")
    assert shown.note == "currency_mismatch" and shown.allocations == []
    assert shown.model_dump(mode="json")["note"] == "currency_mismatch"
