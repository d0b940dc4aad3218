"""The seed's whole flow through the ``ovh-credit`` CLI on a real SQLite file."""

from __future__ import annotations

import csv
import io
import json
import shlex
from decimal import Decimal
from typing import Any

import pytest

from tests.support.cli import Cli
from tests.support.ledgers import Ledger

ORDER_KEYS = {
    "id",
    "project_id",
    "amount",
    "currency",
    "status",
    "created_at",
    "expires_at",
    "paid_at",
    "payment_url",
    "credit_id",
}
CREDIT_KEYS = {
    "id",
    "project_id",
    "kind",
    "description",
    "source",
    "currency",
    "total",
    "used",
    "expired",
    "voided",
    "available",
    "valid_from",
    "valid_until",
    "status",
    "products",
}
CREDIT_KEYS_IN_ORDER = (
    "id", "project_id", "kind", "description", "source", "currency", "total", "used",
    "expired", "voided", "available", "valid_from", "valid_until", "status", "products",
)
SETTLEMENT_KEYS = {
    "invoice_id",
    "project_id",
    "currency",
    "total",
    "credit_applied",
    "amount_due",
    "allocations",
    "replayed",
}


def invoice(
    invoice_id: str,
    *lines: tuple[str, str],
    project: str = "p1",
    issued_at: str = "2026-03-01T00:00:00Z",
    currency: str = "EUR",
) -> dict[str, Any]:
    return {
        "id": invoice_id,
        "project_id": project,
        "currency": currency,
        "issued_at": issued_at,
        "lines": [
            {"id": f"l{n}", "product": product, "amount": amount}
            for n, (product, amount) in enumerate(lines, start=1)
        ],
    }


def audit_ok(cli: Cli) -> None:
    report = cli.ok("audit")
    assert report["ok"] is True, report["violations"]


def test_buy_credit_order_then_payment_creates_the_credit_once(cli: Cli) -> None:
    order = cli.ok("order", "create", "p1", "100", "--at", "2026-01-31T10:00:00Z")
    assert set(order) == ORDER_KEYS
    assert order["status"] == "pending"
    assert order["amount"] == "100.00"
    assert order["currency"] == "EUR"
    assert order["credit_id"] is None
    assert order["payment_url"] == f"https://pay.example/orders/{order['id']}"
    assert order["expires_at"] == "2026-02-07T10:00:00Z"
    # No credit exists until the order is paid.
    assert cli.ok("credit", "list", "p1") == []

    paid = cli.ok("order", "pay", order["id"], "--at", "2026-01-31T12:00:00Z")
    assert paid["status"] == "paid"
    assert paid["paid_at"] == "2026-01-31T12:00:00Z"
    again = cli.ok("order", "pay", order["id"], "--at", "2026-02-01T00:00:00Z")
    assert again == paid  # a webhook replay changes nothing

    credits = cli.ok("credit", "list", "p1", "--at", "2026-02-01T00:00:00Z")
    assert len(credits) == 1
    credit = credits[0]
    assert set(credit) == CREDIT_KEYS
    assert credit["id"] == paid["credit_id"]
    assert credit["kind"] == "purchased"
    assert credit["source"] == order["id"]
    assert (credit["total"], credit["available"], credit["used"]) == ("100.00", "100.00", "0.00")
    # 13 calendar months, clamped at month end: 2026-01-31 -> 2027-02-28.
    assert credit["valid_until"] == "2027-02-28T12:00:00Z"
    assert credit["status"] == "active"
    listed = cli.ok("order", "list", "p1")
    assert [o["id"] for o in listed] == [order["id"]]
    audit_ok(cli)


