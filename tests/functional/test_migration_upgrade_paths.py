"""`db upgrade` from every past revision to head, on a ledger that holds data, on every backend.

Each revision's ledger is filled with what its release wrote (rows of every table it
has: sub-unit and huge amounts, microsecond times, non-ASCII text, NULLs), then
upgraded. Afterwards every row is what it was (the columns later revisions add hold
what their migration says), the audit passes, the schema is the declared one
(alembic's comparison and the CHECK constraints, by name) and the code writes on it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine

from ovh_credit_plugin.ledger import migration, schema
from tests.support.ledgers import Ledger, engine_of, invoice

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 31, 10, 0, 0, 123456, tzinfo=UTC)
T1 = dt.datetime(2026, 2, 28, 23, 59, 59, 999999, tzinfo=UTC)
LATER = dt.datetime(2027, 2, 28, 10, 0, tzinfo=UTC)
# The chain, oldest first; head is upgraded to, never from.
PAST = ("0001", "0002_catalog_counts", "0003_settlement_note", "0003_order_idempotency",
        "0004_voucher_attempt_keys", "0005_amount_checks", "0006_expiry_notices",
        "0007_binary_collation", "0008_expiry_notice_sending")
O1, O2, O3, O4, O5 = (f"00000000-0000-4000-8000-00000000000{n}" for n in range(1, 6))
HUGE = Decimal("999999999999999.99")
KEY_1 = "invoice/p1/INV-1"
KEY_3 = "invoice/p2.jpy/INV-3"


def test_the_chain_is_the_one_this_test_upgrades_from() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migration.alembic_config())
    chain = [r.revision for r in script.walk_revisions()]
    assert list(reversed(chain)) == [*PAST, migration.head()]


def at_least(found: str, revision: str) -> bool:
    """Whether ``found`` (a past revision) has ``revision``'s change: never head's."""
    return revision in PAST and PAST.index(found) >= PAST.index(revision)


def expected_rows(revision: str) -> dict[str, list[dict[str, Any]]]:
    """What a release whose newest migration is ``revision`` left in its ledger, as head's
    tables read it once upgraded: columns added later hold their migration's values."""
    note = at_least(revision, "0003_settlement_note")
    keys = at_least(revision, "0004_voucher_attempt_keys")
    rows: dict[str, list[dict[str, Any]]] = {
        "cloud_credit_projects": [
            {"id": "p1", "currency": "EUR", "created_at": T0},
            {"id": "p2.jpy", "currency": "JPY", "created_at": T0},
        ],
        "cloud_credit_credits": [
            credit(1, "p1", "purchased", O1, "Crédit acheté — commande ✓", total="100",
                   used="30.000001", available="69.999999", valid_until=LATER),
            credit(2, "p1", "voucher", "WELCOME-2026", "Bon de bienvenue 日本語 🎉",
                   total="50", used="12.5", available="37.5", valid_until=None,
                   products='["compute"]'),
            credit(3, "p1", "voucher", "VOID-ME", "Bon", total="20", voided="20",
                   available="0", voided_at=T1, void_reason="fraude : carte volée — ü ✓"),
            credit(4, "p2.jpy", "purchased", O4, "購入したクレジット", total="5000",
                   used="1234", available="3766"),
            credit(5, "p1", "purchased", O5, "Big", total=str(HUGE), available=str(HUGE)),
            credit(6, "p1", "voucher", "OLD-ONE", "Ancien", total="10.000001",
                   expired="10.000001", available="0", valid_until=T1),
        ],
        "cloud_credit_ledger_entries": [
            entry(1, 1, "grant", "100"), entry(2, 2, "grant", "50"),
            entry(3, 3, "grant", "20"), entry(4, 4, "grant", "5000"),
            entry(5, 5, "grant", str(HUGE)), entry(6, 6, "grant", "10.000001"),
            entry(7, 1, "debit", "30.000001", KEY_1, "l1"),
            entry(8, 2, "debit", "12.5", KEY_1, "l2"),
            entry(9, 4, "debit", "1234", KEY_3, "l1"),
            entry(10, 3, "void", "20", note="fraude : carte volée — ü ✓"),
            entry(11, 6, "expiry", "10.000001"),
        ],
        "cloud_credit_orders": [
            order(O1, "p1", "100", "paid", paid_at=T1, credit_id=1),
            order(O2, "p1", "15", "pending"),
            order(O3, "p1", "16", "cancelled", cancelled_at=T1),
            order(O4, "p2.jpy", "5000", "paid", currency="JPY", paid_at=T1, credit_id=4),
            order(O5, "p1", str(HUGE), "paid", paid_at=T1, credit_id=5),
        ],
        "cloud_credit_settlements": [
            settlement(KEY_1, "p1", "INV-1", "EUR", total="242.500001",
                       applied="42.500001", due="200",
                       allocations='[["l1", 1, "purchased", "30.000001"], '
                                   '["l2", 2, "voucher", "12.500000"]]'),
            settlement(KEY_3, "p2.jpy", "INV-3", "JPY", total="1234", applied="1234", due="0",
                       allocations='[["l1", 4, "purchased", "1234"]]'),
            settlement("invoice/p1/INV-X", "p1", "INV-X", "USD", total="7.25", applied="0",
                       due="7.25", allocations="[]",
                       note="currency_mismatch" if note else None),
        ],
        "cloud_credit_voucher_activations": [
            {"id": 1, "project_id": "p1", "code": "WELCOME-2026", "idempotency_key": "a" * 64,
             "status": "granted", "redemption_id": "red-1", "credit_id": 2,
             "created_at": T0, "updated_at": T1},
            {"id": 2, "project_id": "p2.jpy", "code": "PENDING-1",
             "idempotency_key": "b" * 64, "status": "pending", "redemption_id": None,
             "credit_id": None, "created_at": T0, "updated_at": T0},
        ],
        "cloud_credit_voucher_attempts": [
            {"id": 1, "project_id": "p1", "succeeded": True, "reason": "WE…26: activé ✓",
             "created_at": T0, "attempt_key": "client-key-1" if keys else "migrated-1",
             "unblock_id": None},
            {"id": 2, "project_id": "p3", "succeeded": False, "reason": "NO…: inconnu",
             "created_at": T1, "attempt_key": "client-key-2" if keys else "migrated-2",
             "unblock_id": "u-1" if keys else None},
        ],
        "cloud_credit_catalog_redemptions": [
            {"id": "red-1", "code": "WELCOME-2026", "project_id": "p1",
             "idempotency_key": "a" * 64,
             "document": '{"description": "Bon de bienvenue 日本語 🎉", "amount": "50.00"}',
             "redeemed_at": T0},
        ],
        # 0002 backfills the counts from the redemptions.
        "cloud_credit_catalog_voucher_counts": [{"code": "WELCOME-2026", "redemptions": 1}],
        "cloud_credit_order_keys": [],
        "cloud_credit_voucher_unblocks": [],
        "cloud_credit_expiry_notices": [],
    }
    if at_least(revision, "0003_order_idempotency"):
        rows["cloud_credit_order_keys"] = [
            {"project_id": "p1", "idempotency_key": "clé 1 ", "fingerprint": "f" * 64,
             "order_id": O2, "created_at": T0}]
    if keys:
        rows["cloud_credit_voucher_unblocks"] = [
            {"id": "u-1", "project_id": "p3", "reason": "Ticket n°1 — ✓", "operator": "Opérateur",
             "cleared": 1, "created_at": T1}]
    if at_least(revision, "0006_expiry_notices"):
        rows["cloud_credit_expiry_notices"] = [
            # Sent: a row from before 0008 says so without sending_since.
            {"credit_id": 1, "threshold_days": 30, "created_at": T1, "sending_since": None}]
    return rows


