"""One bad invoice never stops a run; a project's currency is not fixed for good by an
order nobody paid (issue 14, point 2).

- a project whose only orders were cancelled or lapsed holds no currency: an
  order or an invoice in another one is no mismatch;
- an invoice in a currency the project's credit cannot pay is settled with no
  credit and a ``currency_mismatch`` note, recorded and replayed with it;
- an invoice refused while settling (a conflicting replay) is an
  ``InvoiceRefusal`` in its place; the rest of its batch and the batches after
  it are settled, in one transaction per batch still.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from ovh_credit_plugin import exceptions, models
from ovh_credit_plugin.service import CreditService

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
AT = T0 + dt.timedelta(days=1)


def invoice(invoice_id: str, project: str, amount: str = "10", *,
            currency: str = "EUR") -> models.Invoice:
    return models.Invoice.model_validate({
        "id": invoice_id, "project_id": project, "currency": currency,
        "issued_at": AT.isoformat(),
        "lines": [{"id": "l1", "product": "compute", "amount": amount}],
    })


def buy(service: CreditService, project: str, amount: str, currency: str = "EUR") -> None:
    order = service.create_order(project, amount, currency=currency, at=T0)
    service.pay_order(order.id, at=T0)


# -- the currency is released when nothing holds it ------------------------------------


def test_a_cancelled_order_does_not_fix_the_projects_currency(service: CreditService) -> None:
    order = service.create_order("p1", "100", currency="EUR", at=T0)
    service.cancel_order(order.id, at=T0)
    chf = service.create_order("p1", "100", currency="CHF", at=T0)
    assert chf.currency == "CHF"
    assert service.project_currency("p1") == "CHF"
    # CHF holds it now: EUR is refused while the CHF order is pending.
    with pytest.raises(exceptions.CurrencyMismatch, match="bills in CHF, not EUR"):
        service.create_order("p1", "100", currency="EUR", at=T0)


def test_a_lapsed_order_does_not_fix_the_projects_currency(service: CreditService) -> None:
    service.create_order("p1", "100", currency="EUR", at=T0)
    # Pending, even past its end, until the expiry job lapses it: it may still
    # be paid with a back-dated confirmation.
    with pytest.raises(exceptions.CurrencyMismatch):
        service.create_order("p1", "100", currency="CHF", at=T0 + dt.timedelta(days=30))
    service.expire(at=T0 + dt.timedelta(days=30))
    chf = service.create_order("p1", "100", currency="CHF", at=T0 + dt.timedelta(days=30))
    service.pay_order(chf.id, at=T0 + dt.timedelta(days=30))
    assert [c.currency for c in service.list_credits("p1")] == ["CHF"]


def test_credit_holds_the_currency_even_once_used_up(service: CreditService) -> None:
    buy(service, "p1", "10")
    service.settle_invoice(invoice("I1", "p1", "10"), at=AT)  # nothing left
    with pytest.raises(exceptions.CurrencyMismatch, match="bills in EUR, not CHF"):
        service.create_order("p1", "100", currency="CHF", at=AT)


def _race(service: CreditService, project: str, currencies: list[str]) -> list[models.Order]:
    """Orders in ``currencies`` created at once; those refused as mismatches left out."""
    barrier = threading.Barrier(len(currencies))
    made: list[models.Order] = []
    errors: list[BaseException] = []

    def create(code: str) -> None:
        barrier.wait(timeout=60)
        try:
            made.append(service.create_order(project, "10", currency=code, at=T0))
        except exceptions.CurrencyMismatch:
            pass
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=create, args=(code,)) for code in currencies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return made


def test_racing_orders_in_two_currencies_leave_one(service: CreditService) -> None:
    """Orders in EUR and CHF race for a project whose only order was cancelled: every
    pending order ends in the project's one currency."""
    for round_ in range(3):
        project = f"race-{round_}"
        first = service.create_order(project, "10", currency="USD", at=T0)
        service.cancel_order(first.id, at=T0)
        made = _race(service, project, ["EUR", "CHF"] * 3)
        assert made
        held = service.project_currency(project)
        assert {order.currency for order in made} == {held}
        pending = [o for o in service.list_orders(project, at=T0) if o.status == "pending"]
        assert {o.currency for o in pending} == {held}


# -- an invoice in another currency than the credit's ------------------------------------