def test_voucher_then_settlement_uses_voucher_before_purchased_credit(cli: Cli) -> None:
    order = cli.ok("order", "create", "p1", "100.00", "--at", "2026-02-01T00:00:00Z")
    cli.ok("order", "pay", order["id"], "--at", "2026-02-01T00:00:00Z")
    voucher = cli.ok(
        "voucher", "activate", "p1", "  welcome-2026 ", "--at", "2026-02-02T00:00:00Z"
    )
    assert voucher["kind"] == "voucher"
    assert voucher["source"] == "WELCOME-2026"
    assert voucher["total"] == "50.00"
    assert voucher["valid_until"] == "2026-05-03T00:00:00Z"  # validity_days 90

    credits = cli.ok("credit", "list", "p1", "--at", "2026-02-03T00:00:00Z")
    assert [c["kind"] for c in credits] == ["voucher", "purchased"]

    doc = invoice("INV-1", ("compute", "30.00"), ("storage", "45.50"))
    settlements = cli.ok("settle", "-", stdin=json.dumps(doc))
    assert len(settlements) == 1
    s = settlements[0]
    assert set(s) == SETTLEMENT_KEYS
    assert (s["total"], s["credit_applied"], s["amount_due"]) == ("75.50", "75.50", "0.00")
    assert s["replayed"] is False
    by_credit: dict[int, Decimal] = {}
    for a in s["allocations"]:
        assert set(a) == {"line_id", "credit_id", "kind", "amount"}
        by_credit[a["credit_id"]] = by_credit.get(a["credit_id"], Decimal(0)) + Decimal(
            a["amount"]
        )
    assert by_credit == {voucher["id"]: Decimal("50.00"), order_credit(cli): Decimal("25.50")}

    replay = cli.ok("settle", "-", stdin=json.dumps(doc))
    assert replay[0]["replayed"] is True
    assert {k: v for k, v in replay[0].items() if k != "replayed"} == {
        k: v for k, v in s.items() if k != "replayed"
    }
    credits = cli.ok("credit", "list", "p1", "--at", "2026-03-02T00:00:00Z")
    assert [(c["kind"], c["available"], c["status"]) for c in credits] == [
        ("voucher", "0.00", "exhausted"),
        ("purchased", "74.50", "active"),
    ]
    audit_ok(cli)


def order_credit(cli: Cli) -> int:
    return next(o["credit_id"] for o in cli.ok("order", "list", "p1") if o["credit_id"])


def test_settlement_without_credit_leaves_everything_due(cli: Cli) -> None:
    s = cli.ok("settle", "-", stdin=json.dumps(invoice("I", ("compute", "12.34"))))[0]
    assert (s["credit_applied"], s["amount_due"], s["allocations"]) == ("0.00", "12.34", [])


def test_credit_never_covers_more_than_due(cli: Cli) -> None:
    order = cli.ok("order", "create", "p1", "500", "--at", "2026-02-01T00:00:00Z")
    cli.ok("order", "pay", order["id"], "--at", "2026-02-01T00:00:00Z")
    s = cli.ok("settle", "-", stdin=json.dumps(invoice("I", ("compute", "0.000123"))))[0]
    assert (s["credit_applied"], s["amount_due"]) == ("0.000123", "0.00")
    credit = cli.ok("credit", "show", str(order_credit(cli)), "--at", "2026-03-01T00:00:00Z")
    assert credit["available"] == "499.999877"
    assert [e["type"] for e in credit["entries"]] == ["grant", "debit"]


def test_batch_settlement_of_json_lines_array_and_object(cli: Cli, ledger: Ledger) -> None:
    order = cli.ok("order", "create", "p1", "10", "--at", "2026-02-01T00:00:00Z")
    cli.ok("order", "pay", order["id"], "--at", "2026-02-01T00:00:00Z")
    docs = [invoice(f"I{n}", ("compute", "3.00")) for n in range(5)]
    lines = "\n".join(json.dumps(d) for d in docs) + "\n"
    path = ledger.config.parent / "invoices.jsonl"
    path.write_text(lines)
    out = cli.ok("settle", str(path), "--batch-size", "2")
    assert [s["invoice_id"] for s in out] == [f"I{n}" for n in range(5)]
    assert [s["credit_applied"] for s in out] == ["3.00", "3.00", "3.00", "1.00", "0.00"]
    # An array of the same invoices is a replay of each.
    again = cli.ok("settle", "-", stdin=json.dumps(docs, indent=2))
    assert all(s["replayed"] for s in again)
    assert [s["credit_applied"] for s in again] == ["3.00", "3.00", "3.00", "1.00", "0.00"]
    # A pretty-printed single object works too.
    single = cli.ok("settle", "-", stdin=json.dumps(docs[0], indent=2))
    assert single[0]["replayed"] is True
    audit_ok(cli)


