"""A credit's ledger entries: one name (``entries``, DESIGN.md's) and one way of writing
their amounts, in the REST API, ``openstack rating credit show`` and ``ovh-credit credit
show``.

The command line called them ``ledger``, and the API wrote their amounts at the ledger's
six decimals ("100.000000") beside the credit's own "100.00" in the same document. Both
now write an entry's amount as the credit's amounts are written: the currency's places,
more only when the ledger holds digits below the minor unit (a CloudKitty rating).
"""

from __future__ import annotations

import datetime as dt

from ovh_credit_plugin import models
from ovh_credit_plugin.service import inputs
from tests.support.api import PROJECT, call, standalone
from tests.support.cli import Cli
from tests.support.ledgers import Ledger

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
MEMBER = {"X-Project-Id": PROJECT, "X-User-Id": "alice", "X-Roles": "member,reader"}


def bought_and_spent(ledger: Ledger) -> int:
    """A 20.00 EUR credit, then a settled invoice of 1.5 EUR and of 0.001234 EUR."""
    service = ledger.service(clock=inputs.now)  # the API runs on the wall clock
    try:
        paid = service.pay_order(service.create_order(PROJECT, "20.00", at=T0).id, at=T0)
        assert paid.credit_id is not None
        service.settle_invoice(models.Invoice.model_validate({
            "id": "INV-1", "project_id": PROJECT, "currency": "EUR",
            "issued_at": "2026-01-31T11:00:00Z",
            "lines": [{"id": "l1", "product": "compute", "amount": "1.5"},
                      {"id": "l2", "product": "compute", "amount": "0.001234"}]}),
            at=T0 + dt.timedelta(hours=1))
        return paid.credit_id
    finally:
        service.close()


def test_the_api_and_the_command_line_show_the_same_entries(ledger: Ledger, cli: Cli) -> None:
    credit_id = bought_and_spent(ledger)
    with standalone(ledger) as url:
        answer = call("GET", f"{url}/v1/credits/{credit_id}", headers=MEMBER)
    assert answer.status_code == 200, answer.text
    api = answer.json()
    assert [(e["type"], e["line_id"], e["amount"]) for e in api["entries"]] == [
        ("grant", None, "20.00"), ("debit", "l1", "1.50"), ("debit", "l2", "0.001234")]
    assert api["available"] == "18.498766"
    shown = cli.ok("credit", "show", str(credit_id))
    assert "ledger" not in shown
    assert shown["entries"] == api["entries"]
