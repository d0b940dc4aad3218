"""The invoice processor as a threaded host uses it: one instance, many threads.

A host loads the processor once (stevedore) and hands invoices to it from
the threads of its worker pool. The service behind it (engine, connection
pool, notification transport) is built on the first invoice: threads that
bring their first invoices at once must share one, not each build its own
and leave all but one undisposed.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest
from oslo_config import cfg

from ovh_credit_plugin.hosts.invoice import InvoiceProcessor
from ovh_credit_plugin.service import CreditService
from tests.support.ledgers import Ledger

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
THREADS = 6


def test_threads_bringing_the_first_invoices_at_once_share_one_service(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = cfg.ConfigOpts()
    processor = InvoiceProcessor(conf=conf)
    conf(args=[], default_config_files=[str(ledger.config)])
    built: list[CreditService] = []
    real = CreditService.from_conf.__func__  # type: ignore[attr-defined]

    def from_conf(cls: type[CreditService], *args: Any, **kwargs: Any) -> CreditService:
        # The real service, built as slowly as on a loaded host (its imports
        # and engine take milliseconds): the window the other threads race into.
        time.sleep(0.05)
        service: CreditService = real(cls, *args, **kwargs)
        built.append(service)
        return service

    monkeypatch.setattr(CreditService, "from_conf", classmethod(from_conf))
    barrier = threading.Barrier(THREADS)
    results: list[Any] = []

    def work(number: int) -> None:
        barrier.wait(timeout=30)
        results.append(processor.process(
            {"id": f"INV-{number}", "project_id": "p1", "currency": "EUR",
             "issued_at": "2026-02-01T00:00:00Z",
             "lines": [{"id": "1", "product": "instance", "amount": "1.00"}]},
            at=T0))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert len(results) == THREADS
        assert len(built) == 1, f"{len(built)} services built, one kept"
        assert processor.service is built[0]
    finally:
        for service in built:
            service.close()