def test_expiry_at_13_months_records_the_lost_balance(cli: Cli) -> None:
    order = cli.ok("order", "create", "p1", "80", "--at", "2026-01-31T00:00:00Z")
    cli.ok("order", "pay", order["id"], "--at", "2026-01-31T00:00:00Z")
    cli.ok(
        "settle",
        "-",
        stdin=json.dumps(invoice("I", ("compute", "30"), issued_at="2026-06-01T00:00:00Z")),
    )
    # The day before the end, nothing expires.
    summary = cli.ok("expire", "--at", "2027-02-27T23:59:59Z")
    assert summary["credits_expired"] == 0
    # Past valid_until the credit is never applied, even before the job runs.
    late = cli.ok(
        "settle",
        "-",
        stdin=json.dumps(invoice("LATE", ("compute", "5"), issued_at="2027-02-28T00:00:00Z")),
    )[0]
    assert late["credit_applied"] == "0.00"
    summary = cli.ok("expire", "--at", "2027-03-01T00:00:00Z")
    assert summary["credits_expired"] == 1
    assert summary["amount_expired"] == {"EUR": "50.00"}
    credit = cli.ok("credit", "list", "p1", "--at", "2027-03-01T00:00:00Z")[0]
    assert (credit["status"], credit["expired"], credit["available"]) == (
        "expired",
        "50.00",
        "0.00",
    )
    # Running the job again expires nothing twice.
    assert cli.ok("expire", "--at", "2027-04-01T00:00:00Z")["credits_expired"] == 0
    audit_ok(cli)


def test_notify_expiring_warns_once_per_credit_and_threshold(cli: Cli, ledger: Ledger) -> None:
    order = cli.ok("order", "create", "p1", "50", "--at", "2026-01-31T00:00:00Z")
    cli.ok("order", "pay", order["id"], "--at", "2026-01-31T00:00:00Z")  # ends 2027-02-28
    # Notifications off: the warnings would be recorded as sent and never be.
    refused = cli("notify-expiring", "--at", "2027-02-10T00:00:00Z")
    assert (refused.code, refused.stdout) == (1, "")
    assert refused.stderr == (
        "ovh-credit: notifications are off: set [oslo_messaging_notifications] driver "
        "(e.g. messagingv2 or log) before sending expiry warnings\n")

    with ledger.config.open("a") as config:
        config.write("[oslo_messaging_notifications]\ndriver = log\n")
    first = cli.ok("notify-expiring", "--at", "2027-02-10T00:00:00Z")
    assert first == {"at": "2027-02-10T00:00:00Z", "forecast_warning_days": [7, 30],
                     "projects_forecast": 1, "credits_notified": 1,
                     "by_threshold": {"7": 0, "30": 1}}
    again = cli.ok("notify-expiring", "--at", "2027-02-11T00:00:00Z")
    assert (again["credits_notified"], again["by_threshold"]) == (0, {"7": 0, "30": 0})
    # With -v the log driver's notification is on stderr, with its payload.
    shown = cli("-v", "notify-expiring", "--at", "2027-02-22T00:00:00Z")
    assert shown.code == 0
    assert shown.json()["by_threshold"] == {"7": 1, "30": 0}
    line = next(text for text in shown.stderr.splitlines() if "credit.expiring" in text)
    message = json.loads(line.removeprefix("ovh-credit: "))
    assert (message["priority"], message["payload"]["threshold_days"],
            message["payload"]["expires_unused"]) == ("WARN", 7, "50.00")
    # And an INFO one: the log driver's loggers are below "oslo.messaging", kept quiet.
    made = cli("-v", "order", "create", "p1", "10", "--at", "2027-02-22T00:00:00Z")
    assert made.code == 0
    assert any("cloud_credit.order.created" in text for text in made.stderr.splitlines())


def test_unpaid_order_lapses_and_cannot_be_paid(cli: Cli) -> None:
    order = cli.ok("order", "create", "p1", "20", "--at", "2026-01-01T00:00:00Z")
    summary = cli.ok("expire", "--at", "2026-01-08T00:00:00Z")
    assert summary["orders_lapsed"] == 1
    assert cli.ok("order", "list", "p1")[0]["status"] == "expired"
    result = cli("order", "pay", order["id"], "--at", "2026-01-09T00:00:00Z")
    assert result.code != 0
    assert "lapsed" in result.stderr