def money(value: str) -> Decimal:
    return Decimal(value).quantize(Decimal("0.000001"))


def credit(ident: int, project: str, kind: str, source: str, description: str, *,
           total: str, used: str = "0", expired: str = "0", voided: str = "0",
           available: str, valid_until: dt.datetime | None = LATER, products: str = "[]",
           voided_at: dt.datetime | None = None, void_reason: str | None = None,
           ) -> dict[str, Any]:
    return {"id": ident, "project_id": project, "kind": kind, "description": description,
            "source": source, "currency": "JPY" if project == "p2.jpy" else "EUR",
            "products": products, "total": money(total), "used": money(used),
            "expired": money(expired), "voided": money(voided), "available": money(available),
            "valid_from": T0, "valid_until": valid_until, "created_at": T0,
            "voided_at": voided_at, "void_reason": void_reason}


def entry(ident: int, credit_id: int, kind: str, amount: str, key: str | None = None,
          line: str | None = None, note: str = "") -> dict[str, Any]:
    return {"id": ident, "credit_id": credit_id, "type": kind, "amount": money(amount),
            "settlement_key": key, "line_id": line, "note": note, "created_at": T1}


def order(ident: str, project: str, amount: str, status: str, *, currency: str = "EUR",
          paid_at: dt.datetime | None = None, cancelled_at: dt.datetime | None = None,
          credit_id: int | None = None) -> dict[str, Any]:
    return {"id": ident, "project_id": project, "amount": money(amount), "currency": currency,
            "status": status, "created_at": T0, "expires_at": T0 + dt.timedelta(days=7),
            "paid_at": paid_at, "cancelled_at": cancelled_at,
            "payment_url": f"https://pay.example/orders/{ident}?libellé=crédit",
            "credit_id": credit_id}


def settlement(key: str, project: str, invoice_id: str, currency: str, *, total: str,
               applied: str, due: str, allocations: str,
               note: str | None = None) -> dict[str, Any]:
    return {"key": key, "project_id": project, "invoice_id": invoice_id, "currency": currency,
            "total": money(total), "credit_applied": money(applied), "amount_due": money(due),
            "fingerprint": "e" * 64, "allocations": allocations, "revision": 1,
            "settled_at": T1, "created_at": T1, "updated_at": T1, "note": note}


