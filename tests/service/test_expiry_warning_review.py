"""Review of the at-least-once expiry warnings (revision 0008, ``sending_since``): runs
at the same time, a transport failing after the timeout, nodes whose clocks differ,
catch-up runs, and the operator's log line about a dead run's warnings.

Fixtures and helpers are test_expiry_warning_killed_run.py's: a death is a
``BaseException`` raised from the ``test`` notification driver.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from ovh_credit_plugin.ledger import expiry_notices, schema
from ovh_credit_plugin.service import CreditService
from tests.service import test_expiry_warning_killed_run as killed
from tests.service.test_expiry_warning_killed_run import (
    AT,
    DAY,
    TIMEOUT,
    Clock,
    being_sent,
    expiring_sent,
    paid_credit,
)
from tests.support.ledgers import BACKENDS, Ledger

with warnings.catch_warnings():  # oslo.service's about eventlet: not ours
    warnings.simplefilter("ignore")
    from oslo_messaging.notify import _impl_test

# The fixtures of test_expiry_warning_killed_run.py, for this module's tests.
clock, notifying, killed_run = killed.clock, killed.notifying, killed.killed_run

SECOND = dt.timedelta(seconds=1)
on_the_servers = pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def on_first_send(monkeypatch: pytest.MonkeyPatch, meanwhile: Callable[[], None], *,
                  fail: bool = False) -> None:
    """The next run's first send first runs ``meanwhile`` (another run, on another node),
    then goes through (or fails, as a broker down past ``retry`` does); later sends are
    the driver's own."""
    original = _impl_test.TestDriver.notify

    def notify(self: Any, ctxt: Any, message: Any, priority: Any, retry: Any) -> None:
        monkeypatch.setattr(_impl_test.TestDriver, "notify", original)
        meanwhile()
        if fail:
            raise ConnectionError("broker unreachable")
        original(self, ctxt, message, priority, retry)

    monkeypatch.setattr(_impl_test.TestDriver, "notify", notify)


@on_the_servers
def test_two_runs_that_find_a_dead_runs_warnings_at_once_send_them_once(
    notifying: Callable[[], CreditService], clock: Clock, killed_run: Callable[..., None],
) -> None:
    # Two nodes' runs start together after a run died. The second reads the dead run's
    # records, then, before it deletes them, the first deletes them too, records the
    # warning again, sends it and marks it sent. The second must not delete that.
    credit_id = paid_credit(notifying(), "p1")
    killed_run(notifying())
    clock.now += TIMEOUT + SECOND
    first, second = notifying(), notifying()
    results: list[Any] = []
    other = threading.Thread(target=lambda: results.append(first.notify_expiring(at=AT)))
    started = False

    def before_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        nonlocal started
        if not started and statement.startswith("DELETE FROM cloud_credit_expiry_notices"):
            started = True
            other.start()
            # The first run does all that while the second holds no lock; a second
            # that locks what it read makes the first wait for its commit instead.
            other.join(timeout=5)

    sa.event.listen(second.database.engine, "before_cursor_execute", before_execute)
    summary = second.notify_expiring(at=AT)
    other.join(timeout=120)
    assert started and not other.is_alive()
    assert expiring_sent() == [(credit_id, 7)]
    assert summary.credits_notified + results[0].credits_notified == 1
    assert being_sent(first) == []