def test_cancel_then_pay_is_refused(cli: Cli) -> None:
    order = cli.ok("order", "create", "p1", "20", "--at", "2026-01-01T00:00:00Z")
    cancelled = cli.ok("order", "cancel", order["id"], "--at", "2026-01-02T00:00:00Z")
    assert cancelled["status"] == "cancelled"
    result = cli("order", "pay", order["id"], "--at", "2026-01-03T00:00:00Z")
    assert result.code == 1
    assert result.stderr == f"ovh-credit: order {order['id']} is cancelled\n"
    assert cli.ok("credit", "list", "p1") == []


def test_void_records_the_reason_and_stops_the_credit(cli: Cli) -> None:
    order = cli.ok("order", "create", "p1", "20", "--at", "2026-01-01T00:00:00Z")
    paid = cli.ok("order", "pay", order["id"], "--at", "2026-01-01T00:00:00Z")
    voided = cli.ok(
        "credit",
        "void",
        str(paid["credit_id"]),
        "--reason",
        "charge-back",
        "--at",
        "2026-01-05T00:00:00Z",
    )
    assert (voided["status"], voided["voided"], voided["available"]) == ("voided", "20.00", "0.00")
    shown = cli.ok("credit", "show", str(paid["credit_id"]))
    assert [(e["type"], e["amount"], e["note"]) for e in shown["entries"]][-1] == (
        "void",
        "20.00",
        "charge-back",
    )
    s = cli.ok("settle", "-", stdin=json.dumps(invoice("I", ("compute", "5"))))[0]
    assert s["credit_applied"] == "0.00"
    audit_ok(cli)


def test_invoice_replay_with_different_content_is_a_conflict(cli: Cli, ledger: Ledger) -> None:
    order = cli.ok("order", "create", "p1", "20", "--at", "2026-01-01T00:00:00Z")
    cli.ok("order", "pay", order["id"], "--at", "2026-01-01T00:00:00Z")
    cli.ok("settle", "-", stdin=json.dumps(invoice("I", ("compute", "5"))))
    before = ledger.checksum()
    result = cli("settle", "-", stdin=json.dumps(invoice("I", ("compute", "6"))))
    assert result.code == 3
    [refused] = result.json()
    assert refused["invoice"] == "I" and refused["project_id"] == "p1"
    assert "already settled with different content" in refused["error"]
    assert result.stderr == ("ovh-credit: 1 invoice refused, none settled (its error is in "
                             "the output)\n")
    assert ledger.checksum() == before


def test_settle_json_keeps_only_the_columns_asked_for(cli: Cli) -> None:
    doc = invoice("I", ("compute", "5"))
    out = cli.ok("settle", "-", "-c", "amount_due", "-c", "invoice_id", stdin=json.dumps(doc))
    # In the command's column order, as cliff selects them for every other command.
    assert out == [{"invoice_id": "I", "amount_due": "5.00"}]
    assert list(out[0]) == ["invoice_id", "amount_due"]


SOME_REFUSED = 3


def test_settle_reports_refused_invoices_in_place_and_settles_the_rest(
    cli: Cli, ledger: Ledger
) -> None:
    cli.ok("settle", "-", stdin=json.dumps(invoice("I", ("compute", "5"))))
    docs = [invoice("J", ("compute", "1")), invoice("I", ("compute", "6")),
            invoice("K", ("compute", "2"), project="p2")]
    stdin = "\n".join(json.dumps(d) for d in docs) + "\n"
    lines = stdin.splitlines()
    lines.insert(2, '{"id": "L", "project_id": "p2", "id": "M"}')  # a key twice
    lines.insert(3, "{not json")
    for batch_size in ("1", "1000"):  # refusals in a batch of their own, or among others
        result = cli("settle", "-", "--batch-size", batch_size, stdin="\n".join(lines))
        assert result.code == SOME_REFUSED
        assert len(result.stderr.splitlines()) == 1
        assert "3 of 5 invoices refused" in result.stderr
        out = result.json()
        assert [o.get("invoice_id", o.get("invoice")) for o in out] == ["J", "I", "M", None, "K"]
        assert "already settled with different content" in out[1]["error"]
        assert out[2] == {"invoice": "M", "project_id": "p2",
                          "error": "line 3: key 'id' appears twice in one object"}
        assert out[3]["error"].startswith("line 4 is not valid JSON")
        assert set(out[1]) == {"invoice", "project_id", "error"}
        assert [o["replayed"] for o in (out[0], out[4])] == [batch_size == "1000"] * 2


