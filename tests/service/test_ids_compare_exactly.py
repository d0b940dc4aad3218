"""Ids are compared byte by byte, on every backend: ids that differ only by case (or by a
trailing space, where an id may hold one) are two ids.

The contract lets ids hold A-Z and a-z (``contracts.ID_RE``) and the code compares
them as Python does. MySQL and MariaDB compared them in the database's default
collation (the tests' servers run with utf8mb4_general_ci, as most do), which ignores
case: project "acme" read project "ACME"'s credits, and the settlement failed; invoice
"inv-a" was taken for "INV-a" and never recorded, and a month-end batch holding it
failed as a whole, on every run. Revision 0007_binary_collation gives every text
column a binary NO PAD collation there; PostgreSQL and SQLite always compared this
way, and run the same tests.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from ovh_credit_plugin import models
from ovh_credit_plugin.service import CreditService
from tests.support.ledgers import invoice

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
AT = T0 + dt.timedelta(days=1)


def test_another_projects_credit_is_not_touched(service: CreditService) -> None:
    service.pay_order(service.create_order("ACME", "100", at=T0).id, at=T0)
    # "acme" is another project: it holds no credit.
    settlement = service.settle_invoice(invoice("acme", "I1", "30", issued_at=AT), at=AT)
    assert settlement.credit_applied == Decimal(0)
    assert service.list_credits("ACME", at=AT)[0].available == Decimal(100)
    assert service.list_credits("acme", at=AT) == []


def test_two_invoices_whose_ids_differ_by_case_are_two_invoices(
    service: CreditService,
) -> None:
    service.pay_order(service.create_order("p1", "100", at=T0).id, at=T0)
    service.settle_invoice(invoice("p1", "INV-a", "30", issued_at=AT), at=AT)
    # In a month-end batch too: a refusal there would be the batch's, on every run.
    batch = list(service.settle_invoices(
        [invoice("p1", "inv-a", "20", issued_at=AT),
         invoice("p1", "INV-b", "5", issued_at=AT)], at=AT))
    assert all(isinstance(s, models.Settlement) for s in batch), batch
    assert [(s.invoice_id, s.credit_applied, s.replayed) for s in batch
            if isinstance(s, models.Settlement)] == [
        ("inv-a", Decimal(20), False), ("INV-b", Decimal(5), False)]
    assert service.list_credits("p1", at=AT)[0].available == Decimal(45)


def test_a_voucher_activated_by_another_project_is_not_this_ones(
    service: CreditService,
) -> None:
    theirs = service.activate_voucher("ACME", "WELCOME-2026", at=T0)
    ours = service.activate_voucher("acme", "WELCOME-2026", at=T0)
    assert ours.id != theirs.id
    assert (ours.project_id, theirs.project_id) == ("acme", "ACME")


def test_an_idempotency_key_is_the_projects_and_all_of_its_characters(
    service: CreditService,
) -> None:
    first, created = service.create_order_once("ACME", "10", idempotency_key="k-1", at=T0)
    assert created
    # The same key, another project: another order, never ACME's.
    other, created = service.create_order_once("acme", "10", idempotency_key="k-1", at=T0)
    assert created and other.id != first.id and other.project_id == "acme"
    # A key may end with a space (printable ASCII): "k-1 " is another key.
    spaced, created = service.create_order_once("ACME", "10", idempotency_key="k-1 ", at=T0)
    assert created and spaced.id != first.id
    again, created = service.create_order_once("ACME", "10", idempotency_key="k-1", at=T0)
    assert not created and again.id == first.id
