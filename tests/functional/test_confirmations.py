"""50 concurrent confirmations of one payment, from 50 processes, on each backend.

A payment system's webhook may fire many times at once for one payment. 50
processes (a ``forkserver`` with the plugin preloaded: each child opens its own
connections) are released together by a barrier and confirm the same order.
Exactly one credit must exist afterwards, with one grant entry, and the 50
answers must be identical; ``audit`` is clean.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.support import workload
from tests.support.ledgers import Ledger

CONFIRMATIONS = 50
CREATED = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.timezone.utc)
PAID = CREATED + dt.timedelta(hours=1)


def test_fifty_concurrent_confirmations_create_one_credit(ledger: Ledger) -> None:
    confirm_race(ledger, [ledger.config])


def confirm_race(ledger: Ledger, configs: Sequence[Path],
                 confirmations: int = CONFIRMATIONS) -> None:
    """The race, process I configured by ``configs[I % len(configs)]`` (Galera: per node)."""
    service = ledger.service()
    order = service.create_order("project-50", "42.50", currency="EUR", at=CREATED)
    service.close()

    context = workload.fork_context()
    barrier = context.Barrier(confirmations)
    results = context.Queue()
    processes = [
        context.Process(
            target=workload.confirm_payment,
            args=(str(configs[n % len(configs)]), order.id, "42.50", "EUR", PAID, barrier,
                  results),
        )
        for n in range(confirmations)
    ]
    for process in processes:
        process.start()
    answers = [results.get(timeout=300) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0

    errors = [text for kind, text, _ in answers if kind == "error"]
    assert not errors, errors
    assert len({pid for _, _, pid in answers}) == confirmations  # as many processes
    distinct = {text for _, text, _ in answers}
    assert len(distinct) == 1, distinct
    paid = json.loads(distinct.pop())
    assert paid["status"] == "paid"
    assert paid["paid_at"] == "2026-03-01T10:00:00Z"
    assert paid["credit_id"] is not None

    service = ledger.service()
    try:
        credits = service.list_credits("project-50", at=PAID)
        assert [(c.id, c.kind, c.source, c.total) for c in credits] == [
            (paid["credit_id"], "purchased", order.id, credits[0].total)
        ]
        assert str(credits[0].total) in ("42.50", "42.500000", "42.5")
        grants = _grants(service)
        assert grants == [(paid["credit_id"], "grant")]
        report = service.audit()
        assert report.ok, report.violations
    finally:
        service.close()


def _grants(service: Any) -> list[tuple[int, str]]:
    from ovh_credit_plugin.ledger import schema

    table = schema.ledger_entries
    return service.database.read(
        lambda conn: [tuple(r) for r in conn.execute(sa.select(table.c.credit_id, table.c.type))]
    )