def test_settle_table_lists_settled_and_refused_rows(cli: Cli) -> None:
    cli.ok("settle", "-", stdin=json.dumps(invoice("I", ("compute", "5"))))
    docs = [invoice("J", ("compute", "1")), invoice("I", ("compute", "6"))]
    stdin = "\n".join(json.dumps(d) for d in docs) + "\n"
    result = cli("settle", "-", "-f", "csv", "--batch-size", "1", stdin=stdin,
                 json_output=False)
    assert result.code == SOME_REFUSED
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["invoice_id"], r["amount_due"], r["error"] != "") for r in rows] == [
        ("J", "1.00", False), ("I", "", True)]
    assert "different content" in rows[1]["error"]
    table = cli("settle", "-", "-f", "table", stdin=stdin, json_output=False)
    assert table.code == SOME_REFUSED
    assert "| J " in table.stdout and "| I " in table.stdout
    assert "already settled with different content" in table.stdout


@pytest.mark.parametrize("text", ["", " \n", "[]"], ids=["empty", "blank", "empty array"])
def test_settle_of_no_invoice_is_an_error(cli: Cli, text: str) -> None:
    result = cli("settle", "-", stdin=text)
    assert result.code == 1
    assert result.stdout == ""
    assert result.stderr == "ovh-credit: no invoice in standard input: nothing to settle\n"


def test_a_cancelled_order_in_another_currency_does_not_stop_a_run(cli: Cli) -> None:
    """The issue's report: a CHF invoice of a project whose only order, in EUR, was
    cancelled, then another project's invoice; both are settled."""
    order = cli.ok("order", "create", "pc", "100", "--currency", "EUR")
    cli.ok("order", "cancel", order["id"])
    paid = cli.ok("order", "create", "p2", "50", "--at", "2026-01-01T00:00:00Z")
    cli.ok("order", "pay", paid["id"], "--at", "2026-01-01T00:00:00Z")
    docs = [invoice("C1", ("compute", "10"), project="pc", currency="CHF"),
            invoice("U1", ("compute", "10"), project="p2", currency="USD"),
            invoice("E1", ("compute", "10"), project="p2")]
    out = cli.ok("settle", "-", stdin="\n".join(json.dumps(d) for d in docs))
    assert [(o["invoice_id"], o["amount_due"], o.get("note")) for o in out] == [
        ("C1", "10.00", None), ("U1", "10.00", "currency_mismatch"), ("E1", "0.00", None)]
    # The project may now buy credit in its real currency.
    assert cli.ok("order", "create", "pc", "100", "--currency", "CHF")["currency"] == "CHF"


def test_jpy_project_has_no_decimals(cli: Cli) -> None:
    credit = cli.ok("voucher", "activate", "jp", "YEN-1000")
    assert (credit["currency"], credit["total"]) == ("JPY", "1000")
    result = cli("order", "create", "jp", "500.5")
    assert result.code == 1
    assert "more than 0 decimal places" in result.stderr
    order = cli.ok("order", "create", "jp", "500")
    assert (order["currency"], order["amount"]) == ("JPY", "500")


@pytest.mark.parametrize("fmt", ["table", "value", "csv"])
def test_other_output_formats(cli: Cli, fmt: str) -> None:
    order = cli.ok("order", "create", "p1", "1234.5")
    result = cli("order", "list", "p1", "-f", fmt, json_output=False)
    assert result.code == 0, result.stderr
    if fmt == "table":
        assert "1\u202f234.50 EUR" in result.stdout
    else:
        assert "1234.50" in result.stdout
    assert order["id"] in result.stdout


def test_lists_and_dicts_are_json_text_in_csv_value_and_shell(cli: Cli) -> None:
    order = cli.ok("order", "create", "p1", "50", "--at", "2026-01-31T00:00:00Z")
    cli.ok("order", "pay", order["id"], "--at", "2026-01-31T00:00:00Z")
    doc = json.dumps(invoice("I", ("compute", "10")))
    result = cli("settle", "-", "-f", "csv", stdin=doc, json_output=False)
    assert result.code == 0, result.stderr
    row = next(csv.DictReader(io.StringIO(result.stdout)))
    assert json.loads(row["allocations"]) == [
        {"line_id": "l1", "credit_id": 1, "kind": "purchased", "amount": "10.00"}
    ]
    result = cli("audit", "-f", "value", "-c", "checked", json_output=False)
    assert json.loads(result.stdout)["settlements"] == 1
    result = cli("credit", "show", "1", "-f", "shell", "-c", "entries", json_output=False)
    name, _, value = shlex.split(result.stdout)[0].partition("=")
    assert name == "entries"
    assert [e["type"] for e in json.loads(value)] == ["grant", "debit"]
    # JSON keeps the objects themselves.
    assert cli.ok("audit")["checked"]["settlements"] == 1


