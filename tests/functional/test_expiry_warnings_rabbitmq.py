"""``ovh-credit notify-expiring`` over a real transport: RabbitMQ, down then up.

A broker that cannot be reached makes oslo.messaging log the failed send and
return; the job must not record the warning as sent (it would never be sent),
must say so (exit status 1, one line on stderr) and the next run must send it.
"""

from __future__ import annotations

import datetime as dt

import pytest

from tests.functional.test_events_rabbitmq import (  # noqa: F401 (fixtures)
    Received,
    broker,
    received,
)
from tests.support import rabbitmq
from tests.support.cli import Cli
from tests.support.ledgers import Ledger

UTC = dt.timezone.utc


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def notifications(ledger: Ledger, url: str) -> None:
    """The ledger's config file with ``[oslo_messaging_notifications]`` on ``url`` (and
    rabbit's reconnection a second apart: a down broker fails in seconds)."""
    text = ledger.config.read_text()
    text = text.split("[oslo_messaging_notifications]")[0]
    ledger.config.write_text(
        text + "[oslo_messaging_notifications]\ndriver = messagingv2\n"
        f"transport_url = {url}\nretry = 1\n"
        "[oslo_messaging_rabbit]\nrabbit_retry_interval = 1\n"
        "rabbit_retry_backoff = 1\nrabbit_interval_max = 1\n")


def test_a_warning_lost_by_a_broker_that_is_down_is_sent_by_the_next_run(
    cli: Cli, ledger: Ledger, broker: rabbitmq.RabbitMQ, received: Received,  # noqa: F811
) -> None:
    order = cli.ok("order", "create", "p1", "100", "--at", "2026-01-31T10:00:00Z")
    credit_id = cli.ok("order", "pay", order["id"], "--at", "2026-01-31T10:00:00Z")["credit_id"]
    closed = rabbitmq._free_ports(1)[0]
    notifications(ledger, f"rabbit://guest:guest@127.0.0.1:{closed}/")

    down = cli("notify-expiring", "--at", "2027-02-23T10:00:00Z")
    assert down.code == 1, (down.stdout, down.stderr)
    # One line: not the rabbit driver's reconnection attempts before it as well.
    assert down.stderr.splitlines() == [
        "ovh-credit: 1 expiry warning could not be sent (the notification transport failed: "
        "OperationalError: [Errno 111] Connection refused); it is not recorded as sent, and "
        "the run stopped there: the next run sends it and the rest"]
    summary = down.json()
    assert (summary["credits_notified"], summary["by_threshold"]) == (0, {"7": 0, "30": 0})

    notifications(ledger, broker.transport_url)
    up = cli.ok("notify-expiring", "--at", "2027-02-24T10:00:00Z")
    assert (up["credits_notified"], up["by_threshold"]) == (1, {"7": 1, "30": 0})
    messages = received.wait_for(1)
    assert [(event_type, payload["credit_id"], payload["threshold_days"],
             payload["days_left"]) for _priority, _p, event_type, payload in messages] == [
        ("cloud_credit.credit.expiring", credit_id, 7, 4)]
    # Recorded once sent: a third run sends nothing more.
    assert cli.ok("notify-expiring", "--at", "2027-02-25T10:00:00Z")["credits_notified"] == 0
