"""Edges of what a customer and an operator read about credits and charges.

- A void reason the ledger cannot hold on every backend (a NUL, a lone
  surrogate) is refused as bad input, on every backend alike.
- A host's charge with one line id twice is refused, as an invoice is: its
  allocations would name a line ambiguously.
- ``credit show`` reads the credit and its ledger entries in one snapshot: its
  figures always equal the sums of the entries it shows.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from ovh_credit_plugin import exceptions, models
from ovh_credit_plugin.allocation import Line
from ovh_credit_plugin.ledger import credits as ledger_credits
from ovh_credit_plugin.service import Charge, CreditService
from tests.support.ledgers import Ledger

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
AT = T0 + dt.timedelta(days=1)


def buy(service: CreditService, project: str, amount: str) -> models.Credit:
    order = service.create_order(project, amount, at=T0)
    paid = service.pay_order(order.id, at=T0)
    assert paid.credit_id is not None
    return service.show_credit(paid.credit_id, at=T0)[0]


def period(project: str, key: str, *lines: tuple[str, str, str]) -> Charge:
    return Charge.of(key=f"host/{project}/{key}", project_id=project, invoice_id=key,
                     currency="EUR", at=AT,
                     lines=[Line(i, p, Decimal(a)) for i, p, a in lines])


def entry_sums(entries: list[models.LedgerEntry]) -> dict[str, Decimal]:
    sums: dict[str, Decimal] = {}
    for entry in entries:
        sums[entry.type] = sums.get(entry.type, Decimal(0)) + entry.amount
    return sums


# -- void reasons --------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize("reason", ["fraud\x00", "\udcff charge-back"])
def test_a_reason_the_ledger_cannot_hold_is_refused_and_nothing_is_voided(
        service: CreditService, reason: str) -> None:
    credit = buy(service, "p1", "100")
    with pytest.raises(exceptions.InvalidInput, match="reason"):
        service.void_credit(credit.id, reason=reason, at=AT)
    assert service.show_credit(credit.id, at=AT)[0].status == "active"


# -- charges -------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_charge_with_a_line_id_twice_is_refused_like_an_invoice(
        service: CreditService) -> None:
    service.activate_voucher("p1", "GPU-ONLY", at=T0)
    buy(service, "p1", "100")
    twice = period("p1", "1", ("l", "compute", "30"), ("l", "gpu", "5"))
    with pytest.raises(exceptions.InvalidInput, match="twice"):
        service.settle([twice], at=AT)
    with pytest.raises(exceptions.SettlementNotFound):
        service.show_settlement(twice.key)
    assert [c.used for c in service.list_credits("p1", at=AT)] == [0, 0]


# -- credit show: one snapshot -------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mariadb"], indirect=True)
def test_credit_show_figures_equal_the_entries_it_shows(
        ledger: Ledger, service: CreditService, monkeypatch: pytest.MonkeyPatch) -> None:
    credit = buy(service, "p1", "100")
    other = ledger.service()
    read_entries = ledger_credits.entries_of

    def settled_meanwhile(conn: Any, credit_id: int) -> list[models.LedgerEntry]:
        # Another worker settles between the read of the credit and of its entries.
        other.settle([period("p1", "1", ("l", "compute", "30"))], at=AT)
        return read_entries(conn, credit_id)

    monkeypatch.setattr(ledger_credits, "entries_of", settled_meanwhile)
    try:
        shown, entries = service.show_credit(credit.id, at=AT)
    finally:
        other.close()
    sums = entry_sums(entries)
    assert shown.used == sums.get("debit", 0) - sums.get("reversal", 0)
    assert shown.available == sums["grant"] - sums.get("debit", 0)
