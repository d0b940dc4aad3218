"""A ``notify-expiring`` run that dies between recording its warnings and sending them
does not lose them: a later run, once ``expiry_warning_send_timeout`` has passed,
sends those still due.

A death is a ``BaseException`` raised from inside the notification driver (what a
SIGKILL leaves in the ledger: the recording transaction committed, nothing after it
ran); tests/functional/test_expiry_warning_sigkill.py kills a real process.
"""

from __future__ import annotations

import datetime as dt
import logging
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from ovh_credit_plugin.ledger import migration, schema
from ovh_credit_plugin.service import CreditService
from tests.support.clock import TEST_NOW
from tests.support.ledgers import BACKENDS, T0, Ledger, engine_of

with warnings.catch_warnings():  # oslo.service's about eventlet: not ours
    warnings.simplefilter("ignore")
    from oslo_messaging.notify import _impl_test

UTC = dt.timezone.utc
DAY = dt.timedelta(days=1)
PAID_UNTIL = dt.datetime(2027, 2, 28, 10, 0, tzinfo=UTC)  # T0 + 13 months, clamped
AT = PAID_UNTIL - 5 * DAY  # within 7 days of the end: the 7-day warning
# expiry_warning_send_timeout's default, and clock_skew_allowance's (another node's
# clock may be ahead): how long a run's warnings are left to it.
TIMEOUT = dt.timedelta(seconds=3600 + 300)
on_every_backend = pytest.mark.parametrize("backend", BACKENDS, indirect=True)


class Killed(BaseException):
    """The process dying: nothing catches it, nothing after it runs."""


class Clock:
    def __init__(self) -> None:
        self.now = TEST_NOW

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def notifying(ledger: Ledger, clock: Clock) -> Iterator[Callable[[], CreditService]]:
    """Services on one ledger with the ``test`` notification driver, one per run."""
    _impl_test.reset()
    with ledger.config.open("a") as config:
        config.write("[oslo_messaging_notifications]\ndriver = test\n")
    made: list[CreditService] = []

    def service() -> CreditService:
        made.append(ledger.service(clock=clock))
        return made[-1]

    yield service
    for each in made:
        each.close()
    _impl_test.reset()