# What each table's columns were before the revision that added them.
_ADDED = {
    "cloud_credit_settlements": {"note": "0003_settlement_note"},
    "cloud_credit_voucher_attempts": {"attempt_key": "0004_voucher_attempt_keys",
                                      "unblock_id": "0004_voucher_attempt_keys"},
    "cloud_credit_expiry_notices": {"sending_since": "0008_expiry_notice_sending"},
}
_TABLE_SINCE = {
    "cloud_credit_catalog_voucher_counts": "0002_catalog_counts",
    "cloud_credit_order_keys": "0003_order_idempotency",
    "cloud_credit_voucher_unblocks": "0004_voucher_attempt_keys",
    "cloud_credit_expiry_notices": "0006_expiry_notices",
}


def seed(engine: Engine, revision: str) -> None:
    """Insert :func:`expected_rows` as that revision's tables hold them, through the
    declared column types (the code's encoding of amounts and times on each backend)."""
    rows = expected_rows(revision)
    with engine.begin() as conn:
        for table in schema.metadata.sorted_tables:
            if table.name in _TABLE_SINCE and not at_least(revision, _TABLE_SINCE[table.name]):
                continue
            if table.name == "cloud_credit_catalog_voucher_counts":
                continue  # 0002 backfills them; later, the release kept them (same values)
            added = {c for c, since in _ADDED.get(table.name, {}).items()
                     if not at_least(revision, since)}
            columns = [c for c in table.columns if c.name not in added]
            values = [{c.name: row[c.name] for c in columns} for row in rows[table.name]]
            if values:
                conn.execute(sa.insert(sa.Table(
                    table.name, sa.MetaData(), *(sa.Column(c.name, c.type) for c in columns))),
                    values)
        if at_least(revision, "0002_catalog_counts"):
            conn.execute(schema.catalog_voucher_counts.insert(),
                         rows["cloud_credit_catalog_voucher_counts"])
        if engine.dialect.name == "postgresql":
            # The ids above were given: the code draws its own from the sequences.
            for name in ("cloud_credit_credits", "cloud_credit_ledger_entries",
                         "cloud_credit_voucher_activations", "cloud_credit_voucher_attempts"):
                conn.execute(sa.text(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                    f"(SELECT MAX(id) FROM {name}))"))


def by_key(rows: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Each table's rows in its primary key's order, as Python orders it (the backends'
    collations order text apart)."""
    def ordered(name: str, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
        key = [c.name for c in schema.metadata.tables[name].primary_key.columns]
        return sorted(found, key=lambda row: [row[c] for c in key])

    return {name: ordered(name, found) for name, found in rows.items()}


def every_row(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    with engine.connect() as conn:
        return by_key({table.name: [dict(r._mapping) for r in conn.execute(sa.select(table))]
                       for table in schema.metadata.sorted_tables})


def schema_differences(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "version_table": migration.VERSION_TABLE})
        return list(compare_metadata(context, schema.metadata))


@pytest.mark.parametrize("start", PAST)
def test_upgrade_from_each_revision_keeps_every_row_and_ends_at_the_declared_schema(
    unmigrated: Ledger, start: str
) -> None:
    with engine_of(unmigrated) as engine:
        migration.upgrade(engine, start)
        seed(engine, start)
        assert migration.upgrade(engine) == start
        assert migration.current(engine) == migration.head()

        assert every_row(engine) == by_key(expected_rows(start))
        assert schema_differences(engine) == []
        inspector = sa.inspect(engine)
        for table in schema.metadata.sorted_tables:
            declared = {c.name for c in table.constraints
                        if isinstance(c, sa.CheckConstraint) and c.name}
            assert {c["name"] for c in inspector.get_check_constraints(table.name)} \
                == declared, table.name
            if engine.dialect.name == "postgresql":
                # What alembic's comparison leaves out: text in byte order (0009), so
                # that the tests' C.UTF-8 database says nothing of a linguistic one's.
                assert {c["name"]: getattr(c["type"], "collation", None)
                        for c in inspector.get_columns(table.name)
                        if isinstance(c["type"], sa.String)} == {
                    c.name: "C" for c in table.columns
                    if isinstance(c.type, (schema.ExactString, schema.ExactText))}, table.name

    service = unmigrated.service()
    try:
        report = service.audit()
        assert report.ok, report.violations
        # The code of this release writes on it: ids go on from the old ones.
        settled = service.settle_invoice(
            invoice("p1", "INV-9", "0.000001", issued_at=T1), at=T1)
        assert settled.credit_applied == Decimal("0.000001")
        assert {a.credit_id for a in settled.allocations} <= {1, 2, 5}
        paid = service.pay_order(service.create_order("p1", "5", at=T1).id, at=T1)
        assert paid.credit_id == 7
        assert service.audit().ok
    finally:
        service.close()
