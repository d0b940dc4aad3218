"""An expiry warning the notification transport failed to send is not recorded as
sent: the next ``notify-expiring`` sends it, once.

The service runs with oslo.messaging's ``test`` notification driver, configured in
the ledger's config file as an operator does; a failing transport is that driver
raising, as a broker that cannot be reached makes oslo.messaging's own drivers do
(oslo.messaging logs the failure and returns: the caller is not told).
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from ovh_credit_plugin.ledger import schema
from ovh_credit_plugin.service import CreditService
from tests.support.ledgers import BACKENDS, T0, Ledger

with warnings.catch_warnings():  # oslo.service's about eventlet: not ours
    warnings.simplefilter("ignore")
    from oslo_messaging.notify import _impl_test

UTC = dt.timezone.utc
DAY = dt.timedelta(days=1)
PAID_UNTIL = dt.datetime(2027, 2, 28, 10, 0, tzinfo=UTC)  # T0 + 13 months, clamped
on_every_backend = pytest.mark.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def notifying(ledger: Ledger) -> Iterator[CreditService]:
    _impl_test.reset()
    with ledger.config.open("a") as config:
        config.write("[oslo_messaging_notifications]\ndriver = test\n")
    service = ledger.service()
    yield service
    service.close()
    _impl_test.reset()


def expiring_sent() -> list[tuple[int, int, str]]:
    """(credit_id, threshold_days, expires_unused) of each credit.expiring handed to the bus."""
    return [(message["payload"]["credit_id"], message["payload"]["threshold_days"],
             message["payload"]["expires_unused"])
            for _ctxt, message, _priority, _retry in _impl_test.NOTIFICATIONS
            if message["event_type"] == "cloud_credit.credit.expiring"]


def notices(service: CreditService) -> list[tuple[int, int]]:
    table = schema.expiry_notices
    return service.database.read(lambda conn: sorted(
        (int(r.credit_id), int(r.threshold_days))
        for r in conn.execute(sa.select(table.c.credit_id, table.c.threshold_days))))


def paid_credit(service: CreditService, project: str = "p1", amount: str = "100") -> int:
    order = service.create_order(project, amount, at=T0)
    credit_id = service.pay_order(order.id, at=T0).credit_id
    assert credit_id is not None
    return credit_id


@pytest.fixture
def broken_transport(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """The ``test`` driver fails every send (a broker down past ``retry``) until the
    returned list is emptied; what it was asked to send meanwhile is lost."""
    failing: list[Any] = [True]
    original = _impl_test.TestDriver.notify

    def notify(self: Any, ctxt: Any, message: Any, priority: Any, retry: Any) -> None:
        if failing:
            raise ConnectionError("broker unreachable")
        original(self, ctxt, message, priority, retry)

    monkeypatch.setattr(_impl_test.TestDriver, "notify", notify)
    yield failing


# -- a transport that fails ----------------------------------------------------------------


@on_every_backend
def test_a_warning_the_transport_failed_to_send_is_sent_by_the_next_run(
    notifying: CreditService, broken_transport: list[Any]
) -> None:
    credit_id = paid_credit(notifying)  # no usage: all 100.00 at risk
    at = PAID_UNTIL - 5 * DAY
    summary = notifying.notify_expiring(at=at)
    # Nothing reached the bus: the warning is neither counted as sent nor recorded
    # as sent (a recorded warning is never sent again).
    assert expiring_sent() == []
    assert summary.credits_notified == 0
    assert summary.by_threshold == {}
    assert notices(notifying) == []

    broken_transport.clear()  # the broker is back: the next run sends it, once
    again = notifying.notify_expiring(at=at + DAY)
    assert (again.credits_notified, again.by_threshold) == (1, {7: 1})
    assert expiring_sent() == [(credit_id, 7, "100.00")]
    assert notices(notifying) == [(credit_id, 7), (credit_id, 30)]
    assert notifying.notify_expiring(at=at + 2 * DAY).credits_notified == 0
    assert expiring_sent() == [(credit_id, 7, "100.00")]


def test_a_failed_send_keeps_what_was_sent_before_it_and_reports_the_rest(
    notifying: CreditService, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, third = (paid_credit(notifying, project) for project in ("p1", "p2", "p3"))
    # The bus takes one message, then fails: p1's warning went out, p2's and p3's did not.
    original = _impl_test.TestDriver.notify
    calls: list[int] = []
    broken_transport = [True]

    def notify(self: Any, ctxt: Any, message: Any, priority: Any, retry: Any) -> None:
        calls.append(1)
        if len(calls) > 1 and broken_transport:
            raise ConnectionError("broker unreachable")
        original(self, ctxt, message, priority, retry)

    monkeypatch.setattr(_impl_test.TestDriver, "notify", notify)
    at = PAID_UNTIL - 10 * DAY
    summary = notifying.notify_expiring(at=at)
    assert expiring_sent() == [(first, 30, "100.00")]
    assert (summary.credits_notified, summary.by_threshold) == (1, {30: 1})
    assert summary.credits_unsent == 2
    assert notices(notifying) == [(first, 30)]

    broken_transport.clear()
    again = notifying.notify_expiring(at=at)
    assert (again.credits_notified, again.credits_unsent) == (2, 0)
    assert sorted(expiring_sent()) == [(first, 30, "100.00"), (second, 30, "100.00"),
                                       (third, 30, "100.00")]
