"""Deterministic benchmark data: projects, their credits, and invoices to settle.

The same generated data feeds our code and the floor. Ledgers are seeded with
SQLAlchemy Core straight into a migrated schema (fast, and not what is
measured), with a grant entry per credit so that the ledger stays consistent
(``ovh-credit audit`` passes on it).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ovh_credit_plugin.ledger import migration, schema
from ovh_credit_plugin.ledger.database import create_engine

UTC = dt.timezone.utc
#: When credits were granted, and when the month-end invoices are issued.
GRANTED_AT = dt.datetime(2026, 1, 1, tzinfo=UTC)
ISSUED_AT = dt.datetime(2026, 1, 31, 23, 0, tzinfo=UTC)
PRODUCTS = ("compute", "storage", "network", "gpu", "database", "object-storage")
CURRENCY = "EUR"


@dataclass(frozen=True)
class CreditSpec:
    project_id: str
    kind: str
    source: str
    amount: Decimal
    products: tuple[str, ...]
    valid_until: dt.datetime | None


def project_id(number: int) -> str:
    return f"bench-project-{number:07d}"


def credits_for(projects: int, *, seed: int = 7) -> list[CreditSpec]:
    """1-5 credits per project: vouchers (a third of them scoped) and purchased credit."""
    rng = random.Random(seed)
    specs = []
    for number in range(projects):
        pid = project_id(number)
        for index in range(rng.randint(1, 5)):
            kind = "voucher" if rng.random() < 0.5 else "purchased"
            scoped = kind == "voucher" and rng.random() < 0.33
            products = tuple(sorted(rng.sample(PRODUCTS, rng.randint(1, 2)))) if scoped else ()
            days = rng.choice((30, 90, 395, None)) if kind == "voucher" else 395
            specs.append(
                CreditSpec(
                    project_id=pid,
                    kind=kind,
                    source=f"{kind}-{number}-{index}",
                    amount=Decimal(rng.randint(5, 400)) + Decimal(rng.randint(0, 99)) / 100,
                    products=products,
                    valid_until=GRANTED_AT + dt.timedelta(days=days) if days else None,
                )
            )
    return specs


def invoice(number: int, project: int, rng: random.Random, *, month: str = "2026-01",
            issued_at: dt.datetime = ISSUED_AT) -> dict[str, Any]:
    """One invoice document of the contract, as a host hands it over (parsed JSON)."""
    lines = [
        {
            "id": f"l{line}",
            "product": rng.choice(PRODUCTS),
            "amount": f"{rng.randint(0, 60)}.{rng.randint(0, 99):02d}"
            if rng.random() < 0.8 else f"{rng.randint(0, 3)}.{rng.randint(1, 999999):06d}",
        }
        for line in range(rng.randint(1, 20))
    ]
    for line in lines:
        if Decimal(line["amount"]) == 0:
            line["amount"] = "0.01"
    return {
        "id": f"inv-{month}-{number:08d}",
        "project_id": project_id(project),
        "currency": CURRENCY,
        "issued_at": issued_at.isoformat().replace("+00:00", "Z"),
        "lines": lines,
    }


def invoices(count: int, projects: int, *, seed: int = 11, start: int = 0,
             month: str = "2026-01") -> Iterator[dict[str, Any]]:
    """``count`` invoices spread over ``projects`` projects (one each when equal)."""
    rng = random.Random(seed + start)
    for number in range(start, start + count):
        yield invoice(number, number % projects, rng, month=month)


def new_ledger(url: str) -> sa.Engine:
    engine = create_engine(url)
    migration.upgrade(engine)
    return engine


def seed(url: str, specs: list[CreditSpec]) -> None:
    """Write projects, credits and their grant entries in one transaction."""
    engine = new_ledger(url)
    try:
        with engine.begin() as conn:
            projects = sorted({s.project_id for s in specs})
            for start in range(0, len(projects), 5000):
                conn.execute(
                    schema.projects.insert(),
                    [{"id": p, "currency": CURRENCY, "created_at": GRANTED_AT}
                     for p in projects[start:start + 5000]],
                )
            rows = [
                {
                    "project_id": s.project_id, "kind": s.kind, "source": s.source,
                    "description": f"benchmark {s.kind}", "currency": CURRENCY,
                    "products": json.dumps(list(s.products)), "total": s.amount,
                    "used": Decimal(0), "expired": Decimal(0), "voided": Decimal(0),
                    "available": s.amount, "valid_from": GRANTED_AT,
                    "valid_until": s.valid_until, "created_at": GRANTED_AT,
                }
                for s in specs
            ]
            for start in range(0, len(rows), 5000):
                conn.execute(schema.credits.insert(), rows[start:start + 5000])
            ids = conn.execute(
                sa.select(schema.credits.c.id, schema.credits.c.total, schema.credits.c.kind,
                          schema.credits.c.source)
            ).all()
            entries = [
                {"credit_id": r.id, "type": "grant", "amount": r.total,
                 "note": f"{r.kind} {r.source}", "created_at": GRANTED_AT}
                for r in ids
            ]
            for start in range(0, len(entries), 5000):
                conn.execute(schema.ledger_entries.insert(), entries[start:start + 5000])
            # Purchased credit is an order's, paid (the audit holds every one to it).
            owners = {(s.kind, s.source): s.project_id for s in specs}
            orders = [
                {"id": r.source, "project_id": owners[r.kind, r.source], "amount": r.total,
                 "currency": CURRENCY, "status": "paid", "created_at": GRANTED_AT,
                 "expires_at": GRANTED_AT + dt.timedelta(days=7), "paid_at": GRANTED_AT,
                 "payment_url": "", "credit_id": r.id}
                for r in ids if r.kind == "purchased"
            ]
            for start in range(0, len(orders), 5000):
                conn.execute(schema.orders.insert(), orders[start:start + 5000])
    finally:
        engine.dispose()


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def checkpoint(path: Path) -> None:
    """Fold the WAL into the main file, so that a plain file copy is the whole ledger."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def copy_ledger(template: Path, target: Path) -> Path:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(template, target)
    return target
