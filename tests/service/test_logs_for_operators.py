"""The log lines an on-call engineer reads at 3 a.m., from the service and its hosts.

Each one says which project, voucher (masked), credit, order or invoice it is
about; a failure that leaves money unsettled or a voucher half-activated is a
warning that says what to do; a voucher code never appears in full, not even
inside a database error.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import sqlite3
import warnings
from decimal import Decimal
from typing import Any

import pytest
from oslo_config import cfg
from sqlalchemy import exc

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.allocation import Line
from ovh_credit_plugin.catalog.http import HttpVoucherCatalog
from ovh_credit_plugin.conf import register_opts
from ovh_credit_plugin.ledger.database import Database, create_engine
from ovh_credit_plugin.service import Charge, CreditService
from tests.service.test_expiry_warning_delivery import notifying  # noqa: F401
from tests.support.catalog_server import Fault, running
from tests.support.ledgers import T0, Ledger, invoice

with warnings.catch_warnings():  # oslo.service's about eventlet: not ours
    warnings.simplefilter("ignore")
    from oslo_messaging.notify import _impl_test

CODE = "WELCOME-2026"
MASKED = "WEL…6"
TOKEN = "catalog-token-0123456789"


@pytest.fixture
def backend() -> str:
    # What is logged does not depend on the database; the rules behind it are
    # tested on every backend elsewhere.
    return "sqlite"


def logged(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records
            if r.name.startswith("ovh_credit_plugin")]


# -- vouchers ------------------------------------------------------------------------------


def test_a_voucher_redeemed_but_not_granted_is_a_warning_saying_how_to_finish_it(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    """The catalog redeemed the code, the grant failed: the customer has no credit yet.

    The warning names the project and the masked code and says what finishes
    it; neither it nor the database's error (which hosts log with its
    traceback) quotes the code, although the failed INSERT carried it.
    """
    with sqlite3.connect(ledger.path) as conn:
        conn.execute("CREATE TRIGGER no_credit BEFORE INSERT ON cloud_credit_credits "
                     "BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    service = ledger.service(max_transaction_attempts=2)
    try:
        caplog.set_level(logging.INFO, logger="ovh_credit_plugin")
        caplog.clear()
        with pytest.raises(Exception) as raised:
            service.activate_voucher("p1", CODE, at=T0)
        assert CODE not in str(raised.value)
        lines = logged(caplog)
        assert ("WARNING", f"voucher {MASKED}: activation for project p1 left pending "
                "(IntegrityError: disk full): the catalog may have redeemed it; activating "
                "the same code for the same project again finishes it (ovh-credit voucher "
                "pending lists them)") in lines
        assert ("WARNING", "ledger transaction gave up after 2 attempt(s) (IntegrityError: "
                "disk full): [cloud_credit] max_transaction_attempts ran out") in lines
        assert not [text for _level, text in lines if CODE in text]
        assert [p["project_id"] for p in service.pending_activations()] == ["p1"]
        # Tried again while the ledger still fails (the pending activation resumed):
        # the same warning, the activation still pending.
        caplog.clear()
        with pytest.raises(Exception, match="disk full"):
            service.activate_voucher("p1", CODE, at=T0)
        assert [text for _level, text in logged(caplog) if "left pending" in text] == [
            f"voucher {MASKED}: activation for project p1 left pending (IntegrityError: disk "
            "full): the catalog may have redeemed it; activating the same code for the same "
            "project again finishes it (ovh-credit voucher pending lists them)"]
        with sqlite3.connect(ledger.path) as conn:
            conn.execute("DROP TRIGGER no_credit")
        # What the warning says to do finishes it.
        assert service.activate_voucher("p1", CODE, at=T0).total == Decimal("50.00")
        assert service.pending_activations() == []
    finally:
        service.close()


def test_a_throttled_project_is_told_in_the_log_with_when_it_may_try_again(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    service = ledger.service(voucher_max_failed_attempts=1, voucher_attempt_window=600)
    try:
        with pytest.raises(exceptions.VoucherRefused):
            service.activate_voucher("p1", "NO-SUCH-CODE", at=T0)
        caplog.clear()
        with pytest.raises(exceptions.TooManyAttempts):
            service.activate_voucher("p1", CODE, at=T0 + dt.timedelta(seconds=60))
    finally:
        service.close()
    # The project's vocabulary: attempts, as `ovh-credit voucher attempts` lists them.
    assert logged(caplog) == [
        ("WARNING", "voucher attempt throttled for project p1 (at least 1 failed or running "
                    "attempts in 600 s); allowed again in 540 s")]


def test_a_catalog_call_that_needed_retries_is_one_warning_with_its_attempts(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    """urllib3 says nothing above DEBUG of a retried 503: without this line a
    flaky catalog is invisible in a host's log until it fails outright."""
    vouchers = [{"code": CODE, "amount": "50.00", "currency": "EUR", "validity_days": 90}]
    with running(vouchers=vouchers, token=TOKEN) as server:
        server.inject(Fault("status", method="POST", status=503, times=2))
        conf = cfg.ConfigOpts()
        register_opts(conf)
        conf(args=[])
        for name, value in (("endpoint", server.url), ("auth_token", TOKEN), ("retries", 3)):
            conf.set_override(name, value, group="voucher_catalog")
        service = CreditService(database=Database(create_engine(ledger.url)),
                                catalog=HttpVoucherCatalog(conf=conf, backoff_factor=0.0))
        try:
            caplog.set_level(logging.INFO, logger="ovh_credit_plugin")
            caplog.clear()
            service.activate_voucher("p1", CODE)
        finally:
            service.close()
    warned = [text for level, text in logged(caplog) if level == "WARNING"]
    assert len(warned) == 1, warned
    assert warned[0].startswith(
        f"voucher catalog POST /v1/vouchers/{MASKED}/redemptions -> 201 in ")
    assert re.search(r" in [0-9.]+s, 3 attempt\(s\)(, request id \S+)?$", warned[0]), warned
    text = caplog.text
    assert CODE not in text and TOKEN not in text


