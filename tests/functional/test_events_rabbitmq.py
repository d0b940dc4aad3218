"""Notifications over a real transport: oslo.messaging's ``messagingv2`` driver and RabbitMQ.

A throwaway broker on loopback (``tests/support/rabbitmq.py``); the
operations publish as a host configured with ``[oslo_messaging_notifications]``
would, and an oslo.messaging notification listener (what a billing or
e-mail service runs) receives them. Skipped where RabbitMQ is not installed,
except in CI (``OVH_CREDIT_REQUIRE_DATABASES=1``: the install script that
brings the database servers brings the broker).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from ovh_credit_plugin.service import CreditService
from tests.support import rabbitmq
from tests.support.ledgers import REQUIRE_DATABASES, T0, Ledger

with warnings.catch_warnings():  # oslo.service's about eventlet: not ours
    warnings.simplefilter("ignore")
    import oslo_messaging
    from oslo_config import cfg

PAID_UNTIL = dt.datetime(2027, 2, 28, 10, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rabbitmq.RabbitMQ]:
    if not rabbitmq.available():
        message = "rabbitmq-server is not installed (bash .ci/install-db-servers.sh installs it)"
        if REQUIRE_DATABASES:
            pytest.fail(message)
        pytest.skip(message)
    started = rabbitmq.start(tmp_path_factory.mktemp("rabbitmq"))
    yield started
    started.stop()


class Received:
    """A notification listener's endpoint: what it was delivered, in order."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str, str, dict[str, Any]]] = []
        self._changed = threading.Condition()

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
             metadata: Any) -> None:
        self._add("INFO", publisher_id, event_type, payload)

    def warn(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
             metadata: Any) -> None:
        self._add("WARN", publisher_id, event_type, payload)

    def _add(self, priority: str, publisher_id: str, event_type: str, payload: Any) -> None:
        with self._changed:
            self.messages.append((priority, publisher_id, event_type, payload))
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 30.0) -> list[tuple[str, str, str, Any]]:
        with self._changed:
            self._changed.wait_for(lambda: len(self.messages) >= count, timeout=timeout)
            return list(self.messages)


@pytest.fixture
def received(broker: rabbitmq.RabbitMQ) -> Iterator[Received]:
    conf = cfg.ConfigOpts()
    conf(args=[], default_config_files=[])
    transport = oslo_messaging.get_notification_transport(conf, url=broker.transport_url)
    endpoint = Received()
    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic="notifications")], [endpoint],
        executor="threading")
    listener.start()
    yield endpoint
    listener.stop()
    listener.wait()
    transport.cleanup()


def configure(ledger: Ledger, url: str, extra: str = "") -> None:
    with ledger.config.open("a") as config:
        config.write("[oslo_messaging_notifications]\ndriver = messagingv2\n"
                     f"transport_url = {url}\n{extra}")


def test_every_event_reaches_a_listener_through_rabbitmq(
    ledger: Ledger, broker: rabbitmq.RabbitMQ, received: Received
) -> None:
    configure(ledger, broker.transport_url)
    service = ledger.service()
    try:
        order = service.create_order("p1", "100", at=T0)
        paid = service.pay_order(order.id, at=T0)
        voucher = service.activate_voucher("p1", "WELCOME-2026", at=T0)
        service.void_credit(voucher.id, reason="charge-back", at=T0)
        summary = service.notify_expiring(at=PAID_UNTIL - dt.timedelta(days=3))
        service.expire(at=PAID_UNTIL + dt.timedelta(days=1))
    finally:
        service.close()
    assert summary.credits_notified == 1
    messages = received.wait_for(7)
    # INFO and WARN travel on two queues: their relative order is the broker's.
    info = [(event_type, payload) for priority, _p, event_type, payload in messages
            if priority == "INFO"]
    assert [event_type for event_type, _ in info] == [
        "cloud_credit.order.created", "cloud_credit.order.paid",
        "cloud_credit.credit.granted", "cloud_credit.credit.granted",
        "cloud_credit.credit.voided", "cloud_credit.credit.expired",
    ]
    assert info[2][1]["credit_id"] == paid.credit_id
    assert info[3][1]["voucher"] == "WEL…6"
    assert (info[4][1]["reason"], info[4][1]["amount"]) == ("charge-back", "50.00")
    assert (info[5][1]["credit_id"], info[5][1]["amount"]) == (paid.credit_id, "100.00")
    warned = [(event_type, payload) for priority, _p, event_type, payload in messages
              if priority == "WARN"]
    assert warned == [("cloud_credit.credit.expiring", {
        "credit_id": paid.credit_id, "project_id": "p1", "kind": "purchased",
        "expires_unused": "100.00", "available": "100.00", "currency": "EUR",
        "valid_until": "2027-02-28T10:00:00Z", "days_left": 3, "threshold_days": 7,
        "notified_at": "2027-02-25T10:00:00Z",
    })]
    assert {publisher for _priority, publisher, _t, _p in messages} == {
        f"cloud_credit.{_host()}"}


def test_a_broker_that_is_down_never_fails_nor_stalls_a_payment(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    # A port nothing listens on; oslo.messaging's default retry (-1) would wait forever.
    closed = rabbitmq._free_ports(1)[0]
    configure(ledger, f"rabbit://guest:guest@127.0.0.1:{closed}/",
              "[oslo_messaging_rabbit]\nrabbit_retry_interval = 1\n"
              "rabbit_retry_backoff = 1\nrabbit_interval_max = 1\n")
    service: CreditService = ledger.service()
    try:
        order = service.create_order("p1", "100", at=T0)
        caplog.clear()
        started = time.monotonic()
        paid = service.pay_order(order.id, at=T0)
        took = time.monotonic() - started
        assert paid.status == "paid"
        assert [c.id for c in service.list_credits("p1", at=T0)] == [paid.credit_id]
    finally:
        service.close()
    # A few retries a second apart for each notification, not forever.
    assert took < 20, f"the payment waited {took:.0f} s for the broker"
    failures = [record.getMessage() for record in caplog.records
                if record.name.startswith("oslo_messaging.notify")
                and record.levelno >= logging.ERROR]
    # order.paid and credit.granted, each logged with its payload (by the
    # notifier or its driver, depending on where the connection failed).
    assert len(failures) == 2, failures
    assert all(order.id in text for text in failures)


def _host() -> str:
    import socket

    return socket.gethostname()
