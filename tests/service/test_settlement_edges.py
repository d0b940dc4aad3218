"""Settlement where a host's environment or spelling could change the money.

- a host that lowered the thread's decimal precision does not round our sums;
- a host's charge spelled ``10.00`` or ``10`` is one charge (a replay, never a
  conflict nor a re-rating);
- ids may hold "/": settlement keys stay one per (project, invoice), and a
  key an earlier version wrote is still found;
- what a customer reads of an expired credit does not depend on whether the
  expiry job ran.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal

import pytest
import sqlalchemy as sa

from ovh_credit_plugin import exceptions, models
from ovh_credit_plugin.allocation import Line
from ovh_credit_plugin.ledger import schema
from ovh_credit_plugin.ledger.database import Database
from ovh_credit_plugin.service import Charge, CreditService
from tests.support.clock import TEST_NOW
from tests.support.ledgers import Ledger

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
AT = T0 + dt.timedelta(days=1)


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def buy(service: CreditService, project: str, amount: str) -> None:
    order = service.create_order(project, amount, at=T0)
    service.pay_order(order.id, at=T0)


def invoice(project: str, invoice_id: str, *amounts: str) -> models.Invoice:
    return models.Invoice.model_validate({
        "id": invoice_id, "project_id": project, "currency": "EUR",
        "issued_at": AT.isoformat(),
        "lines": [{"id": str(n), "product": "compute", "amount": amount}
                  for n, amount in enumerate(amounts)],
    })


def test_a_hosts_decimal_precision_does_not_round_the_settlement(
    service: CreditService,
) -> None:
    buy(service, "p1", "100000")
    with decimal.localcontext() as context:
        context.prec = 6  # what a host (or a library it loads) may set for its thread
        settlement = service.settle_invoice(invoice("p1", "I1", "1234.567891", "0.000001"),
                                            at=AT)
        credit = service.list_credits("p1", at=AT)[0]
    assert settlement.total == Decimal("1234.567892")
    assert settlement.credit_applied == Decimal("1234.567892")
    assert credit.available == Decimal("100000") - Decimal("1234.567892")


def test_one_amount_spelled_two_ways_is_one_charge(service: CreditService) -> None:
    buy(service, "p1", "100")

    def charge(amount: Decimal) -> Charge:
        return Charge.of(key="host/p1/period-1", project_id="p1", invoice_id="period-1",
                         currency="EUR", at=AT, lines=[Line("compute", "compute", amount)])

    first = service.settle([charge(Decimal("10.00"))], on_change="conflict")[0]
    again = service.settle([charge(Decimal("10"))], on_change="conflict")[0]
    assert not first.replayed and again.replayed
    assert again.credit_applied == Decimal("10")
    assert service.list_credits("p1", at=AT)[0].available == Decimal("90")


def test_ids_with_a_slash_give_one_key_per_project_and_invoice(service: CreditService) -> None:
    # Project "p1/x" with invoice "y" and project "p1" with invoice "x/y" once
    # shared the key invoice/p1/x/y: the second was "replayed" from the first's
    # settlement (amount_due 0, nothing debited).
    buy(service, "p1/x", "100")
    buy(service, "p1", "100")
    a = service.settle_invoice(invoice("p1/x", "y", "10"), at=AT)
    b = service.settle_invoice(invoice("p1", "x/y", "10"), at=AT)
    assert not a.replayed and not b.replayed
    assert (a.project_id, b.project_id) == ("p1/x", "p1")
    assert b.credit_applied == Decimal(10)
    again = service.settle_invoice(invoice("p1/x", "y", "10"), at=AT)
    assert again.replayed and again.project_id == "p1/x"


def test_a_settlement_keyed_by_an_earlier_version_is_still_replayed(
    service: CreditService,
) -> None:
    buy(service, "p1/x", "100")
    old = Charge.from_invoice(invoice("p1/x", "y", "10"))
    # What an earlier version recorded: the project's "/" as is in the key.
    service.settle([replace(old, key="invoice/p1/x/y")])
    again = service.settle_invoice(invoice("p1/x", "y", "10"), at=AT)
    assert again.replayed and again.credit_applied == Decimal(10)
    # ... and in a month-end run's batch.
    [batched] = service.settle_invoices([invoice("p1/x", "y", "10")], at=AT)
    assert isinstance(batched, models.Settlement) and batched.replayed
    assert service.list_credits("p1/x", at=AT)[0].available == Decimal(90)
    # That old key is also what project "p1" with invoice "x/y" gets: refused,
    # never a replay of another project's settlement.
    buy(service, "p1", "100")
    with pytest.raises(exceptions.SettlementConflict) as refused:
        service.settle_invoice(invoice("p1", "x/y", "10"), at=AT)
    assert str(refused.value) == ("invoice x/y of project p1: its settlement key is recorded "
                                  "for invoice y of project p1/x")


def test_an_expired_credit_shows_nothing_available_before_the_job_runs(
    service: CreditService,
) -> None:
    buy(service, "p1", "100")
    service.settle_invoice(invoice("p1", "I1", "30"), at=AT)
    after = service.list_credits("p1", at=AT)[0].valid_until + dt.timedelta(seconds=1)
    before_job = service.list_credits("p1", at=after)[0]
    assert (before_job.status, before_job.available, before_job.expired) == (
        "expired", Decimal(0), Decimal(70))
    service.expire(at=after)
    assert service.list_credits("p1", at=after)[0] == before_job


def test_voiding_again_with_the_same_reason_is_a_replay(service: CreditService) -> None:
    # A retry after a connection lost during COMMIT, or an operator re-running
    # the command after an ambiguous error, must not fail nor void twice.
    buy(service, "p1", "100")
    credit_id = service.list_credits("p1", at=AT)[0].id
    first = service.void_credit(credit_id, reason="charge-back", at=AT)
    again = service.void_credit(credit_id, reason="charge-back",
                                at=AT + dt.timedelta(hours=1))
    assert again == first and first.voided == Decimal(100)
    with pytest.raises(exceptions.InvalidState, match=r"already voided \(charge-back\)"):
        service.void_credit(credit_id, reason="fraud", at=AT)
    _, entries = service.show_credit(credit_id, at=AT)
    assert [e.type for e in entries] == ["grant", "void"]


def test_a_payment_a_few_minutes_before_the_order_is_another_clock(
    service: CreditService,
) -> None:
    # A payment provider's timestamp, from a clock a little behind the ledger's:
    # taken as paid at the order's creation, not refused on every webhook retry.
    order = service.create_order("p1", "10", at=T0)
    paid = service.pay_order(order.id, at=T0 - dt.timedelta(minutes=3))
    assert paid.status == "paid" and paid.paid_at == T0
    assert service.list_credits("p1", at=T0)[0].valid_from == T0
    late = service.create_order("p1", "10", at=T0)
    with pytest.raises(exceptions.InvalidInput, match="is earlier"):
        service.pay_order(late.id, at=T0 - dt.timedelta(hours=1))


def test_an_invoice_repeated_in_one_batch_is_a_replay_or_a_conflict(
    service: CreditService,
) -> None:
    """A host's batch may hold one invoice twice (a retried export): the same content
    is settled once and the second answered as a replay; other content is refused
    in its place, and neither debits twice."""
    buy(service, "p1", "100")
    same = list(service.settle_invoices(
        [invoice("p1", "I1", "10"), invoice("p1", "I1", "10.00")], at=AT))
    assert [type(r) for r in same] == [models.Settlement] * 2
    assert (same[0].replayed, same[1].replayed) == (False, True)
    assert same[1].credit_applied == same[0].credit_applied == Decimal("10")
    changed = list(service.settle_invoices(
        [invoice("p1", "I2", "5"), invoice("p1", "I2", "6")], at=AT))
    assert isinstance(changed[0], models.Settlement)
    assert not isinstance(changed[1], models.Settlement)
    assert "appears twice with different content" in str(changed[1])
    assert service.list_credits("p1", at=AT)[0].available == Decimal("85")


def test_a_replay_then_other_content_in_one_batch_is_a_conflict_not_a_rerating(
    service: CreditService,
) -> None:
    # A host's retried batch may hold a period as it was settled before, then
    # with other content: the same period twice in one batch, two contents. The
    # second is refused, even where a lone new content would be re-rated.
    buy(service, "p1", "100")

    def period(amount: str) -> Charge:
        return Charge.of(key="host/p1/period-1", project_id="p1", invoice_id="period-1",
                         currency="EUR", at=AT, lines=[Line("l0", "compute", Decimal(amount))])

    service.settle([period("10")], on_change="replace", at=AT)
    with pytest.raises(exceptions.SettlementConflict,
                       match="appears twice with different content"):
        service.settle([period("10"), period("12")], on_change="replace", at=AT)
    assert service.list_credits("p1", at=AT)[0].available == Decimal("90")


def test_a_month_end_run_is_dated_at_or_refused_before_it_reads_an_invoice(
    service: CreditService, database: Database,
) -> None:
    buy(service, "p1", "100")
    # Back-dated: every batch's debits are recorded at the time given, not now.
    list(service.settle_invoices(
        [invoice("p1", "I1", "1.00"), invoice("p1", "I2", "2.00")], batch_size=1, at=AT))
    entries = schema.ledger_entries
    with database.engine.connect() as conn:
        debited = conn.execute(sa.select(entries.c.created_at)
                               .where(entries.c.type == "debit")).scalars().all()
    assert debited == [AT, AT]

    # Dated after now: refused before the first invoice is even read, so a host's
    # stream is not consumed (nor, when empty, taken as done).
    future = TEST_NOW + dt.timedelta(days=1)
    read: list[str] = []

    def stream() -> Iterator[models.Invoice]:
        read.append("I3")
        yield invoice("p1", "I3", "3.00")

    for invoices in (stream(), iter(())):
        with pytest.raises(exceptions.InvalidInput, match="in the future"):
            next(service.settle_invoices(invoices, at=future))
    assert read == []
    assert service.list_credits("p1", at=AT)[0].available == Decimal(97)


def test_a_rerating_gives_each_debit_back_on_its_line_then_debits_anew(
    service: CreditService, database: Database,
) -> None:
    buy(service, "p1", "100")
    voucher = service.activate_voucher("p1", "WELCOME-2026", at=T0)

    def period(*amounts: str) -> Charge:
        return Charge.of(key="host/p1/period-1", project_id="p1", invoice_id="period-1",
                         currency="EUR", at=AT,
                         lines=[Line(f"l{n}", "compute", Decimal(a))
                                for n, a in enumerate(amounts)])

    service.settle([period("30.00", "5.00")], on_change="replace", at=AT)
    bought = service.list_credits("p1", at=AT)[1].id
    service.void_credit(voucher.id, reason="fraud", at=AT)
    service.settle([period("60.00")], on_change="replace", at=AT)
    entries = schema.ledger_entries
    with database.engine.connect() as conn:
        written = conn.execute(
            sa.select(entries.c.credit_id, entries.c.type, entries.c.amount, entries.c.note,
                      entries.c.settlement_key, entries.c.line_id)
            .where(entries.c.type != "grant").order_by(entries.c.id)).all()
    key = "host/p1/period-1"
    assert [tuple(row) for row in written] == [
        # the first rating: the voucher pays first
        (voucher.id, "debit", Decimal(30), "", key, "l0"),
        (voucher.id, "debit", Decimal(5), "", key, "l1"),
        # the void takes what was left of the voucher
        (voucher.id, "void", Decimal(15), "fraud", None, None),
        # the re-rating gives each debit back on its line; on a voided credit what
        # comes back is voided at once
        (voucher.id, "reversal", Decimal(30), "re-rated", key, "l0"),
        (voucher.id, "void", Decimal(30), "reversal on a voided credit", None, None),
        (voucher.id, "reversal", Decimal(5), "re-rated", key, "l1"),
        (voucher.id, "void", Decimal(5), "reversal on a voided credit", None, None),
        # then debits anew, from the purchased credit only
        (bought, "debit", Decimal(60), "", key, "l0"),
    ]
    [_, credit] = service.list_credits("p1", at=AT)
    assert credit.available == Decimal(40)
    assert service.show_credit(voucher.id, at=AT)[0].available == 0


def test_of_two_credits_alike_but_for_their_creation_the_older_pays_first(
    service: CreditService, ledger: Ledger,
) -> None:
    # Same kind, same end: the one created first is used first (DESIGN.md's
    # consumption order), whatever their ids say (the older one, activated with
    # a back-dated time, was written second).
    catalog = json.loads(ledger.vouchers.read_text())
    catalog["vouchers"] += [{"code": code, "amount": "10.00", "currency": "EUR",
                             "status": "active", "valid_until": "2027-01-01T00:00:00Z",
                             "products": []} for code in ("SPRING-A", "SPRING-B")]
    ledger.vouchers.write_text(json.dumps(catalog))
    newer = service.activate_voucher("p1", "SPRING-A", at=T0)
    older = service.activate_voucher("p1", "SPRING-B", at=T0 - dt.timedelta(days=1))
    assert newer.id < older.id
    settled = service.settle_invoice(invoice("p1", "I1", "4.00"), at=AT)
    assert [(a.credit_id, a.amount) for a in settled.allocations] == [(older.id, Decimal(4))]


def test_a_host_asking_for_another_way_to_handle_a_change_is_refused(
    service: CreditService,
) -> None:
    buy(service, "p1", "100")
    charge = Charge.of(key="host/p1/period-1", project_id="p1", invoice_id="period-1",
                       currency="EUR", at=AT, lines=[Line("l0", "compute", Decimal(1))])
    with pytest.raises(exceptions.InvalidInput) as refused:
        service.settle([charge], on_change="merge", at=AT)  # type: ignore[arg-type]
    assert str(refused.value) == "on_change must be 'conflict' or 'replace', not 'merge'"
    assert service.list_credits("p1", at=AT)[0].available == Decimal(100)


def test_a_hosts_charges_by_default_conflict_on_change_record_unpaid_and_are_dated_now(
    service: CreditService, database: Database,
) -> None:
    buy(service, "p1", "100")

    def charge(amount: str, project: str = "p1") -> Charge:
        return Charge.of(key=f"host/{project}/period-1", project_id=project,
                         invoice_id="period-1", currency="EUR", at=AT,
                         lines=[Line("l0", "compute", Decimal(amount))])

    # The same charge twice in one call: settled once, the second is its replay.
    first, again = service.settle([charge("1.00"), charge("1.00")])
    assert (first.replayed, again.replayed) == (False, True)
    assert service.list_credits("p1", at=AT)[0].available == Decimal(99)
    # New content under a settled key: refused unless the host says "replace".
    with pytest.raises(exceptions.SettlementConflict):
        service.settle([charge("2.00")])
    # A charge no credit touches is recorded all the same.
    [unpaid] = service.settle([charge("3.00", project="p2")])
    assert unpaid.amount_due == Decimal(3)
    assert service.show_settlement("host/p2/period-1").amount_due == Decimal(3)
    # Dated now (the service's clock), or at the time given.
    service.settle([Charge.of(
        key="host/p1/period-2", project_id="p1", invoice_id="period-2", currency="EUR",
        at=AT, lines=[Line("l0", "compute", Decimal(4))])], at=AT + dt.timedelta(hours=1))
    entries = schema.ledger_entries
    with database.engine.connect() as conn:
        debited = conn.execute(sa.select(entries.c.created_at).where(entries.c.type == "debit")
                               .order_by(entries.c.id)).scalars().all()
    assert debited == [TEST_NOW, AT + dt.timedelta(hours=1)]