def test_a_run_whose_send_fails_after_the_timeout_leaves_the_warning_another_run_sent(
    notifying: Callable[[], CreditService], clock: Clock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A run hangs on its broker past the timeout; meanwhile another node's run takes it
    # for dead, sends the warning and marks it sent. Then the first run's send fails:
    # it forgets what it recorded, not what the other run recorded and sent.
    credit_id = paid_credit(notifying(), "p1")

    def other_node() -> None:
        clock.now += TIMEOUT + SECOND
        assert notifying().notify_expiring(at=AT).credits_notified == 1

    on_first_send(monkeypatch, other_node, fail=True)
    hung = notifying().notify_expiring(at=AT)
    assert (hung.credits_notified, hung.credits_unsent) == (0, 1)
    assert expiring_sent() == [(credit_id, 7)]

    assert notifying().notify_expiring(at=AT + DAY).credits_notified == 0
    assert expiring_sent() == [(credit_id, 7)]


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_a_run_that_cannot_send_a_dead_runs_warnings_leaves_them_to_the_next_run(
    notifying: Callable[[], CreditService], clock: Clock, killed_run: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The failing run forgets the records it made, being sent since its own moment (a
    # wall clock's, to the microsecond): none is left being sent, the next run sends it.
    credit_id = paid_credit(notifying(), "p1")
    killed_run(notifying())
    clock.now += TIMEOUT + dt.timedelta(seconds=1, microseconds=234567)
    on_first_send(monkeypatch, lambda: None, fail=True)
    down = notifying().notify_expiring(at=AT)
    assert (down.credits_notified, down.credits_unsent) == (0, 1)
    assert being_sent(notifying()) == []

    assert notifying().notify_expiring(at=AT).credits_notified == 1
    assert expiring_sent() == [(credit_id, 7)]


def test_a_catch_up_run_dated_in_the_past_leaves_a_live_runs_warnings_alone(
    notifying: Callable[[], CreditService], clock: Clock, killed_run: Callable[..., None],
) -> None:
    # The timeout is counted on the wall clock, not from --at: a run dated ten days back,
    # a minute after another recorded its warnings, does not take that run for dead.
    credit_id = paid_credit(notifying(), "p1")
    killed_run(notifying())
    clock.now += dt.timedelta(minutes=1)
    assert notifying().notify_expiring(at=AT - 10 * DAY).credits_notified == 0
    assert being_sent(notifying()) == [(credit_id, 7), (credit_id, 30)]
    # And a catch-up run after the timeout does send it, for its own moment.
    clock.now += TIMEOUT
    assert notifying().notify_expiring(at=AT - DAY).credits_notified == 1
    assert expiring_sent() == [(credit_id, 7)]


def test_a_node_whose_clock_is_ahead_within_the_allowance_does_not_take_a_live_run_for_dead(
    ledger: Ledger, notifying: Callable[[], CreditService], clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Defaults: expiry_warning_send_timeout 3600 s, clock_skew_allowance 300 s. A run
    # has been sending for 3301 s (less than the timeout the docs tell to set above the
    # longest send) when a run starts on a node whose clock is 300 s ahead.
    credit_id = paid_credit(notifying(), "p1")

    def other_node() -> None:
        clock.now += 3301 * SECOND
        ahead = ledger.service(clock=lambda: clock.now + 300 * SECOND)
        try:
            ahead.notify_expiring(at=AT)
        finally:
            ahead.close()

    on_first_send(monkeypatch, other_node)
    notifying().notify_expiring(at=AT)
    assert expiring_sent() == [(credit_id, 7)]


def test_the_warning_about_ten_thousand_reclaimed_records_is_one_short_line_that_counts_them(
    notifying: Callable[[], CreditService], clock: Clock, caplog: pytest.LogCaptureFixture,
) -> None:
    # A dead run's 10,000 records (1,000 credits, ten thresholds each): the operator
    # reads how many, since when, and some of them, not a 300 kB line that syslog cuts.
    service = notifying()
    credits = [paid_credit(service, f"p{n:04d}") for n in range(1000)]
    died_at = clock.now
    service.database.write(lambda conn: conn.execute(
        sa.insert(schema.expiry_notices),
        [{"credit_id": credit_id, "threshold_days": days, "created_at": AT,
          "sending_since": died_at} for credit_id in credits for days in range(1, 11)]))
    clock.now += TIMEOUT + SECOND
    with caplog.at_level(logging.WARNING, logger="ovh_credit_plugin"):
        summary = notifying().notify_expiring(at=AT)
    assert summary.credits_notified == 1000
    [line] = [r.getMessage() for r in caplog.records if "never said it sent" in r.getMessage()]
    assert len(line) < 2000
    assert "10000 records of 1000 credits" in line
    assert died_at.strftime("%Y-%m-%dT%H:%M:%S") in line
    assert f"credit {credits[0]} (1 day), credit {credits[0]} (2 days)" in line


def test_a_run_whose_ledger_fails_after_the_send_sends_the_warning_again_after_the_timeout(
    notifying: Callable[[], CreditService], clock: Clock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Not a kill: the ledger fails (for good, past its retries) between the send and the
    # mark. The run fails; the warning, sent, is still being sent, and goes out again
    # once the timeout has passed. (docs/events.md calls a kill there "the one case".)
    credit_id = paid_credit(notifying(), "p1")

    def ledger_gone(conn: Any, notices: Any) -> None:
        raise RuntimeError("the ledger went away")

    with monkeypatch.context() as patched:
        patched.setattr(expiry_notices, "sent", ledger_gone)
        with pytest.raises(RuntimeError, match="went away"):
            notifying().notify_expiring(at=AT)
    assert expiring_sent() == [(credit_id, 7)]
    assert being_sent(notifying()) == [(credit_id, 7), (credit_id, 30)]

    clock.now += TIMEOUT + SECOND
    assert notifying().notify_expiring(at=AT).credits_notified == 1
    assert expiring_sent() == [(credit_id, 7), (credit_id, 7)]
