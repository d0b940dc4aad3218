"""Bad input through the CLI: one clear line on stderr, non-zero exit, nothing written."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Cli, Ledger

GOOD_INVOICE: dict[str, Any] = {
    "id": "INV-1",
    "project_id": "p1",
    "currency": "EUR",
    "issued_at": "2026-03-01T00:00:00Z",
    "lines": [{"id": "l1", "product": "compute", "amount": "10.00"}],
}


def bad_invoice(**changes: Any) -> str:
    doc = json.loads(json.dumps(GOOD_INVOICE))
    for key, value in changes.items():
        if key.startswith("line_"):
            doc["lines"][0][key.removeprefix("line_")] = value
        elif value is ...:
            del doc[key]
        else:
            doc[key] = value
    return json.dumps(doc)


@pytest.fixture
def seeded(cli: Cli) -> dict[str, Any]:
    """A project with a paid order, a voucher and a pending order."""
    paid = cli.ok("order", "create", "p1", "100", "--at", "2026-02-01T00:00:00Z")
    paid = cli.ok("order", "pay", paid["id"], "--at", "2026-02-01T00:00:00Z")
    voucher = cli.ok("voucher", "activate", "p1", "WELCOME-2026", "--at", "2026-02-01T00:00:00Z")
    pending = cli.ok("order", "create", "p1", "30", "--at", "2026-02-02T00:00:00Z")
    cancelled = cli.ok("order", "create", "p1", "30", "--at", "2026-02-02T00:00:00Z")
    cli.ok("order", "cancel", cancelled["id"], "--at", "2026-02-02T00:00:00Z")
    return {"paid": paid, "voucher": voucher, "pending": pending, "cancelled": cancelled}


CASES: list[tuple[str, list[str], str, str]] = [
    # (name, argv, stdin, expected fragment of the error line)
    ("negative amount", ["order", "create", "p1", "-5"], "", "must not be negative"),
    ("zero amount", ["order", "create", "p1", "0"], "", "greater than zero"),
    ("NaN amount", ["order", "create", "p1", "NaN"], "", "finite"),
    ("infinite amount", ["order", "create", "p1", "Infinity"], "", "finite"),
    ("exponent amount", ["order", "create", "p1", "1e3"], "", "plain digits"),
    ("words as amount", ["order", "create", "p1", "ten"], "", "not a decimal number"),
    ("too many decimals", ["order", "create", "p1", "10.001"], "", "more than 2 decimal places"),
    ("below minimum", ["order", "create", "p1", "4.99"], "", "between 5.00 and 100000.00"),
    ("above maximum", ["order", "create", "p1", "100000.01"], "", "between"),
    ("absurd amount", ["order", "create", "p1", "1" + "0" * 30], "", "too large"),
    (
        "unknown currency",
        ["order", "create", "p2", "10", "--currency", "ZZZ"],
        "",
        "unknown currency",
    ),
    (
        "lowercase currency",
        ["order", "create", "p2", "10", "--currency", "eur"],
        "",
        "invalid currency",
    ),
    (
        "currency without minor unit",
        ["order", "create", "p2", "10", "--currency", "XAU"],
        "",
        "no minor unit",
    ),
    (
        "currency mismatch on project",
        ["order", "create", "p1", "10", "--currency", "USD"],
        "",
        "bills in EUR",
    ),
    ("bad project id", ["order", "create", "p 1", "10"], "", "invalid project id"),
    ("unknown order pay", ["order", "pay", "no-such-order"], "", "no order"),
    ("unknown order cancel", ["order", "cancel", "no-such-order"], "", "no order"),
    (
        "payment amount mismatch",
        ["order", "pay", "{pending}", "--amount", "31"],
        "",
        "does not match",
    ),
    (
        "payment currency mismatch",
        ["order", "pay", "{pending}", "--currency", "USD"],
        "",
        "does not match",
    ),
    ("payment of a cancelled order", ["order", "pay", "{cancelled}"], "", "is cancelled"),
    ("cancel a paid order", ["order", "cancel", "{paid}"], "", "only a pending order"),
    ("unknown credit show", ["credit", "show", "999"], "", "no credit 999"),
    ("non-numeric credit id", ["credit", "show", "abc"], "", "invalid credit id"),
    ("negative credit id", ["credit", "void", "-3", "--reason", "x"], "", "invalid credit id"),
    (
        "void without reason text",
        ["credit", "void", "{voucher_credit}", "--reason", "  "],
        "",
        "needs a reason",
    ),
    (
        "void twice",
        ["credit", "void", "{voided_credit}", "--reason", "again"],
        "",
        "already voided",
    ),
    ("voucher code too short", ["voucher", "activate", "p1", "AB"], "", "4 to 64"),
    ("voucher code with symbols", ["voucher", "activate", "p1", "WELC;OME"], "", "4 to 64"),
    ("voucher check bad code", ["voucher", "check", "x"], "", "4 to 64"),
    ("bad --at", ["order", "create", "p1", "10", "--at", "yesterday"], "", "invalid time"),
    ("missing invoice file", ["settle", "/nonexistent/invoices.json"], "", "no such invoice"),
    ("invoice not JSON", ["settle", "-"], "{not json", "not valid JSON"),
    ("invoice is a number", ["settle", "-"], "42", "invoice object"),
    ("invoice missing lines", ["settle", "-"], bad_invoice(lines=...), "lines"),
    ("invoice unknown field", ["settle", "-"], bad_invoice(extra="x"), "extra"),
    ("invoice float amount", ["settle", "-"], bad_invoice(line_amount=10.5), "decimal string"),
    ("invoice negative line", ["settle", "-"], bad_invoice(line_amount="-1"), "negative"),
    (
        "invoice 7 decimals",
        ["settle", "-"],
        bad_invoice(line_amount="0.0000001"),
        "more than 6 decimal places",
    ),
    ("invoice bad currency", ["settle", "-"], bad_invoice(currency="EURO"), "currency"),
    ("invoice bad date", ["settle", "-"], bad_invoice(issued_at="March 1st"), "issued_at"),
    ("invoice currency mismatch", ["settle", "-"], bad_invoice(currency="USD"), "bills in EUR"),
    (
        "invoice duplicate line ids",
        ["settle", "-"],
        json.dumps({**GOOD_INVOICE, "lines": GOOD_INVOICE["lines"] * 2}),
        "appears twice",
    ),
    (
        "bad line in JSON lines",
        ["settle", "-"],
        json.dumps(GOOD_INVOICE) + "\n" + bad_invoice(id="I2", line_amount="x") + "\n",
        "invoice #2",
    ),
    (
        "same invoice twice, different content",
        ["settle", "-"],
        json.dumps(GOOD_INVOICE) + "\n" + bad_invoice(line_amount="11.00") + "\n",
        "different content",
    ),
    (
        "batch size zero",
        ["settle", "-", "--batch-size", "0"],
        json.dumps(GOOD_INVOICE),
        "at least 1",
    ),
]


def _fill(argv: list[str], seeded: dict[str, Any], cli: Cli) -> list[str]:
    values = {
        "pending": seeded["pending"]["id"],
        "cancelled": seeded["cancelled"]["id"],
        "paid": seeded["paid"]["id"],
        "voucher_credit": str(seeded["voucher"]["id"]),
        "voided_credit": str(seeded["voided_credit"]),
    }
    return [a.format(**values) if a.startswith("{") else a for a in argv]


@pytest.mark.parametrize(("name", "argv", "stdin", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_and_writes_nothing(
    cli: Cli,
    ledger: Ledger,
    seeded: dict[str, Any],
    name: str,
    argv: list[str],
    stdin: str,
    fragment: str,
) -> None:
    paid_credit = seeded["paid"]["credit_id"]
    if "voided_credit" not in seeded:
        other = cli.ok("order", "create", "p3", "10", "--at", "2026-02-01T00:00:00Z")
        other = cli.ok("order", "pay", other["id"], "--at", "2026-02-01T00:00:00Z")
        cli.ok("credit", "void", str(other["credit_id"]), "--reason", "fraud")
        seeded["voided_credit"] = other["credit_id"]
    assert paid_credit
    before = ledger.checksum()
    result = cli(*_fill(argv, seeded, cli), stdin=stdin)
    assert result.code != 0
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert fragment in lines[0], lines[0]
    assert ledger.checksum() == before


def test_at_least_thirty_cases() -> None:
    assert len(CASES) >= 30


def test_missing_config_file_is_one_line(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    from ovh_credit_plugin.cli.app import main

    code = main(["--config-file", "/nonexistent.conf", "credit", "list", "p1"])
    err = capsys.readouterr().err
    assert code != 0
    assert len(err.splitlines()) == 1
    assert "/nonexistent.conf" in err


def test_unmigrated_database_says_what_to_do(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from ovh_credit_plugin.cli.app import main

    conf = tmp_path / "c.conf"
    conf.write_text(f"[cloud_credit]\nconnection = sqlite:///{tmp_path}/empty.sqlite\n")
    code = main(["--config-file", str(conf), "credit", "list", "p1"])
    err = capsys.readouterr().err
    assert code == 1
    assert (
        err == "ovh-credit: the ledger database has no tables yet: run 'ovh-credit db upgrade'\n"
    )
