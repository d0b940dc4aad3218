"""``ovh-credit audit`` finds a ledger changed by hand, on every backend.

Each test makes a ledger whose every figure the audit used to check still
agrees (balances add up and match their entries, settlements add up and match
their keys' net debits), yet money went where no operation of the plugin puts it:

- a credit row deleted (``sqlite3`` does not enforce foreign keys): its entries
  name no credit;
- a settlement's allocation names a credit that does not exist;
- a settlement's debits moved to another credit of the project, or to a credit of
  another project (allocations changed to match);
- a debit without a settlement key, its balance lowered to match: credit spent on
  nothing;
- a second grant on a voucher credit, its balance raised to match: money from nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ovh_credit_plugin import models
from ovh_credit_plugin.ledger import schema
from ovh_credit_plugin.service import CreditService
from tests.support.cli import Cli
from tests.support.ledgers import Ledger

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
T_SETTLE = dt.datetime(2026, 3, 1, tzinfo=UTC)
KEY = "invoice/p1/INV-1"

pytestmark = pytest.mark.tampers_ledger

_C, _E, _S = schema.credits.c, schema.ledger_entries.c, schema.settlements.c


def _invoice(invoice_id: str, project: str, amount: str) -> models.Invoice:
    return models.Invoice.model_validate({
        "id": invoice_id, "project_id": project, "currency": "EUR",
        "issued_at": "2026-03-01T00:00:00Z",
        "lines": [{"id": "l1", "product": "compute", "amount": amount}],
    })


def _paid_credit(service: CreditService, project: str, amount: str = "10") -> int:
    credit_id = service.pay_order(service.create_order(project, amount, at=T0).id,
                                  at=T0).credit_id
    assert credit_id is not None
    return credit_id


@contextmanager
def _by_hand(ledger: Ledger, *, foreign_keys: bool = True) -> Iterator[Connection]:
    """A connection of someone editing the ledger's tables by hand."""
    engine = sa.create_engine(ledger.url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            if not foreign_keys:
                # What the sqlite3 shell does by default; on a server, its
                # administrator has to ask for it (or drop the constraints).
                if ledger.backend == "postgresql":
                    _drop_foreign_keys_to_credits(conn)
                elif ledger.backend == "mariadb":
                    conn.execute(sa.text("SET foreign_key_checks = 0"))
            elif ledger.backend == "sqlite":
                conn.execute(sa.text("PRAGMA foreign_keys = ON"))
            yield conn
    finally:
        engine.dispose()


def _drop_foreign_keys_to_credits(conn: Connection) -> None:
    inspector = sa.inspect(conn)
    for table in inspector.get_table_names():
        for key in inspector.get_foreign_keys(table):
            if key["referred_table"] == schema.credits.name:
                conn.execute(sa.text(f'ALTER TABLE {table} DROP CONSTRAINT "{key["name"]}"'))


def _spend(conn: Connection, credit_id: int, amount: Decimal) -> None:
    """``amount`` moved from ``available`` to ``used``: the row still adds up."""
    conn.execute(sa.update(schema.credits).where(_C.id == credit_id).values(
        used=_C.used + amount, available=_C.available - amount))


def _give_back(conn: Connection, credit_id: int, amount: Decimal) -> None:
    conn.execute(sa.update(schema.credits).where(_C.id == credit_id).values(
        used=_C.used - amount, available=_C.available + amount))


def _violations(service: CreditService) -> list[str]:
    report = service.audit()
    assert not report.ok, "the audit did not see the tampering"
    return report.violations


def test_entries_of_a_deleted_credit(service: CreditService, ledger: Ledger) -> None:
    credit = service.activate_voucher("p1", "WELCOME-2026", at=T0)
    assert service.audit().ok
    with _by_hand(ledger, foreign_keys=False) as conn:
        conn.execute(sa.delete(schema.credits).where(_C.id == credit.id))
    assert any(f"credit {credit.id}" in v and "no such credit" in v
               for v in _violations(service))


def test_an_allocation_to_a_credit_that_does_not_exist(
        service: CreditService, ledger: Ledger) -> None:
    credit_id = _paid_credit(service, "p1")
    service.settle_invoice(_invoice("INV-1", "p1", "4"), at=T_SETTLE)
    missing = credit_id + 1000
    with _by_hand(ledger) as conn:
        text = conn.execute(sa.select(_S.allocations).where(_S.key == KEY)).scalar_one()
        allocations = json.loads(text)
        allocations[0][1] = missing
        conn.execute(sa.update(schema.settlements).where(_S.key == KEY)
                     .values(allocations=json.dumps(allocations)))
    violations = _violations(service)
    assert any(KEY in v and f"credit {missing}" in v for v in violations), violations


def test_debits_moved_to_another_credit_of_the_project(
        service: CreditService, ledger: Ledger) -> None:
    voucher = service.activate_voucher("p1", "WELCOME-2026", at=T0).id
    purchased = _paid_credit(service, "p1")
    settled = service.settle_invoice(_invoice("INV-1", "p1", "4"), at=T_SETTLE)
    assert [a.credit_id for a in settled.allocations] == [voucher]  # vouchers first
    with _by_hand(ledger) as conn:
        conn.execute(sa.update(schema.ledger_entries).where(_E.settlement_key == KEY)
                     .values(credit_id=purchased))
        _give_back(conn, voucher, Decimal(4))
        _spend(conn, purchased, Decimal(4))
    violations = _violations(service)
    assert any(KEY in v and f"credit {purchased}" in v for v in violations), violations


def test_debits_moved_to_a_credit_of_another_project(
        service: CreditService, ledger: Ledger) -> None:
    mine = _paid_credit(service, "p1")
    theirs = _paid_credit(service, "p2")
    service.settle_invoice(_invoice("INV-1", "p1", "4"), at=T_SETTLE)
    with _by_hand(ledger) as conn:
        conn.execute(sa.update(schema.ledger_entries).where(_E.settlement_key == KEY)
                     .values(credit_id=theirs))
        _give_back(conn, mine, Decimal(4))
        _spend(conn, theirs, Decimal(4))
        text = conn.execute(sa.select(_S.allocations).where(_S.key == KEY)).scalar_one()
        conn.execute(sa.update(schema.settlements).where(_S.key == KEY).values(
            allocations=text.replace(f", {mine},", f", {theirs},")))
    violations = _violations(service)
    assert any(KEY in v and f"credit {theirs}" in v and "p2" in v for v in violations), \
        violations


def test_a_debit_that_pays_no_settlement(service: CreditService, ledger: Ledger) -> None:
    credit_id = _paid_credit(service, "p1")
    with _by_hand(ledger) as conn:
        conn.execute(sa.insert(schema.ledger_entries).values(
            credit_id=credit_id, type="debit", amount=Decimal("3"), settlement_key=None,
            line_id=None, note="", created_at=T_SETTLE))
        _spend(conn, credit_id, Decimal(3))
    violations = _violations(service)
    assert any(f"credit {credit_id}" in v and "settlement key" in v for v in violations), \
        violations


def test_a_second_grant_on_a_voucher_credit(service: CreditService, ledger: Ledger) -> None:
    credit = service.activate_voucher("p1", "WELCOME-2026", at=T0)
    with _by_hand(ledger) as conn:
        conn.execute(sa.insert(schema.ledger_entries).values(
            credit_id=credit.id, type="grant", amount=Decimal("1000"), settlement_key=None,
            line_id=None, note="", created_at=T0))
        conn.execute(sa.update(schema.credits).where(_C.id == credit.id).values(
            total=_C.total + Decimal(1000), available=_C.available + Decimal(1000)))
    violations = _violations(service)
    assert any(f"credit {credit.id}" in v and "grant" in v for v in violations), violations


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_command_exits_1_and_names_the_tampering(cli: Cli, ledger: Ledger) -> None:
    credit = cli.ok("voucher", "activate", "p1", "WELCOME-2026", "--at", "2026-01-31T10:00:00Z")
    with _by_hand(ledger, foreign_keys=False) as conn:
        conn.execute(sa.delete(schema.credits).where(_C.id == credit["id"]))
    result = cli("audit")
    assert result.code == 1
    assert result.stderr == "ovh-credit: audit found ledger violations\n"
    assert result.json()["ok"] is False
