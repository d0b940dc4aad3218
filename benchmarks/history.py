"""History growth: the cost of settling for a project with a long ledger history.

Two projects with the same open credits: one with ``small`` prior ledger
entries (and settlements), one with ``large``. Invoices of the same shape are
settled online (one transaction each) for each, interleaved; the figure is
per-invoice time with the large history divided by the time with the small
one. Nothing that settlement reads may scan a project's history.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from benchmarks import data, settlement
from ovh_credit_plugin.ledger import schema
from ovh_credit_plugin.ledger.database import create_engine

SMALL_PROJECT = "bench-history-small"
LARGE_PROJECT = "bench-history-large"


def seed_history(url: str, project_id: str, entries: int) -> None:
    """A project with one exhausted credit carrying ``entries`` debits, and a live credit."""
    engine = create_engine(url)
    at = data.GRANTED_AT
    amount = Decimal("0.010000")
    try:
        with engine.begin() as conn:
            conn.execute(schema.projects.insert().values(id=project_id, currency=data.CURRENCY,
                                                         created_at=at))
            old_total = amount * entries
            old = conn.execute(schema.credits.insert().values(
                project_id=project_id, kind="purchased", source=f"{project_id}-old",
                description="history", currency=data.CURRENCY, products="[]",
                total=old_total, used=old_total, expired=Decimal(0), voided=Decimal(0),
                available=Decimal(0), valid_from=at, valid_until=None, created_at=at,
            )).inserted_primary_key[0]
            live = Decimal(10) ** 9
            conn.execute(schema.credits.insert().values(
                project_id=project_id, kind="purchased", source=f"{project_id}-live",
                description="live", currency=data.CURRENCY, products="[]",
                total=live, used=Decimal(0), expired=Decimal(0), voided=Decimal(0),
                available=live, valid_from=at, valid_until=None, created_at=at,
            ))
            live_id = conn.execute(sa.select(sa.func.max(schema.credits.c.id))).scalar_one()
            conn.execute(schema.ledger_entries.insert(), [
                {"credit_id": old, "type": "grant", "amount": old_total, "note": "old",
                 "created_at": at},
                {"credit_id": live_id, "type": "grant", "amount": live, "note": "live",
                 "created_at": at},
            ])
            # Prior invoices: one debit entry and one settlement each.
            for start in range(0, entries, 10000):
                count = min(10000, entries - start)
                keys = [f"invoice/{project_id}/old-{n}" for n in range(start, start + count)]
                conn.execute(schema.ledger_entries.insert(), [
                    {"credit_id": old, "type": "debit", "amount": amount, "settlement_key": k,
                     "line_id": "l0", "note": "", "created_at": at}
                    for k in keys
                ])
                conn.execute(schema.settlements.insert(), [
                    {"key": k, "project_id": project_id, "invoice_id": k.rsplit("/", 1)[1],
                     "currency": data.CURRENCY, "total": amount, "credit_applied": amount,
                     "amount_due": Decimal(0), "fingerprint": "0" * 64,
                     "allocations": json.dumps([["l0", old, "purchased", str(amount)]]),
                     "revision": 1, "settled_at": at, "created_at": at, "updated_at": at}
                    for k in keys
                ])
    finally:
        engine.dispose()


def _docs(project_id: str, count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    docs = []
    for n in range(count):
        doc = data.invoice(n, 0, rng, month="2026-02",
                           issued_at=data.ISSUED_AT + dt.timedelta(days=1))
        doc["project_id"] = project_id
        docs.append(doc)
    return docs


def measure(workdir: Path, *, small: int, large: int, invoices: int,
            reps: int) -> dict[str, Any]:
    path = workdir / "history.sqlite"
    data.copy_ledger(workdir / "empty.sqlite", path)
    url = data.sqlite_url(path)
    seed_history(url, SMALL_PROJECT, small)
    seed_history(url, LARGE_PROJECT, large)
    data.checkpoint(path)
    ratios, small_ms, large_ms = [], [], []
    for rep in range(reps):
        # Same shapes for both projects; new invoice ids each repetition.
        docs_small = _docs(SMALL_PROJECT, invoices, seed=rep)
        docs_large = _docs(LARGE_PROJECT, invoices, seed=rep)
        for docs in (docs_small, docs_large):
            for n, doc in enumerate(docs):
                doc["id"] = f"rep{rep}-{n}"
        host = settlement.processor(url)
        try:
            times = {SMALL_PROJECT: 0.0, LARGE_PROJECT: 0.0}
            for a, b in zip(docs_small, docs_large, strict=True):
                for doc in (a, b) if rep % 2 == 0 else (b, a):
                    started = time.perf_counter()
                    host.process(doc)
                    times[doc["project_id"]] += time.perf_counter() - started
        finally:
            host.service.close()
        small_ms.append(times[SMALL_PROJECT] / invoices * 1000)
        large_ms.append(times[LARGE_PROJECT] / invoices * 1000)
        ratios.append(times[LARGE_PROJECT] / times[SMALL_PROJECT])
    return {"small_ms": small_ms, "large_ms": large_ms, "ratios": ratios}