# -- settlements ---------------------------------------------------------------------------


def test_an_invoice_credit_could_not_pay_for_its_currency_is_a_warning_once(
    service: CreditService, caplog: pytest.LogCaptureFixture
) -> None:
    service.activate_voucher("p1", CODE, at=T0)  # EUR credit
    later = T0 + dt.timedelta(days=1)
    dollars = invoice("p1", "INV-USD", "12.50", issued_at=later, currency="USD")
    caplog.set_level(logging.INFO, logger="ovh_credit_plugin")
    caplog.clear()
    assert service.settle_invoice(dollars).note == "currency_mismatch"
    assert service.settle_invoice(dollars).replayed  # a replay says nothing new
    assert logged(caplog) == [
        ("WARNING", "invoice INV-USD of project p1: no credit applied, 12.50 USD due in "
                    "full: the project's credit is in another currency (never converted)")]


def test_an_invoice_refused_in_a_run_is_a_warning_naming_it_and_a_replay_is_silent(
    service: CreditService, caplog: pytest.LogCaptureFixture
) -> None:
    later = T0 + dt.timedelta(days=1)
    first = invoice("p1", "INV-1", "10.00", issued_at=later)
    changed = invoice("p1", "INV-1", "11.00", issued_at=later)
    other = invoice("p2", "INV-2", "5.00", issued_at=later)
    list(service.settle_invoices([first]))
    caplog.set_level(logging.INFO, logger="ovh_credit_plugin")
    caplog.clear()
    results = list(service.settle_invoices([first, changed, other]))
    assert [type(r).__name__ for r in results] == ["Settlement", "InvoiceRefusal", "Settlement"]
    assert logged(caplog) == [
        ("WARNING", "invoice refused, nothing of it settled: invoice INV-1 of project p1 "
                    "appears twice with different content")]


# -- notifications -------------------------------------------------------------------------


@pytest.fixture
def failing_bus(notifying: CreditService,  # noqa: F811
                monkeypatch: pytest.MonkeyPatch) -> CreditService:
    """oslo.messaging's ``test`` driver failing every send (a broker down past ``retry``)."""
    def notify(self: Any, ctxt: Any, message: Any, priority: Any, retry: Any) -> None:
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(_impl_test.TestDriver, "notify", notify)
    return notifying


def test_an_expiry_warning_that_could_not_be_sent_names_its_credit_and_project(
    failing_bus: CreditService, caplog: pytest.LogCaptureFixture
) -> None:
    credit = failing_bus.activate_voucher("p1", CODE, at=T0)  # ends T0 + 90 days
    caplog.set_level(logging.WARNING, logger="ovh_credit_plugin")
    caplog.clear()
    summary = failing_bus.notify_expiring(at=T0 + dt.timedelta(days=85))
    assert summary.credits_unsent == 1
    unsent = [text for _level, text in logged(caplog) if "could not be sent" in text]
    assert unsent[0].startswith(
        f"notification cloud_credit.credit.expiring (credit {credit.id}, project p1) could "
        "not be sent: ")


def test_a_charge_of_a_host_logs_nothing_of_its_own(
    service: CreditService, caplog: pytest.LogCaptureFixture
) -> None:
    # A host's own charges (CloudKitty's) are logged by the host, once.
    service.activate_voucher("p1", CODE, at=T0)
    charge = Charge.of(key="host/p1/1", project_id="p1", invoice_id="1", currency="USD",
                       at=T0 + dt.timedelta(days=1), lines=[Line("l1", "compute", Decimal(3))])
    caplog.set_level(logging.INFO, logger="ovh_credit_plugin")
    caplog.clear()
    assert service.settle([charge])[0].note == "currency_mismatch"
    assert logged(caplog) == []


