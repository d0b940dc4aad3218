"""Revision 0005 (CHECK constraints on amounts) on ledgers that already hold data, on
every backend.

0005 adds the checks to tables full of credits, entries, orders and
settlements written by the code of 0004, leaves every row as it was, and
from then on the database itself refuses a row that breaks them: a negative
amount, a credit whose figures do not add up to its total, a settlement
whose credit applied and amount due do not add up to its total.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ovh_credit_plugin import exceptions, models
from ovh_credit_plugin.ledger import migration, schema
from ovh_credit_plugin.service import CreditService
from tests.support.ledgers import Ledger, engine_of

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
KEYS = "0004_voucher_attempt_keys"
AMOUNT_TABLES = ("cloud_credit_credits", "cloud_credit_ledger_entries", "cloud_credit_orders",
                 "cloud_credit_settlements")


@contextmanager
def code_of_revision(revision: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The service runs as the release whose newest migration is ``revision``.

    This release's code needs only 0004's columns to write what 0005 checks:
    seeding "through the service" on a ledger at 0004 is what an operator
    upgrading from that release has.
    """
    with monkeypatch.context() as patch:
        patch.setattr(migration, "head", lambda: revision)
        yield


def invoice(invoice_id: str, project: str, currency: str, *amounts: str) -> models.Invoice:
    return models.Invoice.model_validate({
        "id": invoice_id, "project_id": project, "currency": currency,
        "issued_at": "2026-03-01T00:00:00Z",
        "lines": [{"id": f"l{n}", "product": "compute", "amount": amount}
                  for n, amount in enumerate(amounts)],
    })


def seed(service: CreditService) -> None:
    """What a ledger in use holds: paid, pending and cancelled orders, vouchers, settled
    invoices with sub-cent lines, a voided credit, an expired one, failed voucher tries."""
    paid = service.pay_order(service.create_order("p1", "100", at=T0).id, at=T0)
    assert paid.credit_id is not None
    service.activate_voucher("p1", "WELCOME-2026", at=T0)
    service.settle_invoice(invoice("INV-1", "p1", "EUR", "30.000001", "12.5"),
                           at=dt.datetime(2026, 3, 1, tzinfo=UTC))
    service.settle_invoice(invoice("INV-2", "p1", "EUR", "200"),  # more than the credit
                           at=dt.datetime(2026, 3, 2, tzinfo=UTC))
    voided = service.pay_order(service.create_order("p2", "20", at=T0).id, at=T0)
    service.void_credit(voided.credit_id, reason="charge-back", at=T0)
    service.create_order("p2", "15", at=T0)  # pending
    service.cancel_order(service.create_order("p2", "16", at=T0).id, at=T0)
    service.pay_order(service.create_order("p3", "5000", currency="JPY", at=T0).id, at=T0)
    service.settle_invoice(invoice("INV-3", "p3", "JPY", "1234"),
                           at=dt.datetime(2026, 3, 1, tzinfo=UTC))
    service.activate_voucher("p4", "WELCOME-2026", at=T0)
    service.expire(at=dt.datetime(2026, 6, 1, tzinfo=UTC))  # the voucher's 90 days are over
    for n in range(2):
        with pytest.raises(exceptions.VoucherRefused):
            service.activate_voucher("p5", f"NOPE-{n}", at=T0)


def rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables 0004 and 0005 change (0004's new columns left out)."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in (schema.credits, schema.ledger_entries, schema.orders,
                      schema.settlements):
            key = next(iter(table.primary_key.columns))
            found[table.name] = [tuple(r) for r in conn.execute(
                sa.select(table).order_by(key))]
        attempts = schema.voucher_attempts.c
        found[schema.voucher_attempts.name] = [tuple(r) for r in conn.execute(
            sa.select(attempts.id, attempts.project_id, attempts.succeeded, attempts.reason,
                      attempts.created_at).order_by(attempts.id))]
    return found


def refused(engine: Engine, statement: Any, params: dict[str, Any] | None = None) -> None:
    """The database refuses the statement (a CHECK), and nothing changes."""
    with pytest.raises(sa.exc.DBAPIError) as raised, engine.begin() as conn:
        conn.execute(statement, params or {})
    error = raised.value
    if isinstance(error, sa.exc.OperationalError) and engine.dialect.name != "sqlite":
        # MariaDB: a failed CHECK is error 4025, SQLSTATE 23000, which pymysql
        # files under OperationalError.
        assert error.orig.args[0] == 4025, error
    else:
        assert isinstance(error, sa.exc.IntegrityError), error
    assert "check" in str(error.orig).lower() or "4025" in str(error.orig), error


def raw_amount(engine: Engine, value: Decimal) -> Any:
    """``value`` as the column stores it, sign included (the Money type refuses a negative)."""
    return format(value, "029.6f") if engine.dialect.name == "sqlite" else value


