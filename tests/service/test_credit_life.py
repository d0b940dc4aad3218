"""A credit's figures and status through its life, as a customer reads them.

Used up before its end, a credit is exhausted, not expired; past its end with
something left, what is left reads as expired even before the expiry job runs;
a re-rating after the job gives credit back to an expired credit, which reads
as expired at once and is expired again by the next run. Each credit's grant
says where it came from; its ledger entries read oldest first; an unknown credit
is named in its refusal.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from ovh_credit_plugin import exceptions, models
from ovh_credit_plugin.allocation import Line
from ovh_credit_plugin.service import Charge, CreditService

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
AT = T0 + dt.timedelta(days=1)
END = dt.datetime(2027, 2, 28, 10, 0, tzinfo=UTC)  # 13 months after T0
AFTER = END + dt.timedelta(days=1)


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def buy(service: CreditService, project: str, amount: str) -> models.Credit:
    order = service.create_order(project, amount, at=T0)
    paid = service.pay_order(order.id, at=T0)
    assert paid.credit_id is not None
    return service.show_credit(paid.credit_id, at=T0)[0]


def period(project: str, amount: str) -> Charge:
    return Charge.of(key=f"host/{project}/period-1", project_id=project,
                     invoice_id="period-1", currency="EUR", at=AT,
                     lines=[Line("l0", "compute", Decimal(amount))])


def figures(credit: models.Credit) -> tuple[str, Decimal, Decimal, Decimal]:
    return credit.status, credit.used, credit.expired, credit.available


def test_used_up_before_its_end_a_credit_is_exhausted_after_it(
        service: CreditService) -> None:
    credit = buy(service, "p1", "10")
    assert credit.valid_until == END
    service.settle([period("p1", "10")], at=AT)
    [before] = service.list_credits("p1", at=AT)
    assert figures(before) == ("exhausted", Decimal(10), Decimal(0), Decimal(0))
    [after] = service.list_credits("p1", at=AFTER)
    assert figures(after) == ("exhausted", Decimal(10), Decimal(0), Decimal(0))


def test_past_its_end_what_is_left_reads_as_expired_before_and_after_the_job(
        service: CreditService) -> None:
    buy(service, "p1", "100")
    service.settle([period("p1", "30")], at=AT)
    [active] = service.list_credits("p1", at=END - dt.timedelta(microseconds=1))
    assert figures(active) == ("active", Decimal(30), Decimal(0), Decimal(70))
    [lagged] = service.list_credits("p1", at=END)
    assert figures(lagged) == ("expired", Decimal(30), Decimal(70), Decimal(0))
    service.expire(at=END)
    [expired] = service.list_credits("p1", at=END)
    assert figures(expired) == figures(lagged)


def test_credit_given_back_after_the_job_is_expired_at_once_and_by_the_next_run(
        service: CreditService) -> None:
    credit = buy(service, "p1", "100")
    service.settle([period("p1", "30")], on_change="replace", at=AT)
    service.expire(at=AFTER)
    # The period re-rated after the credit's end: 20 of its 30 come back to it.
    service.settle([period("p1", "10")], on_change="replace", at=AFTER)
    [shown] = service.list_credits("p1", at=AFTER)
    assert figures(shown) == ("expired", Decimal(10), Decimal(90), Decimal(0))
    summary = service.expire(at=AFTER)
    assert (summary.credits_expired, summary.amount_expired) == (1, {"EUR": Decimal(20)})
    shown, entries = service.show_credit(credit.id, at=AFTER)
    assert figures(shown) == ("expired", Decimal(10), Decimal(90), Decimal(0))
    assert [(e.type, e.amount) for e in entries if e.type == "expiry"] == [
        ("expiry", Decimal(70)), ("expiry", Decimal(20))]


def test_each_grant_says_where_its_credit_came_from(service: CreditService) -> None:
    bought = buy(service, "p1", "10")
    voucher = service.activate_voucher("p1", "WELCOME-2026", at=T0)
    notes = [service.show_credit(c.id, at=T0)[1][0] for c in (bought, voucher)]
    assert [(e.type, e.note) for e in notes] == [
        ("grant", f"purchased {bought.source}"), ("grant", "voucher WELCOME-2026")]


def test_an_unknown_credit_is_named_in_its_refusal(service: CreditService) -> None:
    with pytest.raises(exceptions.CreditNotFound) as refused:
        service.void_credit(424242, reason="fraud", at=AT)
    assert str(refused.value) == "no credit 424242"


def test_a_rerating_that_no_longer_uses_a_credit_gives_its_debit_back(
        service: CreditService) -> None:
    voucher = service.activate_voucher("p1", "GPU-ONLY", at=T0)
    buy(service, "p1", "100")

    def period(product: str) -> Charge:
        return Charge.of(key="host/p1/period-1", project_id="p1", invoice_id="period-1",
                         currency="EUR", at=AT, lines=[Line("l0", product, Decimal(5))])

    service.settle([period("gpu")], on_change="replace", at=AT)
    assert service.show_credit(voucher.id, at=AT)[0].available == Decimal(15)
    # Re-rated as compute, which the GPU voucher does not cover: all of it back.
    service.settle([period("compute")], on_change="replace", at=AT)
    assert figures(service.show_credit(voucher.id, at=AT)[0]) == (
        "active", Decimal(0), Decimal(0), Decimal(20))



def test_a_credits_entries_read_oldest_first_whatever_order_the_database_scans_in(
        service: CreditService) -> None:
    # Only ORDER BY fixes the order of a SELECT: PostgreSQL and MariaDB may
    # return rows in any order (parallel scans, another index). SQLite's own
    # pragma for this makes every SELECT without ORDER BY scan backwards.
    credit = buy(service, "p1", "100")
    service.settle([period("p1", "30")], on_change="replace", at=AT)
    service.settle([period("p1", "10")], on_change="replace", at=AT)
    service.void_credit(credit.id, reason="charge-back", at=AT)
    engine = service.database.engine  # SQLite: this file's backend

    def scan_backwards(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.execute("PRAGMA reverse_unordered_selects = ON")

    sa.event.listen(engine, "connect", scan_backwards)
    engine.dispose()  # the pool's connections are made again, with the pragma
    _, entries = service.show_credit(credit.id, at=AT)
    assert [(e.type, e.amount) for e in entries] == [
        ("grant", Decimal(100)), ("debit", Decimal(30)), ("reversal", Decimal(30)),
        ("debit", Decimal(10)), ("void", Decimal(90))]
    assert [e.id for e in entries] == sorted(e.id for e in entries)
