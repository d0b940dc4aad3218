"""The expiry job with the message bus down: it expires every credit, and does not stall.

oslo.messaging does not raise when a send fails: each ``credit.expired`` waits out
the transport's retries first (about 4 s each with rabbit's defaults and
``retry`` 2, the plugin's bound), then is logged and dropped. A job that tried
every one of a thousand credits ending the same day would run for more than an
hour, its log an ERROR per credit. Once a send failed the transport is down for
the rest of the run: the job stops trying, still expires everything, and says in
one line per batch which notifications were lost.

The service runs with oslo.messaging's ``test`` driver, configured as an operator
does; a broker that cannot be reached is that driver raising.
"""

from __future__ import annotations

import datetime as dt
import logging
import warnings
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from tests.support.ledgers import T0, Ledger

with warnings.catch_warnings():  # oslo.service's about eventlet: not ours
    warnings.simplefilter("ignore")
    from oslo_messaging.notify import _impl_test

PAID_UNTIL = dt.datetime(2027, 2, 28, 10, 0, tzinfo=dt.timezone.utc)  # T0 + 13 months


@pytest.fixture
def backend() -> str:
    # What is sent does not depend on the database; the job's SQL is tested on
    # every backend in test_boundaries.py.
    return "sqlite"


@pytest.fixture
def bus_down(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Every send fails (a broker down past ``retry``); the credit ids it was asked to send."""
    _impl_test.reset()
    with ledger.config.open("a") as config:
        config.write("[oslo_messaging_notifications]\ndriver = test\n")
    tried: list[Any] = []

    def notify(self: Any, ctxt: Any, message: Any, priority: Any, retry: Any) -> None:
        tried.append(message["payload"].get("credit_id"))
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(_impl_test.TestDriver, "notify", notify)
    yield tried
    _impl_test.reset()


def test_the_expiry_job_stops_sending_once_the_bus_failed_and_expires_everything(
    ledger: Ledger, bus_down: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    service = ledger.service()
    try:
        credit_ids = []
        for n in range(5):
            order = service.create_order(f"p{n}", "10", at=T0)
            credit_ids.append(service.pay_order(order.id, at=T0).credit_id)
        bus_down.clear()  # the grants' sends: not the expiry job's
        caplog.set_level(logging.WARNING, logger="ovh_credit_plugin")
        caplog.clear()

        summary = service.expire(at=PAID_UNTIL + dt.timedelta(days=1), batch_size=2)

        # Every credit expired, whatever the bus did.
        assert (summary.credits_expired, summary.amount_expired) == (5, {"EUR": Decimal(50)})
        # One send tried (and waited for), not one per credit.
        assert len(bus_down) == 1
        lost = [r.getMessage() for r in caplog.records
                if r.name.startswith("ovh_credit_plugin") and r.levelno == logging.ERROR]
        # Each notification is named as lost, in one line per batch.
        assert len(lost) == 3
        named = " ".join(lost)
        for credit_id in credit_ids:
            assert f"credit {credit_id}," in named
        assert all("cloud_credit.credit.expired" in line for line in lost)
    finally:
        service.close()