def test_0005_adds_the_checks_to_a_ledger_with_data_and_keeps_every_row(
    unmigrated: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    with engine_of(unmigrated) as engine:
        migration.upgrade(engine, KEYS)
        with code_of_revision(KEYS, monkeypatch):
            service = unmigrated.service()
            try:
                seed(service)
            finally:
                service.close()
        before = rows(engine)
        assert len(before["cloud_credit_credits"]) == 5
        assert len(before["cloud_credit_settlements"]) == 3
        migration.upgrade(engine)
        assert migration.current(engine) == migration.head()
        assert rows(engine) == before
        service = unmigrated.service()
        try:
            assert service.audit().ok
            # The code of this release goes on writing on the migrated ledger.
            settled = service.settle_invoice(invoice("INV-9", "p1", "EUR", "0.000001"),
                                             at=dt.datetime(2026, 3, 3, tzinfo=UTC))
            assert settled.amount_due == Decimal("0.000001")  # the credit is used up
        finally:
            service.close()

        credits = schema.credits
        with engine.connect() as conn:
            credit = conn.execute(sa.select(credits).where(credits.c.available > Decimal(0))
                                  .order_by(credits.c.id)).first()
        assert credit is not None and credit.available > 1
        by_id = credits.c.id == credit.id
        # Figures that no longer add up to the total.
        refused(engine, credits.update().where(by_id).values(available=credit.available + 1))
        refused(engine, credits.update().where(by_id).values(total=credit.total + 1))
        # Figures that add up, one of them negative.
        refused(engine, sa.text("UPDATE cloud_credit_credits SET used = :used, "
                                "available = :available WHERE id = :id"),
                {"used": raw_amount(engine, Decimal(-1)),
                 "available": raw_amount(engine, credit.available + credit.used + 1),
                 "id": credit.id})
        refused(engine, sa.text("UPDATE cloud_credit_ledger_entries SET amount = :amount"),
                {"amount": raw_amount(engine, Decimal("-0.000001"))})
        refused(engine, sa.text("UPDATE cloud_credit_orders SET amount = :amount"),
                {"amount": raw_amount(engine, Decimal(-5))})
        settlements = schema.settlements
        with engine.connect() as conn:
            settlement = conn.execute(sa.select(settlements).order_by(settlements.c.key)).first()
        assert settlement is not None
        refused(engine, settlements.update().where(settlements.c.key == settlement.key)
                .values(amount_due=settlement.amount_due + Decimal("0.000001")))

        # The control: an UPDATE that keeps the invariants goes through.
        with engine.begin() as conn:
            conn.execute(credits.update().where(by_id).values(
                used=credit.used + 1, available=credit.available - 1))
            conn.rollback()

        # And back: 0005 goes, the rows stay; up again.
        current = rows(engine)
        migration.downgrade(engine, KEYS)
        assert rows(engine) == current
        inspector = sa.inspect(engine)
        assert not any(c["name"].endswith(("_balances", "_amount", "_amounts"))
                       for table in AMOUNT_TABLES
                       for c in inspector.get_check_constraints(table))
        migration.upgrade(engine)


def test_a_ledger_that_breaks_a_check_stops_0005_at_that_table(
    unmigrated: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    with engine_of(unmigrated) as engine:
        migration.upgrade(engine, KEYS)
        with code_of_revision(KEYS, monkeypatch):
            service = unmigrated.service()
            try:
                credit_id = service.pay_order(service.create_order("p1", "10", at=T0).id,
                                              at=T0).credit_id
            finally:
                service.close()
        credits = schema.credits
        with engine.begin() as conn:  # a hand-made change, which the audit reports too
            conn.execute(credits.update().where(credits.c.id == credit_id)
                         .values(available=Decimal(11)))
        with pytest.raises(sa.exc.DBAPIError) as raised:
            migration.upgrade(engine)
        assert "balances" in str(raised.value) or "4025" in str(raised.value.orig)
        assert migration.current(engine) == KEYS
        with engine.begin() as conn:  # repaired
            conn.execute(credits.update().where(credits.c.id == credit_id)
                         .values(available=Decimal(10)))
        migration.upgrade(engine)
        assert migration.current(engine) == migration.head()


def test_the_migrated_checks_are_the_declared_ones(unmigrated: Ledger) -> None:
    """alembic's comparison leaves CHECK constraints out: compared here, by name, on
    each backend (the SQL differs: SQLite's sums go through integers)."""
    with engine_of(unmigrated) as engine:
        migration.upgrade(engine)
        inspector = sa.inspect(engine)
        for table in schema.metadata.sorted_tables:
            declared = {c.name for c in table.constraints
                        if isinstance(c, sa.CheckConstraint) and c.name}
            found = {c["name"] for c in inspector.get_check_constraints(table.name)}
            assert found == declared, table.name


def test_0005_stopped_at_a_later_table_runs_again_once_repaired(
    unmigrated: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/operations.md: a ledger that breaks a constraint stops 0005 at that table,
    the schema left at 0004: repair it and run `db upgrade` again. MariaDB commits each
    ALTER, so the checks of the tables before the broken one are already there."""
    with engine_of(unmigrated) as engine:
        migration.upgrade(engine, KEYS)
        with monkeypatch.context() as patch:
            patch.setattr(migration, "head", lambda: KEYS)
            service = unmigrated.service()
            try:
                service.pay_order(service.create_order("p1", "10", at=T0).id, at=T0)
                service.settle_invoice(models.Invoice.model_validate({
                    "id": "INV-1", "project_id": "p1", "currency": "EUR",
                    "issued_at": "2026-03-01T00:00:00Z",
                    "lines": [{"id": "l1", "product": "compute", "amount": "4"}],
                }), at=dt.datetime(2026, 3, 1, tzinfo=UTC))
            finally:
                service.close()
        settlements = schema.settlements
        with engine.begin() as conn:  # a hand-made change to the last table 0005 checks
            conn.execute(settlements.update().values(amount_due=Decimal(1)))
        with pytest.raises(sa.exc.DBAPIError):
            migration.upgrade(engine)
        assert migration.current(engine) == KEYS
        with engine.begin() as conn:  # repaired
            conn.execute(settlements.update().values(amount_due=Decimal(0)))
        migration.upgrade(engine)
        assert migration.current(engine) == migration.head()
        inspector = sa.inspect(engine)
        names = {c["name"] for c in inspector.get_check_constraints("cloud_credit_credits")}
        assert "ck_cloud_credit_credits_balances" in names
