"""``kill -9`` of ``ovh-credit notify-expiring`` while it sends: the warning is not lost.

The real executable records its warning, then tries to hand it to a "broker" that
accepts connections and never answers (a hung RabbitMQ: the send blocks), and is
killed with SIGKILL there. Before ``[cloud_credit] expiry_warning_send_timeout`` a
second run sends nothing (the first could still be sending); after it, a run against
a real RabbitMQ sends the warning, which a notification listener receives, once.
"""

from __future__ import annotations

import datetime as dt
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ovh_credit_plugin.cli.app import main
from ovh_credit_plugin.ledger import schema
from tests.functional.test_events_rabbitmq import (  # noqa: F401 (fixtures)
    Received,
    broker,
    received,
)
from tests.functional.test_expiry_warnings_rabbitmq import notifications
from tests.support import rabbitmq
from tests.support.cli import Cli
from tests.support.clock import TEST_NOW
from tests.support.ledgers import Ledger, engine_of

AT = "2027-02-23T10:00:00Z"  # five days before the credit's end: the 7-day warning


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def hung_broker() -> Iterator[tuple[int, list[socket.socket]]]:
    """A port that accepts connections and never says a word; the connections it took."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    taken: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                taken.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], taken
    stop.set()
    thread.join()
    server.close()
    for each in taken:
        each.close()


def being_sent(ledger: Ledger) -> list[tuple[int, int]]:
    table = schema.expiry_notices
    with engine_of(ledger) as engine, engine.connect() as conn:
        return sorted((int(r.credit_id), int(r.threshold_days)) for r in conn.execute(
            sa.select(table.c.credit_id, table.c.threshold_days)
            .where(table.c.sending_since.is_not(None))))


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def run_at(ledger: Ledger, now: dt.datetime, *args: str) -> int:
    return main(["--config-file", str(ledger.config), "--now", now.isoformat(), *args])


def test_a_run_killed_while_sending_loses_no_warning(
    cli: Cli, ledger: Ledger, broker: rabbitmq.RabbitMQ, received: Received,  # noqa: F811
    hung_broker: tuple[int, list[socket.socket]], capsys: pytest.CaptureFixture[str],
) -> None:
    order = cli.ok("order", "create", "p1", "100", "--at", "2026-01-31T10:00:00Z")
    credit_id = cli.ok("order", "pay", order["id"], "--at", "2026-01-31T10:00:00Z")["credit_id"]
    port, taken = hung_broker
    notifications(ledger, f"rabbit://guest:guest@127.0.0.1:{port}/")

    executable = Path(sys.executable).with_name("ovh-credit")
    sending = subprocess.Popen(
        [str(executable), "--config-file", str(ledger.config), "--now", TEST_NOW.isoformat(),
         "notify-expiring", "--at", AT],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Recorded (committed), and handed to a transport that is waiting on the broker.
        wait_for(lambda: being_sent(ledger) == [(credit_id, 7), (credit_id, 30)],
                 "the warning to be recorded")
        wait_for(lambda: bool(taken), "the run to connect to the broker")
        assert sending.poll() is None
    finally:
        sending.send_signal(signal.SIGKILL)
        sending.wait()
    assert sending.returncode == -signal.SIGKILL

    notifications(ledger, broker.transport_url)
    # Within the timeout (3600 s by default, plus the clock skew allowed, 300 s) the
    # killed run could have been alive.
    assert run_at(ledger, TEST_NOW + dt.timedelta(minutes=64), "notify-expiring", "--at", AT,
                  "-f", "value", "-c", "credits_notified") == 0
    assert capsys.readouterr().out.strip() == "0"
    assert run_at(ledger, TEST_NOW + dt.timedelta(minutes=66), "notify-expiring", "--at", AT,
                  "-f", "value", "-c", "credits_notified") == 0
    assert capsys.readouterr().out.strip() == "1"
    messages = received.wait_for(1)
    assert [(event_type, payload["credit_id"], payload["threshold_days"])
            for _priority, _p, event_type, payload in messages] == [
        ("cloud_credit.credit.expiring", credit_id, 7)]
    assert being_sent(ledger) == []