@pytest.fixture
def killed_run(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """``killed_run(service)``: a run at :data:`AT` that dies at its ``at_send``-th send
    (1: before any reaches the bus; the sends before it do). The next run is healthy."""
    original = _impl_test.TestDriver.notify

    def run(service: CreditService, *, at_send: int = 1) -> None:
        calls: list[int] = []

        def notify(self: Any, ctxt: Any, message: Any, priority: Any, retry: Any) -> None:
            calls.append(1)
            if len(calls) == at_send:
                monkeypatch.setattr(_impl_test.TestDriver, "notify", original)
                raise Killed
            original(self, ctxt, message, priority, retry)

        monkeypatch.setattr(_impl_test.TestDriver, "notify", notify)
        with pytest.raises(Killed):
            service.notify_expiring(at=AT)

    return run


def expiring_sent() -> list[tuple[int, int]]:
    """(credit_id, threshold_days) of each credit.expiring handed to the bus, in order."""
    return [(message["payload"]["credit_id"], message["payload"]["threshold_days"])
            for _ctxt, message, _priority, _retry in _impl_test.NOTIFICATIONS
            if message["event_type"] == "cloud_credit.credit.expiring"]


def paid_credit(service: CreditService, project: str) -> int:
    order = service.create_order(project, "100", at=T0)
    credit_id = service.pay_order(order.id, at=T0).credit_id
    assert credit_id is not None
    return credit_id


def being_sent(service: CreditService) -> list[tuple[int, int]]:
    table = schema.expiry_notices
    return service.database.read(lambda conn: sorted(
        (int(r.credit_id), int(r.threshold_days))
        for r in conn.execute(sa.select(table.c.credit_id, table.c.threshold_days)
                              .where(table.c.sending_since.is_not(None)))))


@on_every_backend
def test_a_warning_recorded_by_a_run_that_died_before_sending_it_is_sent_after_the_timeout(
    notifying: Callable[[], CreditService], clock: Clock, killed_run: Callable[..., None],
) -> None:
    first = notifying()
    credit_id = paid_credit(first, "p1")  # no usage: all 100.00 at risk
    killed_run(first)
    assert expiring_sent() == []
    assert being_sent(first) == [(credit_id, 7), (credit_id, 30)]

    # Within the timeout the first run may still be sending: nothing is sent twice.
    clock.now += TIMEOUT - dt.timedelta(seconds=1)
    assert notifying().notify_expiring(at=AT).credits_notified == 0
    assert expiring_sent() == []

    clock.now += dt.timedelta(seconds=2)
    again = notifying().notify_expiring(at=AT + DAY)
    assert (again.credits_notified, again.by_threshold) == (1, {7: 1})
    assert expiring_sent() == [(credit_id, 7)]
    assert being_sent(first) == []

    # Sent and marked: never again, however long after.
    clock.now += 30 * TIMEOUT
    assert notifying().notify_expiring(at=AT + 2 * DAY).credits_notified == 0
    assert expiring_sent() == [(credit_id, 7)]


def test_a_warning_sent_is_marked_sent_and_is_not_sent_again_after_the_timeout(
    notifying: Callable[[], CreditService], clock: Clock,
) -> None:
    service = notifying()
    credit_id = paid_credit(service, "p1")
    assert service.notify_expiring(at=AT).credits_notified == 1
    assert being_sent(service) == []
    clock.now += 2 * TIMEOUT
    assert notifying().notify_expiring(at=AT).credits_notified == 0
    assert expiring_sent() == [(credit_id, 7)]


def test_a_run_that_died_mid_batch_sends_the_whole_batch_again_at_least_once(
    notifying: Callable[[], CreditService], clock: Clock, killed_run: Callable[..., None],
) -> None:
    # The batch is marked sent after its last send: a death in the middle of it leaves
    # the warnings that did go out unmarked too, and they are sent a second time
    # (at least once: consumers tell the copies apart by credit_id and threshold_days).
    service = notifying()
    first, second = paid_credit(service, "p1"), paid_credit(service, "p2")
    killed_run(service, at_send=2)
    assert expiring_sent() == [(first, 7)]

    clock.now += TIMEOUT + dt.timedelta(seconds=1)
    assert notifying().notify_expiring(at=AT).credits_notified == 2
    assert expiring_sent() == [(first, 7), (first, 7), (second, 7)]


def test_a_warning_no_longer_due_when_its_run_is_found_dead_is_not_sent(
    notifying: Callable[[], CreditService], clock: Clock, killed_run: Callable[..., None],
) -> None:
    service = notifying()
    credit_id = paid_credit(service, "p1")
    killed_run(service)
    service.void_credit(credit_id, reason="support ticket 4711", at=AT + dt.timedelta(hours=1))

    clock.now += TIMEOUT + dt.timedelta(seconds=1)
    assert notifying().notify_expiring(at=AT + DAY).credits_notified == 0
    assert expiring_sent() == []
    assert being_sent(service) == []


def test_the_run_that_finds_a_dead_runs_warnings_says_so_in_its_log(
    notifying: Callable[[], CreditService], clock: Clock, killed_run: Callable[..., None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = notifying()
    credit_id = paid_credit(service, "p1")
    killed_run(service)
    died_at = clock.now
    clock.now += TIMEOUT + dt.timedelta(minutes=5)
    with caplog.at_level(logging.WARNING, logger="ovh_credit_plugin"):
        notifying().notify_expiring(at=AT)
    [line] = [r.getMessage() for r in caplog.records if "never said it sent" in r.getMessage()]
    assert f"credit {credit_id} (7 days), credit {credit_id} (30 days)" in line
    assert died_at.strftime("%Y-%m-%dT%H:%M:%S") in line


def test_the_timeout_is_the_operators(
    ledger: Ledger, notifying: Callable[[], CreditService], clock: Clock,
    killed_run: Callable[..., None],
) -> None:
    with ledger.config.open("a") as config:
        config.write("[cloud_credit]\nexpiry_warning_send_timeout = 600\n")
    service = notifying()
    credit_id = paid_credit(service, "p1")
    killed_run(service)
    clock.now += dt.timedelta(seconds=600 + 300 - 1)  # clock_skew_allowance: 300 s
    assert notifying().notify_expiring(at=AT).credits_notified == 0
    clock.now += dt.timedelta(seconds=2)
    assert notifying().notify_expiring(at=AT).credits_notified == 1
    assert expiring_sent() == [(credit_id, 7)]


@on_every_backend
def test_going_back_to_0007_forgets_the_warnings_being_sent_and_keeps_those_sent(
    ledger: Ledger, notifying: Callable[[], CreditService], killed_run: Callable[..., None],
) -> None:
    # The older code cannot tell a warning being sent from one sent: it would never send
    # it. Forgotten, the older code's next run sends it.
    service = notifying()
    sent, dying = paid_credit(service, "p1"), paid_credit(service, "p2")
    assert service.notify_expiring(at=PAID_UNTIL - 20 * DAY).credits_notified == 2
    service.void_credit(sent, reason="support ticket 4711", at=PAID_UNTIL - 19 * DAY)
    killed_run(service)
    assert being_sent(service) == [(dying, 7)]
    service.close()

    table = schema.expiry_notices
    with engine_of(ledger) as engine:
        migration.downgrade(engine, "0007_binary_collation")
        with engine.connect() as conn:
            assert sorted(tuple(row) for row in conn.execute(sa.text(
                f"SELECT credit_id, threshold_days FROM {table.name}"))) == [
                (sent, 30), (dying, 30)]
        migration.upgrade(engine)
    assert being_sent(notifying()) == []
