"""``ovh-credit settlement show``: a recorded settlement, per line which credit paid how
much and why, without the invoice file."""

from __future__ import annotations

import json

import pytest

from tests.functional.test_cli_flow import invoice
from tests.support.cli import Cli


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """The service tests read settlements on every backend; the command only translates."""
    return str(request.param)


def seeded(cli: Cli) -> tuple[int, int]:
    """p1: the GPU-only voucher (first in the order) and 100.00 of purchased credit."""
    voucher = cli.ok("voucher", "activate", "p1", "GPU-ONLY", "--at", "2026-02-01T00:00:00Z")
    order = cli.ok("order", "create", "p1", "100.00", "--at", "2026-02-01T00:00:00Z")
    paid = cli.ok("order", "pay", order["id"], "--at", "2026-02-01T00:00:00Z")
    doc = invoice("INV-1", ("compute", "30.00"), ("gpu", "5.00"))
    cli.ok("settle", "-", stdin=json.dumps(doc))
    return voucher["id"], paid["credit_id"]


def test_show_by_key_and_by_invoice(cli: Cli) -> None:
    voucher, bought = seeded(cli)
    shown = cli.ok("settlement", "show", "invoice/p1/INV-1")
    assert cli.ok("settlement", "show", "INV-1", "--project", "p1") == shown
    assert {k: v for k, v in shown.items() if k != "allocations"} == {
        "key": "invoice/p1/INV-1", "invoice_id": "INV-1", "project_id": "p1",
        "currency": "EUR", "total": "35.00", "credit_applied": "35.00",
        "amount_due": "0.00", "settled_at": "2026-03-01T00:00:00Z", "revision": 1,
    }
    assert [(a["line_id"], a["credit_id"], a["amount"], a["explanation"]["place"],
             a["explanation"]["reason"], a["explanation"]["skipped"])
            for a in shown["allocations"]] == [
        ("l2", voucher, "5.00", 1, "order", []),
        ("l1", bought, "30.00", 2, "scope",
         [{"credit_id": voucher, "cause": "not_covered", "products": []}]),
    ]
    assert shown["allocations"][1]["explanation"]["order_key"] == {
        "kind": "purchased", "valid_until": "2027-03-01T00:00:00Z",
        "created_at": "2026-02-01T00:00:00Z", "credit_id": bought}


def test_the_table_says_why_in_a_sentence_per_line(cli: Cli) -> None:
    voucher, bought = seeded(cli)
    result = cli("settlement", "show", "invoice/p1/INV-1", "-f", "value", "-c",
                 "allocations", json_output=False)
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)[0]["line_id"] == "l2"  # value: JSON text
    table = cli("settlement", "show", "invoice/p1/INV-1", "-f", "table", json_output=False)
    assert table.code == 0, table.stderr
    text = " ".join(table.stdout.split())
    assert (f"line l2: 5.00 EUR from credit {voucher} (voucher), place 1 in the consumption "
            "order (valid until 2027-01-01T00:00:00Z, created 2026-02-01T00:00:00Z)") in text
    assert (f"line l1: 30.00 EUR from credit {bought} (purchased), place 2 in the consumption "
            "order") in text
    assert (f"credit {voucher} comes first but does not cover this line's product") in text


def test_unknown_settlement_is_one_line_on_stderr(cli: Cli) -> None:
    seeded(cli)
    for args in (("invoice/p1/INV-2",), ("INV-1", "--project", "p2")):
        result = cli("settlement", "show", *args)
        assert result.code != 0
        assert result.stdout == ""
        assert result.stderr.count("\n") == 1 and "no settlement" in result.stderr
    bad = cli("settlement", "show", "bad id!", "--project", "p1")
    assert bad.code != 0 and "invalid invoice id" in bad.stderr
