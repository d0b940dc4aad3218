"""Our settlement path, as a host calls it: parsed invoice dicts through the InvoiceProcessor.

Batch: ``InvoiceProcessor.process_many(dicts, batch_size=1000)`` (pydantic
validation, ``CreditService.settle_invoices``, one transaction per batch,
JSON-ready dicts out). Online: ``InvoiceProcessor.process(dict)`` per
invoice, one transaction each. The service is built before the clock starts
(engine, schema check), as a long-running host holds it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from oslo_config import cfg

from ovh_credit_plugin.conf import register_opts
from ovh_credit_plugin.hosts.invoice import InvoiceProcessor
from ovh_credit_plugin.ledger.database import Database, create_engine
from ovh_credit_plugin.service import CreditService


def processor(url: str) -> InvoiceProcessor:
    conf = cfg.ConfigOpts()
    register_opts(conf)
    conf(args=[], default_config_files=[])
    service = CreditService(database=Database(create_engine(url)))
    service.database.ensure_schema()
    service.project_currency("warm-up")  # opens the pooled connection
    return InvoiceProcessor(conf, service=service)


def batch(url: str, docs: Sequence[dict[str, Any]], batch_size: int) -> float:
    """Seconds to settle ``docs`` in batches of ``batch_size``."""
    host = processor(url)
    try:
        started = time.perf_counter()
        count = sum(1 for _ in host.process_many(docs, batch_size=batch_size))
        elapsed = time.perf_counter() - started
    finally:
        host.service.close()
    assert count == len(docs)
    return elapsed


def service_batch(url: str, invoices: Sequence[Any], batch_size: int) -> float:
    """Seconds for ``CreditService.settle_invoices`` on pre-built ``Invoice`` models."""
    host = processor(url)
    try:
        started = time.perf_counter()
        count = sum(1 for _ in host.service.settle_invoices(invoices, batch_size=batch_size))
        elapsed = time.perf_counter() - started
    finally:
        host.service.close()
    assert count == len(invoices)
    return elapsed


def online(url: str, docs: Sequence[dict[str, Any]]) -> float:
    """Seconds to settle ``docs`` one durable transaction each."""
    host = processor(url)
    try:
        started = time.perf_counter()
        for doc in docs:
            host.process(doc)
        elapsed = time.perf_counter() - started
    finally:
        host.service.close()
    return elapsed


class Ours:
    """Our path on one long-lived processor, settling chunk after chunk."""

    def __init__(self, url: str) -> None:
        self.host = processor(url)

    def settle(self, docs: Sequence[dict[str, Any]], batch_size: int) -> float:
        started = time.perf_counter()
        if batch_size == 1:
            for doc in docs:
                self.host.process(doc)
        else:
            for _ in self.host.process_many(docs, batch_size=batch_size):
                pass
        return time.perf_counter() - started

    def close(self) -> None:
        self.host.service.close()