@pytest.mark.tampers_ledger
def test_audit_detects_a_tampered_balance(cli: Cli, ledger: Ledger) -> None:
    import sqlalchemy as sa

    from ovh_credit_plugin.ledger import schema
    from ovh_credit_plugin.ledger.database import create_engine

    order = cli.ok("order", "create", "p1", "20")
    cli.ok("order", "pay", order["id"])
    engine = create_engine(ledger.url)
    with engine.begin() as conn:
        # Balances that still add up, but no longer match the ledger entries.
        conn.execute(sa.update(schema.credits).values(available=Decimal(21), total=Decimal(21)))
    engine.dispose()
    result = cli("audit")
    assert result.code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert any("ledger entries sum to" in v for v in report["violations"])


@pytest.mark.tampers_ledger
@pytest.mark.parametrize(("order_now", "violation"), [
    ({"status": "cancelled", "credit_id": None, "paid_at": None},
     "credit {credit}: purchased, but no paid order {order} has it"),
    ({"currency": "USD"}, "order {order}: credit {credit} does not match"),
], ids=["credit of an order not paid", "credit in another currency"])
def test_audit_detects_purchased_credit_its_order_does_not_account_for(
        cli: Cli, ledger: Ledger, order_now: dict[str, Any], violation: str) -> None:
    import sqlalchemy as sa

    from ovh_credit_plugin.ledger import schema
    from ovh_credit_plugin.ledger.database import create_engine

    order = cli.ok("order", "create", "p1", "20")
    credit = cli.ok("order", "pay", order["id"])["credit_id"]
    engine = create_engine(ledger.url)
    with engine.begin() as conn:
        # Every credit's balances still match its entries: only the order was changed.
        conn.execute(sa.update(schema.orders).where(schema.orders.c.id == order["id"])
                     .values(**order_now))
    engine.dispose()
    result = cli("audit")
    assert result.code == 1
    assert json.loads(result.stdout)["violations"] == [
        violation.format(credit=credit, order=order["id"])]


def test_cli_with_a_host_config_finds_the_hosts_database(tmp_path: Any) -> None:
    """Run with cloudkitty.conf (no [cloud_credit] connection), ovh-credit uses the
    host's [database] connection, as the plugin inside CloudKitty does, and never a
    SQLite file of its own in the working directory."""
    import os

    from ovh_credit_plugin.cli.app import main

    url = f"sqlite:///{tmp_path}/cloudkitty.sqlite"
    conf = tmp_path / "cloudkitty.conf"
    conf.write_text(f"[database]\nconnection = {url}\n")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert main(["--config-file", str(conf), "db", "upgrade"]) == 0
    finally:
        os.chdir(cwd)
    assert (tmp_path / "cloudkitty.sqlite").exists()
    assert not (tmp_path / "ovh-credit-ledger.sqlite").exists()


def test_voucher_activate_again_prints_the_credit_and_never_locks_out(cli: Cli) -> None:
    """Five re-activations of one code used to lock the project out of vouchers for an hour."""
    at = ("--at", "2026-06-01T00:00:00Z")  # GPU-ONLY ends 2027-01-01
    first = cli.ok("voucher", "activate", "p1", "WELCOME-2026", *at)
    for _ in range(6):
        assert cli.ok("voucher", "activate", "p1", "welcome-2026", *at) == first
    other = cli.ok("voucher", "activate", "p1", "GPU-ONLY", *at)
    assert other["id"] != first["id"]


