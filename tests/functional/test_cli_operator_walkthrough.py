"""``ovh-credit`` as the docs' walkthrough met it: what each error line tells the operator.

- ``notify-expiring`` over a dead transport says on its one line what failed
  (no log is written without ``--log-file`` or ``-v``), its password hidden;
- ``--at`` at the ledger's last instant is refused in words that match the check;
- a bad option value is a usage error (exit status 2), as a missing option is;
- ``settle`` refusing every invoice does not speak of "the others";
- counts of one read in the singular;
- the "schema newer than this code" error names the database, as the "older" one does;
- a voucher activation that failed after its redemption was asked for says it is pending,
  and how to finish it; not when the project cannot take what was redeemed (no rerun
  finishes that).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from ovh_credit_plugin.ledger.engine import shown
from tests.support import rabbitmq
from tests.support.catalog_server import CatalogServer, Fault, running
from tests.support.cli import Cli
from tests.support.ledgers import Ledger

# Argument parsing and error lines: the backend does not matter.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

INVOICE = {
    "id": "INV-1", "project_id": "p1", "currency": "EUR", "issued_at": "2026-03-01T00:00:00Z",
    "lines": [{"id": "l1", "product": "compute", "amount": "4.00"}],
}


def _dead_transport(ledger: Ledger, password: str) -> None:
    """Notifications over a RabbitMQ URL nothing listens on, failing within seconds."""
    closed = rabbitmq._free_ports(1)[0]
    ledger.config.write_text(
        ledger.config.read_text()
        + "[oslo_messaging_notifications]\ndriver = messagingv2\n"
        f"transport_url = rabbit://guest:{password}@127.0.0.1:{closed}/\nretry = 1\n"
        "[oslo_messaging_rabbit]\nrabbit_retry_interval = 1\n"
        "rabbit_retry_backoff = 1\nrabbit_interval_max = 1\n")


def test_a_dead_transport_is_named_on_the_error_line(cli: Cli, ledger: Ledger) -> None:
    """Was "(the notification transport failed, see the log)" with no log anywhere."""
    order = cli.ok("order", "create", "p1", "100", "--at", "2026-01-31T10:00:00Z")
    cli.ok("order", "pay", order["id"], "--at", "2026-01-31T10:00:00Z")
    _dead_transport(ledger, "s3cret-Pa55")

    down = cli("notify-expiring", "--at", "2027-02-23T10:00:00Z")
    assert down.code == 1, (down.stdout, down.stderr)
    (line,) = down.stderr.splitlines()
    # Its count in the singular, what failed, and no log it cannot point to.
    assert line.startswith("ovh-credit: 1 expiry warning could not be sent "), line
    assert "see the log" not in line
    assert "transport failed: " in line, line
    assert "s3cret-Pa55" not in line
    assert "Payload" not in line and "credit_id" not in line  # not the event itself
    assert down.json()["credits_notified"] == 0


def test_an_at_on_the_ledgers_last_instant_is_refused_in_words_that_match(cli: Cli) -> None:
    """Was "invalid time 9000-01-01T00:00:00Z: after 9000-01-01T00:00:00Z"."""
    result = cli("expire", "--at", "9000-01-01T00:00:00Z")
    assert result.code == 2
    (line,) = result.stderr.splitlines()
    assert "argument --at:" in line
    assert line.endswith(
        "invalid time 9000-01-01T00:00:00Z: at or after 9000-01-01T00:00:00Z"), line


@pytest.mark.parametrize(("argv", "fragment"), [
    (("settle", "-", "--batch-size", "0"), "argument --batch-size: "),
    (("settle", "-", "--batch-size", "many"), "argument --batch-size: "),
    (("voucher", "unblock", "p1", "--reason", ""), "argument --reason: "),
    (("voucher", "unblock", "p1", "--reason", "  "), "argument --reason: "),
    (("credit", "void", "1", "--reason", ""), "argument --reason: "),
], ids=" ".join)
def test_a_bad_option_value_is_a_usage_error(cli: Cli, argv: tuple[str, ...],
                                             fragment: str) -> None:
    """Was exit status 1 (--batch-size 0, an empty --reason) where a missing --reason or
    '--lock-timeout 0' is 2."""
    result = cli(*argv, stdin=json.dumps(INVOICE))
    assert result.code == 2, (result.stdout, result.stderr)
    (line,) = result.stderr.splitlines()
    assert fragment in line, line
    assert result.stdout == ""
    assert cli("settlement", "show", "INV-1", "--project", "p1").code == 1  # nothing settled
    assert cli.ok("voucher", "attempts", "p1", "--all") == []


def test_settle_refusing_every_invoice_does_not_speak_of_the_others(
        cli: Cli, tmp_path: pytest.TempPathFactory) -> None:
    result = cli("settle", "-", stdin="[1,2]")
    assert result.code == 3
    assert result.stderr.splitlines() == [
        "ovh-credit: all 2 invoices refused, none settled (each refusal's error is in the "
        "output)"]
    one = cli("settle", "-", stdin="[1]")
    assert one.stderr.splitlines() == [
        "ovh-credit: 1 invoice refused, none settled (its error is in the output)"]


def test_settle_refusing_one_of_two_speaks_in_the_singular(cli: Cli) -> None:
    cli.ok("order", "pay", cli.ok("order", "create", "p1", "10", "--at",
                                  "2026-02-01T00:00:00Z")["id"], "--at", "2026-02-01T00:00:00Z")
    result = cli("settle", "-", stdin=json.dumps([INVOICE, 2]))
    assert result.code == 3
    assert result.stderr.splitlines() == [
        "ovh-credit: 1 of 2 invoices refused, the rest settled (its error is in the output)"]


def test_unblocking_a_project_with_one_attempt_speaks_in_the_singular(cli: Cli) -> None:
    assert cli("voucher", "activate", "p1", "NOPE-0000").code == 1
    result = cli("voucher", "unblock", "p1", "--reason", "support ticket 42")
    assert result.code == 0
    assert result.stderr.splitlines() == [
        "ovh-credit: project p1 is not blocked (1 failed or running voucher attempt "
        "counted, limit 5): nothing done"], result.stderr


def test_a_schema_newer_than_this_code_names_the_database(
        cli: Cli, ledger: Ledger) -> None:
    """Was "the ledger schema is at revision ..., newer than this code knows" alone."""
    engine = sa.create_engine(ledger.url)
    version = sa.text("UPDATE cloud_credit_alembic_version SET version_num = :revision")
    try:
        with engine.begin() as conn:
            head = conn.execute(sa.text(
                "SELECT version_num FROM cloud_credit_alembic_version")).scalar_one()
            conn.execute(version, {"revision": "ffffffffffff"})
        where = shown(ledger.url)
        for argv in (("credit", "list", "p1"), ("db", "upgrade")):
            result = cli(*argv)
            assert result.code == 1, result.stderr
            (line,) = result.stderr.splitlines()
            assert "newer than this code" in line, line
            assert where in line, line
    finally:
        with engine.begin() as conn:  # the ledger fixture audits the ledger after the test
            conn.execute(version, {"revision": head})
        engine.dispose()


# -- a voucher left pending ------------------------------------------------------------

TOKEN = "catalog-token-0123456789"
CODE = "WELCOME-2026"


@pytest.fixture
def catalog(ledger: Ledger) -> Iterator[CatalogServer]:
    vouchers = [{"code": CODE, "amount": "50.00", "currency": "EUR", "validity_days": 90}]
    with running(vouchers=vouchers, token=TOKEN) as server:
        ledger.config.write_text(
            f"[cloud_credit]\nconnection = {ledger.url}\n"
            f"[voucher_catalog]\ndriver = http\nendpoint = {server.url}\n"
            f"auth_token = {TOKEN}\ntimeout = 2\n")
        yield server


@pytest.mark.parametrize("fault", [
    Fault("status", method="POST", status=500, times=10),
    Fault("stall", method="POST", seconds=4, times=10),
], ids=["500", "timeout"])
def test_an_activation_failed_after_its_post_says_it_is_pending(
        cli: Cli, catalog: CatalogServer, fault: Fault) -> None:
    catalog.inject(fault)
    failed = cli("voucher", "activate", "p1", CODE)
    assert failed.code == 1
    (line,) = failed.stderr.splitlines()
    assert "unavailable" in line, line  # the catalog's error, then what it left
    assert "the activation is left pending" in line, line
    assert "running 'ovh-credit voucher activate p1 CODE' again" in line, line
    assert CODE not in line  # masked, as 'voucher pending' and the logs show codes
    assert [row["project_id"] for row in cli.ok("voucher", "pending")] == ["p1"]

    catalog.clear_faults()
    credit = cli.ok("voucher", "activate", "p1", CODE)
    assert credit["total"] == "50.00"
    assert cli.ok("voucher", "pending") == []


def test_an_activation_refused_before_its_post_says_nothing_of_pending(
        cli: Cli, catalog: CatalogServer) -> None:
    catalog.inject(Fault("status", method="GET", status=500, times=10))
    failed = cli("voucher", "activate", "p1", CODE)
    assert failed.code == 1
    (line,) = failed.stderr.splitlines()
    assert "pending" not in line, line
    assert cli.ok("voucher", "pending") == []


def test_the_expiry_summary_logged_counts_one_project_in_the_singular(
        cli: Cli, ledger: Ledger, tmp_path: pytest.TempPathFactory) -> None:
    """Was "1 projects forecast" in the log a cron job's --log-file gets."""
    order = cli.ok("order", "create", "p1", "100", "--at", "2026-01-31T10:00:00Z")
    cli.ok("order", "pay", order["id"], "--at", "2026-01-31T10:00:00Z")
    ledger.config.write_text(ledger.config.read_text()
                             + "[oslo_messaging_notifications]\ndriver = log\n")
    log = ledger.config.parent / "notify.log"
    cli.ok("--log-file", str(log), "notify-expiring", "--at", "2027-02-23T10:00:00Z")
    (summary,) = [line for line in log.read_text().splitlines()
                  if "expiry warnings at" in line]
    assert "1 project forecast, 1 sent (7 days: 1)" in summary, summary


def test_a_redemption_the_project_cannot_take_is_not_told_to_be_finished_by_a_rerun(
        cli: Cli, catalog: CatalogServer) -> None:
    """The service's words ("was redeemed in USD ... until support resolves it") stand
    alone: "the catalog may have redeemed" and "running it again finishes it" are false
    while the project holds EUR (docs/voucher-catalog.md)."""
    cli.ok("order", "pay", cli.ok("order", "create", "p1", "10")["id"])  # p1 holds EUR
    catalog.inject(Fault("status", method="POST", status=500, times=10))
    assert cli("voucher", "activate", "p1", CODE).code == 1  # pending, marked as sent
    catalog.clear_faults()
    catalog.vouchers[CODE]["currency"] = "USD"  # edited at the catalog meanwhile

    failed = cli("voucher", "activate", "p1", CODE)
    assert failed.code == 1
    line = failed.stderr.splitlines()[-1]
    assert "was redeemed in USD, but project p1 bills in EUR" in line, line
    assert "until support resolves it" in line, line
    assert "may have redeemed" not in line, line
    assert "finishes it" not in line, line
    assert [row["project_id"] for row in cli.ok("voucher", "pending")] == ["p1"]
