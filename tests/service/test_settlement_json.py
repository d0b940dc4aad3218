"""The JSON hosts get equals the settlement contract's own serialization.

``InvoiceProcessor.process_many`` (and so ``ovh-credit settle``) formats
settlements straight from the service's results
(``CreditService.settle_invoices_json``) instead of building a pydantic
``Settlement`` per invoice; ``Settlement.json_ready()`` does the same for a
model. Both must equal ``Settlement.model_dump(mode="json")``, for fresh
settlements, replays read back from the ledger, an invoice sent twice in a
batch, scoped vouchers, sub-cent and zero-decimal currencies.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

from ovh_credit_plugin import models
from ovh_credit_plugin.service import CreditService

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 31, 10, 0, tzinfo=UTC)


def invoice(invoice_id: str, project: str, lines: list[tuple[str, str]],
            currency: str = "EUR") -> models.Invoice:
    return models.Invoice.model_validate({
        "id": invoice_id,
        "project_id": project,
        "currency": currency,
        "issued_at": "2026-02-01T00:00:00Z",
        "lines": [{"id": f"l{n}", "product": product, "amount": amount}
                  for n, (product, amount) in enumerate(lines)],
    })


def test_settlement_json_equals_the_models_dump(service: CreditService) -> None:
    for project in ("p-credit", "p-scoped"):
        order = service.create_order(project, "25.5", at=T0)
        service.pay_order(order.id, at=T0)
    service.activate_voucher("p-scoped", "GPU-ONLY", at=T0)
    yen = service.create_order("p-yen", "1000", currency="JPY", at=T0)
    service.pay_order(yen.id, at=T0)
    invoices = [
        invoice("I-1", "p-credit", [("compute", "10.5"), ("storage", "0.000123")]),
        invoice("I-2", "p-scoped", [("gpu", "30"), ("compute", "4.25"), ("gpu", "1")]),
        invoice("I-3", "p-none", [("compute", "7")]),
        invoice("I-1", "p-credit", [("compute", "10.5"), ("storage", "0.000123")]),
        invoice("I-4", "p-yen", [("compute", "1500")], currency="JPY"),
    ]

    fresh = list(service.settle_invoices_json(invoices, batch_size=2))
    replayed = list(service.settle_invoices(invoices, batch_size=2))

    dumps: list[dict[str, Any]] = [s.model_dump(mode="json") for s in replayed]
    assert [s.json_ready() for s in replayed] == dumps
    assert all(d["replayed"] for d in dumps)
    # The first run settled all but the repeated invoice, which replays the
    # settlement made earlier in the same run.
    assert [d["replayed"] for d in fresh] == [False, False, False, True, False]
    assert [{**d, "replayed": True} for d in fresh] == dumps
    # Sanity: the run applied credit, split across credits, in both currencies.
    assert dumps[1]["credit_applied"] != "0.00" and len(dumps[1]["allocations"]) >= 3
    assert dumps[4]["currency"] == "JPY" and dumps[4]["credit_applied"] == "1000"
    assert dumps[0]["allocations"][1]["amount"] == "0.000123"


def test_one_invoices_json_equals_the_models_dump(service: CreditService) -> None:
    # InvoiceProcessor.process: one invoice, one transaction, the JSON written directly.
    for project in ("p-credit", "p-scoped"):
        service.pay_order(service.create_order(project, "25.5", at=T0).id, at=T0)
    service.activate_voucher("p-scoped", "GPU-ONLY", at=T0)
    first = invoice("I-1", "p-scoped", [("gpu", "30"), ("compute", "4.25")])
    fresh = service.settle_invoice_json(first, at=T0)
    replayed = service.settle_invoice(first, at=T0)
    assert fresh == {**replayed.model_dump(mode="json"), "replayed": False}
    assert replayed.replayed and len(replayed.allocations) >= 2
    # A replay through it is the recorded settlement's, as the model says.
    again = service.settle_invoice_json(first, at=T0)
    assert again == replayed.model_dump(mode="json") == replayed.json_ready()
    # An invoice no credit touches is recorded all the same.
    none = invoice("I-2", "p-none", [("compute", "7")])
    unpaid = service.settle_invoice_json(none, at=T0)
    assert {**unpaid, "replayed": True} == service.settle_invoice(
        none, at=T0).model_dump(mode="json")
    assert unpaid["amount_due"] == "7.00" and unpaid["allocations"] == []


def test_a_batchs_invoices_are_let_go_before_its_results_reach_the_caller(
        service: CreditService) -> None:
    # Freed by reference counting inside the collector's pause (collector.py), the
    # batch's invoices and charges are not there for the collector's first pass
    # after it to scan, nor held while the caller works on the results.
    invoices = [invoice(f"I-{n}", "p-none", [("compute", "1")]) for n in range(3)]
    held_by_the_list = [sys.getrefcount(each) for each in invoices]
    results = service.settle_invoices_json(iter(invoices), batch_size=2, at=T0)
    assert next(results)["invoice_id"] == "I-0"  # the first batch (I-0, I-1) is settled
    assert [sys.getrefcount(each) for each in invoices] == held_by_the_list
    assert [d["invoice_id"] for d in results] == ["I-1", "I-2"]