def test_order_show_and_the_credit_summary(cli: Cli) -> None:
    at = ("--at", "2026-02-01T00:00:00Z")
    paid = cli.ok("order", "create", "p1", "100", *at)
    cli.ok("order", "pay", paid["id"], *at)
    pending = cli.ok("order", "create", "p1", "30", *at)
    cli.ok("voucher", "activate", "p1", "WELCOME-2026", *at)
    cli.ok("settle", "-", stdin=json.dumps(invoice("I", ("compute", "60.00"))))
    shown = cli.ok("order", "show", pending["id"], "--at", "2026-02-02T00:00:00Z")
    assert (shown["id"], shown["status"], shown["amount"]) == (pending["id"], "pending", "30.00")
    # Past its lapse date, shown expired even before the expiry job runs.
    assert cli.ok("order", "show", pending["id"], "--at", "2026-03-01T00:00:00Z")["status"] == (
        "expired")
    assert "no order" in cli("order", "show", "no-such-order").stderr
    summary = cli.ok("credit", "list", "p1", "--summary", *at)
    assert summary == [{"currency": "EUR", "credits": 2, "total": "150.00", "used": "60.00",
                        "expired": "0.00", "voided": "0.00", "available": "90.00"}]
    table = cli("credit", "list", "p1", "--summary", "-f", "table", *at).stdout
    assert "150.00 EUR" in table
    # -c is checked against the summary's own columns.
    assert cli("credit", "list", "p1", "--summary", "-c", "kind").code != 0


def test_the_default_credit_table_fits_120_columns_and_long_shows_every_field(
    cli: Cli, ledger: Ledger
) -> None:
    # Descriptions as a catalog writes them, amounts at the purchase maximum.
    catalog = json.loads(ledger.vouchers.read_text())
    catalog["vouchers"].append({
        "code": "SPRING-GPU-2026", "amount": "2500.00", "currency": "EUR", "status": "active",
        "valid_from": None, "valid_until": "2026-12-31T23:00:00Z", "validity_days": None,
        "products": ["gpu", "instance.l4-90", "instance.h100-380"],
        "max_redemptions": None, "redemptions": 0,
        "description": "Spring 2026 campaign: 2 500 EUR of GPU credit for AI training on "
                       "L4 and H100 instances, valid until the end of the year",
    })
    ledger.vouchers.write_text(json.dumps(catalog))
    at = ("--at", "2026-02-01T00:00:00Z")
    cli.ok("voucher", "activate", "project-0f2d4c6e8a1b3d5f7e9a0c2b4d6f8e1a", "SPRING-GPU-2026",
           *at)
    order = cli.ok("order", "create", "project-0f2d4c6e8a1b3d5f7e9a0c2b4d6f8e1a", "100000",
                   *at)
    cli.ok("order", "pay", order["id"], *at)
    project = ("project-0f2d4c6e8a1b3d5f7e9a0c2b4d6f8e1a", *at)

    table = cli("credit", "list", *project, "-f", "table").stdout
    lines = table.splitlines()
    assert len(lines) == 6, table  # three rules, the header, two credits
    assert max(len(line) for line in lines) <= 120, table
    header = [cell.strip() for cell in lines[1].strip("|").split("|")]
    assert header == ["id", "kind", "available", "total", "valid_until", "status"]
    assert "2\u202f500.00 EUR" in table and "100\u202f000.00 EUR" in table
    assert "2026-12-31" in table and "T23:00" not in table  # the day, in the table only
    assert "Spring 2026" not in table

    long_table = cli("credit", "list", *project, "-f", "table", "--long").stdout
    long_header = [cell.strip() for cell in long_table.splitlines()[1].strip("|").split("|")]
    assert long_header == list(CREDIT_KEYS_IN_ORDER)
    assert "Spring 2026 campaign" in long_table and "2026-12-31T23:00:00Z" in long_table
    # -c picks any field, in the table as elsewhere.
    picked = cli("credit", "list", *project, "-f", "table", "-c", "id", "-c", "description")
    assert picked.code == 0 and "Spring 2026 campaign" in picked.stdout
    # The machine formats keep every field without --long.
    listed = cli.ok("credit", "list", *project)
    assert [set(c) for c in listed] == [CREDIT_KEYS, CREDIT_KEYS]
    assert listed[0]["valid_until"] == "2026-12-31T23:00:00Z"
    both = cli("credit", "list", *project, "--long", "--summary")
    assert both.code != 0 and both.stdout == ""
    assert both.stderr.count("\n") == 1 and "do not go together" in both.stderr