# -- orders, credits: logged once committed -------------------------------------------------


def first_write_rolled_back(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """The first attempt of the first write of work ``name`` runs its work, then fails
    as a deadlock would (after its statements, before COMMIT): it is rolled back and
    retried whole."""
    failed: list[int] = []
    original = Database._transaction

    def flaky(self: Database, work: Any, isolation_level: Any, *, read_only: bool) -> Any:
        if read_only or failed or getattr(work, "__name__", None) != name:
            return original(self, work, isolation_level, read_only=read_only)
        failed.append(1)

        def work_then_fail(conn: Any) -> Any:
            work(conn)
            raise exc.OperationalError("COMMIT", {}, sqlite3.OperationalError(
                "database is locked"))

        return original(self, work_then_fail, isolation_level, read_only=read_only)

    monkeypatch.setattr(Database, "_transaction", flaky)
    return failed


@pytest.mark.parametrize("operation", [
    "created for project", " paid: credit", " voided (", " redeemed ("])
def test_a_change_is_logged_once_committed_never_by_an_attempt_rolled_back(
    service: CreditService, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    operation: str,
) -> None:
    """A line logged inside the transaction said "paid: credit 1 granted" for an
    attempt that was then rolled back, and again for the retry: two grants to the
    engineer's eyes, or one that never committed when the retries ran out."""
    order = service.create_order("p1", "100", at=T0)
    credit_id = service.pay_order(order.id, at=T0).credit_id
    other = service.create_order("p1", "20", at=T0)
    steps = {  # what is logged: the operation, and the work of its write
        "created for project": (lambda: service.create_order("p1", "30", at=T0), "work"),
        " paid: credit": (lambda: service.pay_order(other.id, at=T0), "work"),
        " voided (": (lambda: service.void_credit(credit_id, reason="fraud", at=T0), "work"),
        " redeemed (": (lambda: service.activate_voucher("p1", CODE, at=T0), "grant"),
    }
    step, work = steps[operation]
    failed = first_write_rolled_back(monkeypatch, work)
    caplog.set_level(logging.INFO, logger="ovh_credit_plugin")
    caplog.clear()
    step()
    assert failed == [1]
    said = [text for _level, text in logged(caplog) if operation in text]
    assert len(said) == 1, logged(caplog)


def test_what_a_change_logs_names_its_project_and_amount(
    service: CreditService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ovh_credit_plugin")
    caplog.clear()
    order = service.create_order("p1", "100", at=T0)
    credit_id = service.pay_order(order.id, at=T0).credit_id
    service.pay_order(order.id, at=T0)  # the payment system again: nothing new happened
    service.void_credit(credit_id, reason="charge-back", at=T0)
    service.void_credit(credit_id, reason="charge-back", at=T0)  # the operator again
    assert logged(caplog) == [
        ("INFO", f"order {order.id} created for project p1: 100.00 EUR"),
        ("INFO", f"order {order.id} of project p1 paid: credit {credit_id} granted "
                 "(100.00 EUR)"),
        ("WARNING", f"credit {credit_id} of project p1 voided (charge-back): 100.00 EUR lost"),
    ]


@pytest.fixture
def lazy_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    # The REST API's mode, where payment confirmations arrive: a refusal logged
    # quotes its amounts in the machine form (100.00 EUR), whatever the reader's.
    import oslo_i18n

    monkeypatch.setattr(oslo_i18n._lazy, "USE_LAZY", True)


@pytest.mark.usefixtures("lazy_messages")
def test_a_payment_confirmation_refused_is_a_warning_saying_no_credit_exists_for_it(
    service: CreditService, caplog: pytest.LogCaptureFixture
) -> None:
    order = service.create_order("p1", "100", at=T0)
    cancelled = service.create_order("p1", "50", at=T0)
    service.cancel_order(cancelled.id, at=T0)
    caplog.set_level(logging.INFO, logger="ovh_credit_plugin")
    caplog.clear()
    with pytest.raises(exceptions.InvalidAmount):
        service.pay_order(order.id, amount="90", currency="EUR", at=T0)
    with pytest.raises(exceptions.InvalidState):
        service.pay_order(cancelled.id, at=T0)
    with pytest.raises(exceptions.OrderNotFound):
        service.pay_order("no-such-order", at=T0)
    hint = "; reconcile it with the payment provider (refund, or a new order)"
    assert logged(caplog) == [
        ("WARNING", f"payment confirmation of order {order.id} refused, no credit granted: "
                    f"payment of 90 does not match order {order.id} (100.00 EUR excluding "
                    f"tax){hint}"),
        ("WARNING", f"payment confirmation of order {cancelled.id} refused, no credit "
                    f"granted: order {cancelled.id} is cancelled{hint}"),
        ("WARNING", "payment confirmation of order no-such-order refused, no credit "
                    f"granted: no order 'no-such-order'{hint}"),
    ]
