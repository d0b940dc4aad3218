"""``ovh-credit credit forecast PROJECT [--at TIME]`` on a real ledger."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from tests.support.cli import Cli
from tests.support.ledgers import Ledger

UTC = dt.timezone.utc
# Credit paid on 2026-01-01 ends 13 months later, on 2027-02-01: 20 days after AT.
AT = dt.datetime(2027, 1, 12, tzinfo=UTC)
DAY = dt.timedelta(days=1)


def stamp(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def seed(cli: Cli, tmp_path: Path) -> int:
    """160.00 of credit, then 2.00 a day over the 30 days before AT: 100.00 left."""
    order = cli.ok("order", "create", "p1", "160.00", "--at", "2026-01-01T00:00:00Z")
    paid = cli.ok("order", "pay", order["id"], "--at", "2026-01-01T00:00:00Z")
    invoices = tmp_path / "invoices.jsonl"
    invoices.write_text("".join(json.dumps({
        "id": f"I{k}", "project_id": "p1", "currency": "EUR",
        "issued_at": stamp(AT - k * DAY + DAY / 2),
        "lines": [{"id": "1", "product": "instance", "amount": "2.00"}],
    }) + "\n" for k in range(1, 31)))
    assert len(cli.ok("settle", str(invoices))) == 30
    return int(paid["credit_id"])


def test_the_issue_example_in_every_format(cli: Cli, tmp_path: Path) -> None:
    credit_id = seed(cli, tmp_path)
    assert cli.ok("credit", "forecast", "p1", "--at", stamp(AT)) == {
        "currency": "EUR",
        "available": "100.00",
        "burn_rate_per_day": "2.00",
        "window_days": 30,
        "runs_out_at": None,
        "amount_at_risk": "60.00",
        "credits": [{"credit_id": credit_id, "kind": "purchased",
                     "valid_until": "2027-02-01T00:00:00Z", "available": "100.00",
                     "expires_unused": "60.00"}],
        "warnings": [{"credit_id": credit_id, "days_left": 20, "amount": "60.00"}],
    }
    table = cli("credit", "forecast", "p1", "--at", stamp(AT), "-f", "table")
    assert table.code == 0, table.stderr
    assert "60.00 EUR" in table.stdout and "2.00 EUR" in table.stdout
    assert f"credit_id={credit_id}, days_left=20, amount=60.00" in table.stdout
    value = cli("credit", "forecast", "p1", "--at", stamp(AT), "-f", "value",
                "-c", "amount_at_risk", "-c", "warnings")
    assert value.code == 0, value.stderr
    amount, warnings = value.stdout.splitlines()
    assert amount == "60.00"
    assert json.loads(warnings) == [{"credit_id": credit_id, "days_left": 20,
                                     "amount": "60.00"}]
    # Asked about 15 days later with nothing settled meanwhile: half the window is
    # empty, so 1.00 a day for the 5 days left; after its end, nothing is held.
    later = cli.ok("credit", "forecast", "p1", "--at", stamp(AT + 15 * DAY))
    assert (later["burn_rate_per_day"], later["amount_at_risk"]) == ("1.00", "95.00")
    assert later["warnings"] == [{"credit_id": credit_id, "days_left": 5, "amount": "95.00"}]
    ended = cli.ok("credit", "forecast", "p1", "--at", stamp(AT + 20 * DAY))
    assert (ended["credits"], ended["available"], ended["amount_at_risk"]) == (
        [], "0.00", "0.00")


def test_a_project_without_credit_and_refusals(cli: Cli, ledger: Ledger) -> None:
    assert cli.ok("credit", "forecast", "nobody") == {
        "currency": "EUR", "available": "0.00", "burn_rate_per_day": "0.00",
        "window_days": 30, "runs_out_at": None, "amount_at_risk": "0.00",
        "credits": [], "warnings": []}
    before = ledger.checksum()
    bad = cli("credit", "forecast", "no such project")
    assert bad.code == 1 and bad.stdout == ""
    assert bad.stderr.startswith("ovh-credit: invalid project id") and bad.stderr.count("\n") == 1
    usage = cli("credit", "forecast", "p1", "--at", "soon")
    assert usage.code == 2 and "invalid time 'soon'" in usage.stderr
    column = cli("credit", "forecast", "p1", "-c", "expires_unused")
    assert column.code != 0 and "expires_unused" in column.stderr
    assert ledger.checksum() == before