def test_an_invoice_the_credit_cannot_pay_is_settled_with_a_note(
    service: CreditService, ledger: Any
) -> None:
    buy(service, "p1", "100")
    [chf, eur] = list(service.settle_invoices(
        [invoice("I1", "p1", "30", currency="CHF"), invoice("I2", "p1", "30")], at=AT))
    assert isinstance(chf, models.Settlement) and isinstance(eur, models.Settlement)
    assert (chf.credit_applied, chf.amount_due, chf.total) == (0, Decimal(30), Decimal(30))
    assert chf.note == "currency_mismatch" and chf.allocations == []
    assert eur.credit_applied == Decimal(30) and eur.note is None
    assert service.list_credits("p1", at=AT)[0].available == Decimal(70)
    # The JSON has the note only when there is one; the model's dump agrees.
    assert chf.json_ready() == chf.model_dump(mode="json")
    assert chf.json_ready()["note"] == "currency_mismatch"
    assert "note" not in eur.json_ready() and "note" not in eur.model_dump(mode="json")
    # Recorded with it: a replay (another process) gives it back, debits nothing.
    again = ledger.service()
    try:
        [replayed] = list(again.settle_invoices_json(
            [invoice("I1", "p1", "30", currency="CHF")], at=AT))
    finally:
        again.close()
    assert replayed == {**chf.json_ready(), "replayed": True}
    # One invoice, through the single-invoice call: the same, never an error.
    single = service.settle_invoice(invoice("I3", "p1", "5", currency="USD"), at=AT)
    assert single.note == "currency_mismatch" and single.amount_due == Decimal(5)


def test_an_invoice_for_a_project_with_only_a_cancelled_order_has_no_note(
    service: CreditService,
) -> None:
    order = service.create_order("p1", "100", currency="EUR", at=T0)
    service.cancel_order(order.id, at=T0)
    settled = service.settle_invoice(invoice("I1", "p1", "30", currency="CHF"), at=AT)
    assert settled.note is None and settled.amount_due == Decimal(30)
    # A pending order holds the currency: the host learns its credit will not pay.
    service.create_order("p2", "100", currency="EUR", at=T0)
    assert service.settle_invoice(invoice("I1", "p2", "30", currency="CHF"),
                                  at=AT).note == "currency_mismatch"


# -- refused invoices are reported in their place ----------------------------------------


@pytest.fixture
def commits(service: CreditService) -> Iterator[list[int]]:
    """How many transactions committed (on the service's engine)."""
    seen: list[int] = []

    def count(_conn: Any) -> None:
        seen.append(1)

    sa.event.listen(service.database.engine, "commit", count)
    yield seen
    sa.event.remove(service.database.engine, "commit", count)


def test_a_refused_invoice_is_reported_in_its_place_and_its_batch_settles(
    service: CreditService, commits: list[int]
) -> None:
    buy(service, "p1", "100")
    buy(service, "p2", "100")
    service.settle_invoice(invoice("I1", "p1", "10"), at=AT)
    commits.clear()
    run = [
        invoice("I0", "p1", "5"),
        invoice("I1", "p1", "11"),  # settled before with 10: refused
        invoice("I2", "p2", "7"),  # another project, same batch
        invoice("I0", "p1", "6"),  # twice in the run with other content: refused
        invoice("I3", "p1", "1"),  # the next batch
    ]
    results = list(service.settle_invoices(run, batch_size=4, at=AT))
    # Two batches, two transactions: a refusal is no reason to retry a batch.
    assert len(commits) == 2

    assert [type(r).__name__ for r in results] == [
        "Settlement", "InvoiceRefusal", "Settlement", "InvoiceRefusal", "Settlement"]
    refused = results[1]
    assert isinstance(refused, models.InvoiceRefusal)
    assert (refused.invoice, refused.project_id) == ("I1", "p1")
    assert "already settled with different content" in refused.error
    assert isinstance(refused.cause, exceptions.SettlementConflict)
    assert refused.json_ready() == {"invoice": "I1", "project_id": "p1",
                                    "error": refused.error}
    assert "appears twice with different content" in str(results[3])
    # The others are settled; nothing of the refused ones is written.
    credits = {p: service.list_credits(p, at=AT)[0].available for p in ("p1", "p2")}
    assert credits == {"p1": Decimal(100 - 10 - 5 - 1), "p2": Decimal(93)}
    again = list(service.settle_invoices([invoice("I1", "p1", "10")], at=AT))
    assert isinstance(again[0], models.Settlement) and again[0].replayed


def test_refusals_in_the_json_run_and_refusals_passed_through(service: CreditService) -> None:
    service.settle_invoice(invoice("I1", "p1", "10"), at=AT)
    unreadable = models.InvoiceRefusal(None, None, "line 2 is not valid JSON",
                                       exceptions.InvalidInput("line 2 is not valid JSON"))
    out = list(service.settle_invoices_json(
        [invoice("I1", "p1", "12"), unreadable, invoice("I2", "p1", "3")], at=AT))
    assert out[0]["invoice"] == "I1" and "different content" in str(out[0]["error"])
    assert out[1] == {"invoice": None, "project_id": None, "error": "line 2 is not valid JSON"}
    assert out[2]["invoice_id"] == "I2" and "error" not in out[2]


def test_a_batch_of_refusals_only_writes_nothing(service: CreditService, ledger: Any) -> None:
    service.settle_invoice(invoice("I1", "p1", "10"), at=AT)
    before = ledger.checksum()
    [out] = list(service.settle_invoices([invoice("I1", "p1", "12")], at=AT))
    assert isinstance(out, models.InvoiceRefusal)
    assert ledger.checksum() == before
