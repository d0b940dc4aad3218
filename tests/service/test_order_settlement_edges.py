"""Orders and settlements at their edges: what the contracts promise where inputs are odd.

- an invoice whose settlement key cannot be stored (a long project id full of
  "/", each written "%2F" in the key) is refused in its place, on every
  backend, and the rest of its batch is settled (README: one bad invoice never
  stops a run);
- one settlement key given for two projects' charges in one batch is refused,
  as it is across two batches: never the first one's settlement "replayed"
  as the second's;
- orders, payments (same, respelled, other amount or currency, late), cancellations
  and invoice runs (replays, changed content, lines of 0, batches of any size)
  follow a model of them: one credit per paid order, of its amount; each invoice
  debited once; what the credits lost is what the invoices were applied.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oslo_config import cfg

from ovh_credit_plugin import exceptions, models
from ovh_credit_plugin.allocation import Line
from ovh_credit_plugin.hosts.invoice import InvoiceProcessor, is_refusal
from ovh_credit_plugin.service import Charge, CreditService

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
AT = T0 + dt.timedelta(days=1)


def buy(service: CreditService, project: str, amount: str) -> None:
    order = service.create_order(project, amount, at=T0)
    service.pay_order(order.id, at=T0)


def document(project: str, invoice_id: str, amount: str) -> dict[str, object]:
    return {"id": invoice_id, "project_id": project, "currency": "EUR",
            "issued_at": AT.isoformat(),
            "lines": [{"id": "l1", "product": "compute", "amount": amount}]}


# A valid project id (255 characters at most, "/" allowed) and invoice id whose key,
# "invoice/<project with / as %2F>/<invoice>", is 772 characters: the column holds 600.
LONG_PROJECT = "a/" * 127
LONG_INVOICE = "x" * 255


def test_an_invoice_whose_key_cannot_be_stored_is_refused_and_its_batch_settles(
    service: CreditService,
) -> None:
    buy(service, "p1", "100")
    processor = InvoiceProcessor(cfg.ConfigOpts(), service=service)
    results = list(processor.process_many(
        [document("p1", "I1", "10"), document(LONG_PROJECT, LONG_INVOICE, "10"),
         document("p1", "I2", "5")], at=AT))
    assert [is_refusal(r) for r in results] == [False, True, False]
    assert results[1]["project_id"] == LONG_PROJECT
    assert "settlement key" in str(results[1]["error"])
    assert [r["credit_applied"] for r in (results[0], results[2])] == ["10.00", "5.00"]
    assert service.list_credits("p1", at=AT)[0].available == Decimal("85")
    # Alone (an online host): the typed refusal, nothing written.
    with pytest.raises(exceptions.InvalidInput, match="settlement key"):
        processor.process(document(LONG_PROJECT, LONG_INVOICE, "10"), at=AT)
    with pytest.raises(exceptions.SettlementNotFound):
        service.show_invoice_settlement(LONG_PROJECT, LONG_INVOICE)


def test_one_key_for_two_projects_in_one_batch_is_refused_as_across_batches(
    service: CreditService,
) -> None:
    """A host's batch names one key for charges of two projects (its bug): the second
    is refused, as it is when the first was recorded by an earlier batch. It was
    answered with the first project's settlement, "replayed", and p2's charge paid
    by nobody's credit while the host was told which of p1's credits paid it."""
    buy(service, "p1", "100")
    buy(service, "p2", "100")

    def charge(project: str) -> Charge:
        return Charge.of(key="host/period-1", project_id=project, invoice_id="period-1",
                         currency="EUR", at=AT, lines=[Line("l0", "compute", Decimal("10"))])

    with pytest.raises(exceptions.SettlementConflict,
                       match="settlement key is recorded for invoice period-1 of project p1"):
        service.settle([charge("p1"), charge("p2")], at=AT)
    # Nothing of the refused batch was written.
    assert [c.available for c in service.list_credits("p1", at=AT)] == [Decimal(100)]
    # Across two batches: the same refusal.
    [first] = service.settle([charge("p1")], at=AT)
    assert first.project_id == "p1" and first.credit_applied == Decimal(10)
    with pytest.raises(exceptions.SettlementConflict,
                       match="settlement key is recorded for invoice period-1 of project p1"):
        service.settle([charge("p2")], at=AT)
    assert [c.available for c in service.list_credits("p2", at=AT)] == [Decimal(100)]


# -- an invariant: orders, payments and invoice runs against a model of them ------------

HOUR = dt.timedelta(hours=1)


@st.composite
def scenarios(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    steps: list[tuple[Any, ...]] = []
    orders = 0
    for _ in range(draw(st.integers(1, 14))):
        kind = draw(st.sampled_from(["order", "pay", "pay", "cancel", "run"]))
        if kind == "order" or orders == 0:
            steps.append(("order", draw(st.sampled_from(["4.99", "5", "5.00", "12.34", "100000",
                                                          "100000.01", "7.5"])),
                          draw(st.integers(0, 400))))
            orders += 1
        elif kind == "pay":
            steps.append(("pay", draw(st.integers(0, orders - 1)),
                          draw(st.sampled_from(["same", "none", "other", "spelled"])),
                          draw(st.sampled_from([None, "EUR", "CHF"])),
                          draw(st.integers(0, 400))))
        elif kind == "cancel":
            steps.append(("cancel", draw(st.integers(0, orders - 1)), draw(st.integers(0, 400))))
        else:
            invoices = draw(st.lists(st.tuples(
                st.sampled_from(["I1", "I2", "I3"]),
                st.lists(st.sampled_from(["0", "0.000001", "1", "2.5", "30", "250.123456"]),
                         min_size=0, max_size=3),
                st.integers(0, 600)), min_size=1, max_size=6))
            steps.append(("run", invoices, draw(st.integers(1, 4))))
    return steps


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=scenarios())
def test_orders_and_invoice_runs_follow_their_model(
    service: CreditService, steps: list[tuple[Any, ...]],
) -> None:
    project = f"p-{uuid.uuid4().hex[:12]}"
    made: list[tuple[str, Decimal, dt.datetime] | None] = []  # id, amount, created
    state: dict[int, str] = {}
    paid: dict[int, dt.datetime] = {}
    settled: dict[str, tuple[Any, ...]] = {}  # invoice id -> content
    applied: dict[str, Decimal] = {}
    for step in steps:
        if step[0] == "order":
            _, amount, hours = step
            created = T0 + hours * HOUR
            value = Decimal(amount)
            try:
                order = service.create_order(project, amount, at=created)
            except exceptions.InvalidAmount:
                assert not Decimal(5) <= value <= Decimal(100000)
                made.append(None)
                continue
            assert Decimal(5) <= value <= Decimal(100000) and order.amount == value
            state[len(made)] = "pending"
            made.append((order.id, value, created))
        elif step[0] == "pay":
            _, index, how, currency, hours = step
            if made[index] is None:
                continue
            order_id, value, created = made[index]
            amount = {"same": str(value), "none": None, "other": str(value + 1),
                      "spelled": f"{value:.6f}"}[how]
            at = T0 + hours * HOUR
            expect_ok = how != "other" and currency in (None, "EUR") and (
                state[index] == "paid"
                or (state[index] == "pending" and created <= at < created + 7 * 24 * HOUR))
            try:
                result = service.pay_order(order_id, amount=amount, currency=currency, at=at)
            except (exceptions.InvalidInput, exceptions.InvalidState) as error:
                assert not expect_ok, error
                continue
            assert expect_ok
            assert result.status == "paid" and result.amount == value
            if state[index] == "paid":
                assert result.paid_at == paid[index]
            state[index], paid[index] = "paid", result.paid_at
        elif step[0] == "cancel":
            _, index, hours = step
            if made[index] is None:
                continue
            order_id, value, created = made[index]
            at = T0 + hours * HOUR
            expect_ok = state[index] == "cancelled" or (
                state[index] == "pending" and created <= at < created + 7 * 24 * HOUR)
            try:
                service.cancel_order(order_id, at=at)
            except (exceptions.InvalidInput, exceptions.InvalidState):
                assert not expect_ok
                continue
            assert expect_ok
            state[index] = "cancelled"
        else:
            _, invoices, batch = step
            documents = [models.Invoice.model_validate({
                "id": invoice_id, "project_id": project, "currency": "EUR",
                "issued_at": (T0 + hours * HOUR).isoformat(),
                "lines": [{"id": f"l{n}", "product": "compute", "amount": a}
                          for n, a in enumerate(amounts)]})
                for invoice_id, amounts, hours in invoices]
            results = list(service.settle_invoices(documents, batch_size=batch,
                                                   at=AT + 40 * 24 * HOUR))
            assert len(results) == len(documents)
            for (invoice_id, amounts, hours), result in zip(invoices, results, strict=True):
                content = (tuple(Decimal(a) for a in amounts), hours)
                if invoice_id in settled and settled[invoice_id] != content:
                    assert isinstance(result, models.InvoiceRefusal), result
                    continue
                assert isinstance(result, models.Settlement), result
                assert result.replayed == (invoice_id in settled)
                total = sum(content[0], Decimal(0))
                assert result.total == total
                assert result.credit_applied + result.amount_due == total
                assert Decimal(0) <= result.credit_applied <= total
                assert sum((a.amount for a in result.allocations), Decimal(0)) == \
                    result.credit_applied
                if invoice_id in settled:
                    assert result.credit_applied == applied[invoice_id]
                settled[invoice_id] = content
                applied[invoice_id] = result.credit_applied
    # Each paid order: one credit of its amount; nothing else; debits = what invoices got.
    credits = service.list_credits(project, at=T0)
    by_source = {c.source: c for c in credits}
    assert len(by_source) == len(credits)
    paid_ids = {made[i][0]: made[i][1] for i, s in state.items() if s == "paid"}  # type: ignore[index]
    assert {s: c.total for s, c in by_source.items()} == paid_ids
    assert sum((c.used for c in credits), Decimal(0)) == sum(applied.values(), Decimal(0))
