"""Races on orders and invoice runs, on each backend.

- month-end runs started at once over the same invoices (shuffled, in batches
  of another size, each run twice) debit each invoice once: every project's
  credit ends as if each invoice had been settled alone;
- confirmations of one payment racing its cancellation: the order ends paid
  with one credit of its amount, or cancelled with none, never both.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
from collections.abc import Callable
from decimal import Decimal

from ovh_credit_plugin import exceptions, models
from ovh_credit_plugin.service import CreditService
from tests.support.ledgers import invoice

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
AT = T0 + dt.timedelta(days=1)


def race(workers: list[Callable[[], None]]) -> list[BaseException]:
    barrier = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def run(work: Callable[[], None]) -> None:
        barrier.wait(timeout=60)
        try:
            work()
        except BaseException as error:  # reported by the caller
            errors.append(error)

    threads = [threading.Thread(target=run, args=(work,)) for work in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return errors


def test_runs_racing_over_the_same_invoices_debit_each_once(service: CreditService) -> None:
    projects = ["p1", "p2", "p3", "bare"]  # "bare" holds no credit: inserts race alone
    for project in projects[:3]:
        order = service.create_order(project, "100", at=T0)
        service.pay_order(order.id, at=T0)
    invoices = [invoice(p, f"I{n}", "1.5", issued_at=AT) for p in projects for n in range(20)]
    seen: list[list[models.Settlement | models.InvoiceRefusal]] = []

    def run(seed: int) -> Callable[[], None]:
        def work() -> None:
            mine = invoices[:]
            random.Random(seed).shuffle(mine)
            for _ in range(2):
                seen.append(list(service.settle_invoices(mine, batch_size=3 + seed, at=AT)))
        return work

    errors = race([run(seed) for seed in range(6)])
    assert not errors, errors
    assert len(seen) == 12
    for results in seen:
        assert all(isinstance(r, models.Settlement) for r in results), results
    for project in projects[:3]:
        [credit] = service.list_credits(project, at=AT)
        assert (credit.used, credit.available) == (Decimal(30), Decimal(70))
    # Each invoice: settled once, every other answer a replay of that one.
    firsts = [r for results in seen for r in results if not r.replayed]  # type: ignore[union-attr]
    assert sorted((r.project_id, r.invoice_id) for r in firsts) == sorted(  # type: ignore[union-attr]
        (i.project_id, i.id) for i in invoices)


def test_confirmations_racing_a_cancellation_pay_once_or_not_at_all(
    service: CreditService,
) -> None:
    paid_at = T0 + dt.timedelta(hours=1)
    for round_ in range(4):
        project = f"race-{round_}"
        order = service.create_order(project, "42.50", currency="EUR", at=T0)
        outcomes: list[str] = []

        def pay(order_id: str = order.id, outcomes: list[str] = outcomes) -> None:
            try:
                done = service.pay_order(order_id, amount="42.50", currency="EUR", at=paid_at)
                outcomes.append(done.status)
            except exceptions.InvalidState:
                outcomes.append("refused")

        def cancel(order_id: str = order.id, outcomes: list[str] = outcomes) -> None:
            try:
                outcomes.append(service.cancel_order(order_id, at=paid_at).status)
            except exceptions.InvalidState:
                outcomes.append("refused")

        workers = [pay, pay, pay, cancel, pay, cancel]
        random.Random(round_).shuffle(workers)
        errors = race(workers)
        assert not errors, errors
        final = service.show_order(order.id, at=paid_at)
        credits = service.list_credits(project, at=paid_at)
        if final.status == "paid":
            assert outcomes.count("paid") == 4 and outcomes.count("refused") == 2
            assert [(c.id, c.total, c.source) for c in credits] == [
                (final.credit_id, Decimal("42.50"), order.id)]
        else:
            assert final.status == "cancelled"
            assert outcomes.count("cancelled") == 2 and outcomes.count("refused") == 4
            assert credits == []
