"""Notifications (oslo.messaging): each event with its payload, sent after commit only.

The service runs with oslo.messaging's ``test`` notification driver (it keeps
what it is handed in ``_impl_test.NOTIFICATIONS``), configured as an operator
does, in the ``[oslo_messaging_notifications]`` section of the config file;
the ``log`` driver is read back from the log. Failures are injected with the
retry tests' seam (a real driver exception raised from a SQLAlchemy hook on a
statement of the transaction).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import socket
import subprocess
import sys
import textwrap
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.ledger import schema
from ovh_credit_plugin.service import CreditService, events
from tests.functional.test_retries import Recorder, fatal_errors, retryable_errors
from tests.support.ledgers import BACKENDS, T0, Ledger

with warnings.catch_warnings():  # oslo.service's about eventlet: not ours
    warnings.simplefilter("ignore")
    from oslo_messaging.notify import _impl_test

UTC = dt.timezone.utc
HOST = socket.gethostname()
PAID_UNTIL = dt.datetime(2027, 2, 28, 10, 0, tzinfo=UTC)  # T0 + 13 months, clamped
on_every_backend = pytest.mark.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def notifications_section(ledger: Ledger, driver: str, extra: str = "") -> None:
    with ledger.config.open("a") as config:
        config.write(f"[oslo_messaging_notifications]\ndriver = {driver}\n{extra}")


Handed = list[tuple[str, str, dict[str, Any]]]
Sent = Callable[[], Handed]


@pytest.fixture
def sent() -> Iterator[Sent]:
    """What the ``test`` driver was handed so far: (priority, event type, payload)."""
    _impl_test.reset()

    def handed() -> Handed:
        return [(priority, message["event_type"], message["payload"])
                for _ctxt, message, priority, _retry in _impl_test.NOTIFICATIONS]

    yield handed
    _impl_test.reset()


@pytest.fixture
def notifying(ledger: Ledger, sent: Sent) -> Iterator[CreditService]:
    notifications_section(ledger, "test")
    service = ledger.service()
    yield service
    service.close()


def types(handed: Handed) -> list[str]:
    return [event_type for _priority, event_type, _payload in handed]


def paid_credit(service: CreditService, project: str = "p1", amount: str = "100") -> int:
    order = service.create_order(project, amount, at=T0)
    credit_id = service.pay_order(order.id, at=T0).credit_id
    assert credit_id is not None
    return credit_id


# -- each event and its payload ------------------------------------------------------


def test_order_created(notifying: CreditService, sent: Sent) -> None:
    order = notifying.create_order("p1", "100", at=T0)
    assert sent() == [("INFO", "cloud_credit.order.created", {
        "order_id": order.id,
        "project_id": "p1",
        "amount": "100.00",
        "currency": "EUR",
        "status": "pending",
        "created_at": "2026-01-31T10:00:00Z",
        "expires_at": "2026-02-07T10:00:00Z",
        "payment_url": f"https://pay.example/orders/{order.id}",
    })]
    message = _impl_test.NOTIFICATIONS[0][1]
    assert message["publisher_id"] == f"cloud_credit.{HOST}"
    assert message["priority"] == "INFO"


def test_an_idempotent_order_request_is_announced_once(
    notifying: CreditService, sent: Sent
) -> None:
    first, created = notifying.create_order_once("p1", "20", idempotency_key="k1", at=T0)
    again, created_again = notifying.create_order_once("p1", "20.00", idempotency_key="k1",
                                                       at=T0)
    assert (created, created_again, again.id) == (True, False, first.id)
    assert types(sent()) == ["cloud_credit.order.created"]


def test_payment_sends_order_paid_then_credit_granted_once(
    notifying: CreditService, sent: Sent
) -> None:
    order = notifying.create_order("p1", "100", at=T0)
    paid_at = T0 + dt.timedelta(hours=2)
    paid = notifying.pay_order(order.id, at=paid_at)
    notifying.pay_order(order.id, at=paid_at + dt.timedelta(hours=1))  # a webhook replay
    assert sent()[1:] == [
        ("INFO", "cloud_credit.order.paid", {
            "order_id": order.id, "project_id": "p1", "amount": "100.00", "currency": "EUR",
            "paid_at": "2026-01-31T12:00:00Z", "credit_id": paid.credit_id,
        }),
        ("INFO", "cloud_credit.credit.granted", {
            "credit_id": paid.credit_id, "project_id": "p1", "kind": "purchased",
            "amount": "100.00", "available": "100.00", "currency": "EUR",
            "valid_from": "2026-01-31T12:00:00Z", "valid_until": "2027-02-28T12:00:00Z",
            "products": [], "order_id": order.id, "voucher": None,
            "granted_at": "2026-01-31T12:00:00Z",
        }),
    ]


def test_voucher_activation_sends_credit_granted_with_the_code_masked(
    notifying: CreditService, sent: Sent
) -> None:
    credit = notifying.activate_voucher("p1", "welcome-2026", at=T0)
    notifying.activate_voucher("p1", "WELCOME-2026", at=T0)  # already activated: no event
    assert sent() == [("INFO", "cloud_credit.credit.granted", {
        "credit_id": credit.id, "project_id": "p1", "kind": "voucher", "amount": "50.00",
        "available": "50.00", "currency": "EUR", "valid_from": "2026-01-31T10:00:00Z",
        "valid_until": "2026-05-01T10:00:00Z", "products": [], "order_id": None,
        "voucher": "WEL…6", "granted_at": "2026-01-31T10:00:00Z",
    })]
    assert "WELCOME-2026" not in json.dumps(sent()[0])


def test_void_sends_credit_voided_with_its_reason(notifying: CreditService, sent: Sent) -> None:
    credit_id = paid_credit(notifying)
    at = T0 + dt.timedelta(days=3)
    notifying.void_credit(credit_id, reason="charge-back", at=at)
    notifying.void_credit(credit_id, reason="charge-back", at=at)  # the same void again
    assert sent()[3:] == [("INFO", "cloud_credit.credit.voided", {
        "credit_id": credit_id, "project_id": "p1", "kind": "purchased", "amount": "100.00",
        "currency": "EUR", "reason": "charge-back", "voided_at": "2026-02-03T10:00:00Z",
    })]


def test_a_void_past_the_credits_end_records_its_loss_as_expiry_first(
    notifying: CreditService, sent: Sent
) -> None:
    # The expiry job has not run yet: what the ended credit holds is lost to expiry,
    # as the job would record it, and the void loses nothing more. The figures do not
    # depend on which of the two ran first.
    credit_id = paid_credit(notifying, amount="70")
    after = PAID_UNTIL + dt.timedelta(days=1)
    voided = notifying.void_credit(credit_id, reason="charge-back", at=after)
    assert (voided.status, voided.expired, voided.voided, voided.available) == (
        "voided", Decimal("70"), Decimal("0"), Decimal("0"))
    assert sent()[3:] == [
        ("INFO", "cloud_credit.credit.expired", {
            "credit_id": credit_id, "project_id": "p1", "kind": "purchased", "amount": "70.00",
            "currency": "EUR", "valid_until": "2027-02-28T10:00:00Z",
            "expired_at": "2027-03-01T10:00:00Z"}),
        ("INFO", "cloud_credit.credit.voided", {
            "credit_id": credit_id, "project_id": "p1", "kind": "purchased", "amount": "0.00",
            "currency": "EUR", "reason": "charge-back", "voided_at": "2027-03-01T10:00:00Z"}),
    ]
    assert notifying.expire(at=after).credits_expired == 0  # nothing left for the job
    assert notifying.audit().ok


def test_expiry_sends_credit_expired_with_the_amount_lost(
    notifying: CreditService, sent: Sent
) -> None:
    credit_id = paid_credit(notifying, amount="12.34")
    after = PAID_UNTIL + dt.timedelta(days=1)
    notifying.expire(at=after)
    notifying.expire(at=after + dt.timedelta(days=1))  # nothing left to expire
    assert sent()[3:] == [("INFO", "cloud_credit.credit.expired", {
        "credit_id": credit_id, "project_id": "p1", "kind": "purchased", "amount": "12.34",
        "currency": "EUR", "valid_until": "2027-02-28T10:00:00Z",
        "expired_at": "2027-03-01T10:00:00Z",
    })]


def test_sub_cent_amounts_are_exact_decimal_strings(notifying: CreditService, sent: Sent) -> None:
    # A debit of rated usage leaves a sub-cent balance: the expiry says it to the last digit.
    credit_id = paid_credit(notifying)
    notifying.settle_invoice(_invoice("p1", "0.000123"))
    notifying.expire(at=PAID_UNTIL + dt.timedelta(days=1))
    payload = sent()[-1][2]
    assert (sent()[-1][1], payload["amount"]) == ("cloud_credit.credit.expired", "99.999877")
    assert Decimal(payload["amount"]) + Decimal("0.000123") == 100
    assert credit_id == payload["credit_id"]


def _invoice(project: str, amount: str, *, invoice_id: str = "INV-1",
             issued_at: dt.datetime = dt.datetime(2026, 3, 1, tzinfo=UTC)) -> Any:
    from ovh_credit_plugin import contracts, models

    return models.Invoice.model_validate({
        "id": invoice_id, "project_id": project, "currency": "EUR",
        "issued_at": contracts.isoformat(issued_at),
        "lines": [{"id": "1", "product": "compute", "amount": amount}],
    })


# -- after commit only ------------------------------------------------------------------


def test_a_refused_operation_sends_nothing(notifying: CreditService, sent: Sent) -> None:
    order = notifying.create_order("p1", "100", at=T0)
    with pytest.raises(exceptions.InvalidAmount):
        notifying.pay_order(order.id, amount="99", at=T0)
    with pytest.raises(exceptions.InvalidAmount):
        notifying.create_order("p1", "1", at=T0)  # below the minimum
    with pytest.raises(exceptions.VoucherRefused):
        notifying.activate_voucher("p1", "REVOKED-1", at=T0)
    assert types(sent()) == ["cloud_credit.order.created"]


@contextmanager
def failing_commits(
    service: CreditService, pattern: str, make_error: Callable[[], BaseException], *, times: int
) -> Iterator[dict[str, int]]:
    """COMMIT of the first ``times`` transactions that ran a statement matching ``pattern``
    fails with ``make_error()``: everything was done and every event built, then the
    transaction rolls back."""
    engine = service.database.engine
    recorder = Recorder(engine)
    regex = re.compile(pattern, re.IGNORECASE)
    state = {"failed": 0}

    def commit(conn: Any) -> None:
        ran = recorder.transactions[-1] if recorder.transactions else []
        if state["failed"] < times and any(regex.search(s) for s in ran):
            state["failed"] += 1
            raise sa.exc.OperationalError("COMMIT", None, make_error())  # type: ignore[arg-type]

    sa.event.listen(engine, "commit", commit)
    try:
        yield state
    finally:
        sa.event.remove(engine, "commit", commit)
        recorder.close()


OPERATIONS = {
    # name: (a statement of its transaction, the events it sends)
    "order": (r"^INSERT INTO cloud_credit_orders", ["cloud_credit.order.created"]),
    "payment": (r"^UPDATE cloud_credit_orders SET status",
                ["cloud_credit.order.paid", "cloud_credit.credit.granted"]),
    "voucher": (r"^INSERT INTO cloud_credit_credits", ["cloud_credit.credit.granted"]),
    "void": (r"^INSERT INTO cloud_credit_ledger_entries", ["cloud_credit.credit.voided"]),
    "expiry": (r"^INSERT INTO cloud_credit_ledger_entries", ["cloud_credit.credit.expired"]),
    "warning": (r"^INSERT INTO cloud_credit_expiry_notices", ["cloud_credit.credit.expiring"]),
}


def run_operation(service: CreditService, name: str) -> Callable[[], Any]:
    """Set up what operation ``name`` needs (committed, events sent), and return it."""
    credit_id = paid_credit(service)
    order = service.create_order("p1", "10", at=T0)
    return {
        "order": lambda: service.create_order("p1", "30", at=T0),
        "payment": lambda: service.pay_order(order.id, at=T0),
        "voucher": lambda: service.activate_voucher("p1", "WELCOME-2026", at=T0),
        "void": lambda: service.void_credit(credit_id, reason="fraud", at=T0),
        "expiry": lambda: service.expire(at=PAID_UNTIL + dt.timedelta(days=1)),
        "warning": lambda: service.notify_expiring(at=PAID_UNTIL - dt.timedelta(days=3)),
    }[name]


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_transaction_whose_commit_fails_sends_nothing(
    notifying: CreditService, ledger: Ledger, sent: Sent, operation: str
) -> None:
    run = run_operation(notifying, operation)
    before, checksum = len(sent()), ledger.checksum()
    entries = _count(notifying, schema.ledger_entries)
    make_error = next(iter(fatal_errors(ledger.backend).values()))
    with (failing_commits(notifying, OPERATIONS[operation][0], make_error, times=1) as state,
          pytest.raises(sa.exc.DBAPIError)):
        run()
    assert state["failed"] == 1
    if operation in ("voucher", "expiry"):
        # Their earlier transactions (a voucher's reservation and intent, the
        # lapse of unpaid orders) committed; the one that failed did not.
        assert _count(notifying, schema.ledger_entries) == entries
    else:
        assert ledger.checksum() == checksum  # rolled back
    assert len(sent()) == before
    # Run again, it commits and sends its events.
    run()
    assert types(sent()[before:]) == OPERATIONS[operation][1]


@on_every_backend
@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_retried_transaction_sends_once(
    notifying: CreditService, ledger: Ledger, sent: Sent, operation: str
) -> None:
    run = run_operation(notifying, operation)
    before = len(sent())
    make_error = next(iter(retryable_errors(ledger.backend).values()))
    # Two attempts build their events and fail at COMMIT; the third commits.
    with failing_commits(notifying, OPERATIONS[operation][0], make_error, times=2) as state:
        run()
    assert state["failed"] == 2
    assert types(sent()[before:]) == OPERATIONS[operation][1]


def test_a_refused_write_sends_nothing_either(
    notifying: CreditService, ledger: Ledger, sent: Sent
) -> None:
    # A driver error on a statement (not retryable) stops the payment mid-way.
    order = notifying.create_order("p1", "100", at=T0)
    recorder = Recorder(notifying.database.engine)
    try:
        recorder.fail(r"^UPDATE cloud_credit_orders SET status",
                      next(iter(fatal_errors(ledger.backend).values())), times=1)
        with pytest.raises(sa.exc.DBAPIError):
            notifying.pay_order(order.id, at=T0)
    finally:
        recorder.close()
    assert types(sent()) == ["cloud_credit.order.created"]


# -- failures to send ------------------------------------------------------------------


def test_a_driver_that_fails_never_fails_the_payment(
    notifying: CreditService, sent: Sent, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*args: Any) -> None:
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(_impl_test.TestDriver, "notify", broken)
    order = notifying.create_order("p1", "100", at=T0)
    paid = notifying.pay_order(order.id, at=T0)
    assert paid.status == "paid"
    assert [c.available for c in notifying.list_credits("p1", at=T0)] == [Decimal(100)]
    assert "broker unreachable" in caplog.text


def test_a_transport_that_cannot_be_built_never_fails_the_operation(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    notifications_section(ledger, "messagingv2", "transport_url = nosuchdriver://x/\n")
    service = ledger.service()
    try:
        with caplog.at_level(logging.ERROR, logger="ovh_credit_plugin"):
            credit_id = paid_credit(service)
            service.void_credit(credit_id, reason="fraud", at=T0)
        assert service.show_credit(credit_id)[0].status == "voided"
    finally:
        service.close()
    failures = [r.getMessage().split(" could not be sent")[0] for r in caplog.records
                if r.name == "ovh_credit_plugin.service.events"]
    [order] = {r.split("order ")[1].split(",")[0] for r in failures[:2]}
    assert failures == [
        f"notifications cloud_credit.order.created (order {order}, project p1)",
        f"notifications cloud_credit.order.paid (order {order}, credit {credit_id}, project p1), "
        f"cloud_credit.credit.granted (order {order}, credit {credit_id}, project p1)",
        f"notifications cloud_credit.credit.voided (credit {credit_id}, project p1)",
    ]
    # One line each, without a traceback: every operation logs one while the
    # transport cannot be built.
    assert not [r for r in caplog.records if r.exc_info]


# -- the log driver ----------------------------------------------------------------------


def test_the_log_driver_writes_each_notification_to_the_log(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    notifications_section(ledger, "log")
    service = ledger.service()
    try:
        with caplog.at_level(logging.INFO, logger="oslo.messaging.notification"):
            credit_id = paid_credit(service)
    finally:
        service.close()
    logged = [(r.name, r.levelname, json.loads(r.getMessage())) for r in caplog.records
              if r.name.startswith("oslo.messaging.notification.")]
    assert [(name, level) for name, level, _ in logged] == [
        ("oslo.messaging.notification.cloud_credit.order.created", "INFO"),
        ("oslo.messaging.notification.cloud_credit.order.paid", "INFO"),
        ("oslo.messaging.notification.cloud_credit.credit.granted", "INFO"),
    ]
    granted = logged[-1][2]
    assert granted["publisher_id"] == f"cloud_credit.{HOST}"
    assert granted["payload"]["credit_id"] == credit_id
    assert granted["payload"]["amount"] == "100.00"


# -- the expiry warnings ------------------------------------------------------------------


def warnings_sent(handed: Handed) -> list[tuple[int, int, str]]:
    """(credit_id, threshold_days, expires_unused) of each credit.expiring sent."""
    return [(payload["credit_id"], payload["threshold_days"], payload["expires_unused"])
            for _priority, event_type, payload in handed
            if event_type == "cloud_credit.credit.expiring"]


def settle_daily(service: CreditService, project: str, amount: str, *, before: dt.datetime,
                 days: int = 30) -> None:
    """One invoice of ``amount`` a day, at noon, on each of the ``days`` days before
    ``before``: a burn rate of ``amount`` a day over the default 30-day window."""
    day = dt.timedelta(days=1)
    for k in range(1, days + 1):
        service.settle_invoice(_invoice(project, amount, invoice_id=f"{project}-D{k}",
                                        issued_at=before - k * day + day / 2))


@on_every_backend
def test_notify_expiring_warns_once_per_credit_and_threshold(
    notifying: CreditService, sent: Sent
) -> None:
    credit_id = paid_credit(notifying)  # ends 2027-02-28T10:00Z; no usage: all at risk
    summary = notifying.notify_expiring(at=PAID_UNTIL - dt.timedelta(days=31))
    assert (summary.projects_forecast, summary.credits_notified, warnings_sent(sent())) == (
        0, 0, [])

    at = PAID_UNTIL - dt.timedelta(days=20)
    summary = notifying.notify_expiring(at=at)
    assert (summary.credits_notified, summary.by_threshold) == (1, {30: 1})
    assert sent()[-1] == ("WARN", "cloud_credit.credit.expiring", {
        "credit_id": credit_id, "project_id": "p1", "kind": "purchased",
        "expires_unused": "100.00", "available": "100.00", "currency": "EUR",
        "valid_until": "2027-02-28T10:00:00Z", "days_left": 20, "threshold_days": 30,
        "notified_at": "2027-02-08T10:00:00Z",
    })
    # Runs again: one warning per threshold, whatever the forecast says each day.
    assert notifying.notify_expiring(at=at + dt.timedelta(hours=1)).credits_notified == 0
    notifying.notify_expiring(at=PAID_UNTIL - dt.timedelta(days=6, hours=12))
    notifying.notify_expiring(at=PAID_UNTIL - dt.timedelta(days=2))
    assert warnings_sent(sent()) == [(credit_id, 30, "100.00"), (credit_id, 7, "100.00")]
    assert sent()[-1][2]["days_left"] == 7  # 6 days and 12 hours, rounded up as the forecast
    assert _notices(notifying) == [(credit_id, 7), (credit_id, 30)]
    # Warned for every threshold: no longer a candidate, not even forecast.
    assert notifying.notify_expiring(at=PAID_UNTIL - dt.timedelta(days=1)).projects_forecast == 0


@on_every_backend
def test_the_warning_is_the_forecasts_money_at_risk_at_the_projects_usage(
    notifying: CreditService, sent: Sent
) -> None:
    at = PAID_UNTIL - dt.timedelta(days=20)
    # p1: 160 bought, 2.00 a day used over the last 30 days: 100 left, 40 more used in
    # the 20 days left, 60 lost (the example).
    at_risk = paid_credit(notifying, "p1", amount="160")
    settle_daily(notifying, "p1", "2.00", before=at)
    # p2: 90 bought, the same usage: 30 left, used up 15 days before its end.
    consumed = paid_credit(notifying, "p2", amount="90")
    settle_daily(notifying, "p2", "2.00", before=at)

    summary = notifying.notify_expiring(at=at)
    # p2's credit holds 30.00 and ends within 30 days, but its usage consumes it first.
    assert [payload["credit_id"] for _priority, event_type, payload in sent()
            if event_type == "cloud_credit.credit.expiring"] == [at_risk]
    assert (summary.projects_forecast, summary.credits_notified) == (2, 1)
    assert sent()[-1] == ("WARN", "cloud_credit.credit.expiring", {
        "credit_id": at_risk, "project_id": "p1", "kind": "purchased",
        "expires_unused": "60.00", "available": "100.00", "currency": "EUR",
        "valid_until": "2027-02-28T10:00:00Z", "days_left": 20, "threshold_days": 30,
        "notified_at": "2027-02-08T10:00:00Z",
    })
    # Exactly what the forecast tells the customer.
    assert [(w.credit_id, w.amount) for w in notifying.forecast("p1", at=at).warnings] == [
        (at_risk, Decimal("60"))]
    assert notifying.forecast("p2", at=at).warnings == []
    assert consumed not in [credit for credit, _days, _amount in warnings_sent(sent())]

    # Both stop using their credit: 14 days on, the window holds 16 days of 2.00, a burn
    # of 1.066666 a day (rounded down), 6.399996 in the 6 days left. p2 will now lose
    # 23.600004 of its 30.00: warned, for the 7-day threshold only (its 30-day warning was
    # never due, and is not sent late). p1's 7-day warning has the new figure too.
    later = PAID_UNTIL - dt.timedelta(days=6)
    notifying.notify_expiring(at=later)
    assert warnings_sent(sent()) == [(at_risk, 30, "60.00"), (at_risk, 7, "93.600004"),
                                     (consumed, 7, "23.600004")]
    assert _notices(notifying) == [(at_risk, 7), (at_risk, 30), (consumed, 7), (consumed, 30)]


def test_every_candidate_project_is_forecast_once_across_batches(
    notifying: CreditService, sent: Sent
) -> None:
    at = PAID_UNTIL - dt.timedelta(days=10)
    # Projects whose credit will be used up in time (no warning) must not stop the
    # job from reaching the ones after them.
    for project in ("p0", "p2", "p4"):
        paid_credit(notifying, project, amount="35")  # 5.00 left, used up in 5 days
        settle_daily(notifying, project, "3.00", before=at, days=10)
    warned = [paid_credit(notifying, project) for project in ("p1", "p3", "p5")]
    ends_later = notifying.create_order("p6", "100", at=T0 + dt.timedelta(days=60))
    notifying.pay_order(ends_later.id, at=T0 + dt.timedelta(days=60))

    summary = notifying.notify_expiring(at=at, batch_size=2)
    assert (summary.projects_forecast, summary.credits_notified) == (6, 3)
    assert sorted(warnings_sent(sent())) == [(credit, 30, "100.00") for credit in warned]


@on_every_backend
def test_two_jobs_at_once_send_each_warning_once(
    notifying: CreditService, ledger: Ledger, sent: Sent
) -> None:
    credit_ids = [paid_credit(notifying, f"p{n}") for n in range(5)]
    other = ledger.service()
    start = threading.Barrier(2)
    results: list[Any] = []

    def job(service: CreditService) -> None:
        start.wait()
        results.append(service.notify_expiring(at=PAID_UNTIL - dt.timedelta(days=10)))

    threads = [threading.Thread(target=job, args=(s,)) for s in (notifying, other)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        other.close()
    assert sum(r.credits_notified for r in results) == 5
    assert sorted(warnings_sent(sent())) == [(c, 30, "100.00") for c in credit_ids]


def test_a_credit_first_seen_close_to_its_end_gets_the_most_urgent_warning_only(
    notifying: CreditService, sent: Sent
) -> None:
    credit_id = paid_credit(notifying)
    notifying.notify_expiring(at=PAID_UNTIL - dt.timedelta(days=5))
    notifying.notify_expiring(at=PAID_UNTIL - dt.timedelta(days=4))
    assert warnings_sent(sent()) == [(credit_id, 7, "100.00")]
    assert _notices(notifying) == [(credit_id, 7), (credit_id, 30)]


def test_only_credits_with_money_at_risk_are_warned(notifying: CreditService, sent: Sent) -> None:
    at_risk = paid_credit(notifying, "p1")
    voided = paid_credit(notifying, "p2")
    notifying.void_credit(voided, reason="fraud", at=T0)
    spent = paid_credit(notifying, "p3", amount="10")
    notifying.settle_invoice(_invoice("p3", "10"))
    partly = paid_credit(notifying, "p4", amount="30")
    notifying.settle_invoice(_invoice("p4", "10.005"))  # long before: no usage since
    later_order = notifying.create_order("p5", "100", at=T0 + dt.timedelta(days=60))
    later = notifying.pay_order(later_order.id, at=T0 + dt.timedelta(days=60)).credit_id

    summary = notifying.notify_expiring(at=PAID_UNTIL - dt.timedelta(days=10))
    assert (summary.projects_forecast, summary.credits_notified) == (2, 2)
    assert warnings_sent(sent()) == [(at_risk, 30, "100.00"), (partly, 30, "19.995")]
    assert {voided, spent, later}.isdisjoint(c for c, _days, _a in warnings_sent(sent()))
    # A credit already past its end is the expiry job's, not a warning's.
    assert notifying.notify_expiring(at=PAID_UNTIL + dt.timedelta(days=1)).credits_notified == 0


def test_notify_expiring_with_notifications_off_is_refused_and_writes_nothing(
    service: CreditService, ledger: Ledger
) -> None:
    paid_credit(service)
    before = ledger.checksum()
    with pytest.raises(exceptions.ConfigError, match=r"\[oslo_messaging_notifications\] driver"):
        service.notify_expiring(at=PAID_UNTIL - dt.timedelta(days=5))
    assert ledger.checksum() == before


def test_thresholds_come_from_forecast_warning_days(ledger: Ledger, sent: Sent) -> None:
    notifications_section(ledger, "test")
    service = ledger.service(forecast_warning_days=[3])
    quiet = ledger.service(forecast_warning_days=[])
    try:
        credit_id = paid_credit(service)
        assert service.notify_expiring(at=PAID_UNTIL - dt.timedelta(days=5)).credits_notified == 0
        assert quiet.notify_expiring(at=PAID_UNTIL - dt.timedelta(days=2)).credits_notified == 0
        service.notify_expiring(at=PAID_UNTIL - dt.timedelta(days=2))
    finally:
        service.close()
        quiet.close()
    assert warnings_sent(sent()) == [(credit_id, 3, "100.00")]
    assert _notices(service) == [(credit_id, 3)]


def _count(service: CreditService, table: sa.Table) -> int:
    return int(service.database.read(
        lambda conn: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()))


def _notices(service: CreditService) -> list[tuple[int, int]]:
    table = schema.expiry_notices
    return service.database.read(lambda conn: sorted(
        (int(r.credit_id), int(r.threshold_days))
        for r in conn.execute(sa.select(table.c.credit_id, table.c.threshold_days))
    ))


# -- notifications off cost nothing ------------------------------------------------------


def test_without_notifications_oslo_messaging_is_not_even_imported(tmp_path: Path) -> None:
    # A second or more of imports for every CLI command: only when configured.
    config = tmp_path / "c.conf"
    config.write_text(f"[cloud_credit]\nconnection = sqlite:///{tmp_path}/l.sqlite\n")
    script = textwrap.dedent(f"""
        import sys
        from oslo_config import cfg
        from ovh_credit_plugin.conf import register_opts
        from ovh_credit_plugin.ledger import migration
        from ovh_credit_plugin.ledger.database import create_engine
        from ovh_credit_plugin.service import CreditService
        conf = cfg.ConfigOpts()
        register_opts(conf)
        conf(args=[], default_config_files=[{str(config)!r}])
        migration.upgrade(create_engine(conf.cloud_credit.connection))
        service = CreditService.from_conf(conf)
        order = service.create_order("p1", "10")
        service.pay_order(order.id)
        assert not service.notifier.enabled
        print("oslo_messaging" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_payload_builders_never_hold_floats() -> None:
    event = events.credit_expiring(
        credit_id=1, project_id="p", kind="voucher", currency="JPY",
        expires_unused=Decimal("400"), available=Decimal("1000"),
        valid_until=dt.datetime(2030, 1, 8, tzinfo=UTC), days_left=7, threshold_days=7,
        at=dt.datetime(2030, 1, 1, 12, tzinfo=UTC))
    assert (event.payload["expires_unused"], event.payload["available"]) == ("400", "1000")
    assert not any(isinstance(v, float) for v in event.payload.values())
    assert set(events.EVENT_TYPES) == {
        "cloud_credit.order.created", "cloud_credit.order.paid",
        "cloud_credit.credit.granted", "cloud_credit.credit.expiring",
        "cloud_credit.credit.expired", "cloud_credit.credit.voided",
    }
