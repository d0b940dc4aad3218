"""The expiry job's summary, batches and ledger entries (mutants that survived, issue 16).

Several credits of one currency end, the job runs in batches smaller than
their number: what it reports adds up over credits and batches, the progress
callback hears each batch, and each expiry entry says until when the credit
was valid. On SQLite (the job's SQL is checked on every backend in
test_boundaries.py).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from ovh_credit_plugin import contracts
from ovh_credit_plugin.service import CreditService

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
LATER = T0 + dt.timedelta(days=800)


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_the_summary_adds_up_over_credits_and_batches(service: CreditService) -> None:
    granted = []
    for n, amount in enumerate(("10", "20", "30.5")):
        order = service.create_order("p1", amount, at=T0 + dt.timedelta(hours=n))
        granted.append(service.pay_order(order.id, at=T0 + dt.timedelta(hours=n)))
    yen = service.create_order("y1", "1000", currency="JPY", at=T0)
    granted.append(service.pay_order(yen.id, at=T0))
    heard: list[int] = []

    summary = service.expire(at=LATER, batch_size=2, progress=heard.append)

    assert summary.at == LATER
    assert summary.credits_expired == 4
    assert summary.amount_expired == {"EUR": Decimal("60.5"), "JPY": Decimal(1000)}
    assert heard == [2, 2]  # EUR in both batches
    for order in granted:
        assert order.credit_id is not None
        credit, entries = service.show_credit(order.credit_id, at=LATER)
        expiry = [e for e in entries if e.type == "expiry"]
        assert [(e.amount, e.note) for e in expiry] == [
            (credit.total, f"valid until {contracts.isoformat(credit.valid_until)}")]
    # Nothing left: a second run finds nothing and says so.
    again = service.expire(at=LATER, batch_size=2, progress=heard.append)
    assert (again.credits_expired, again.amount_expired, heard) == (0, {}, [2, 2])
