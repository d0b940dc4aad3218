"""Revision 0007 (text compared byte by byte) on MariaDB ledgers that already hold data.

Up to 0006 the tables had the database's default collation, case-insensitive on
the tests' server (utf8mb4_general_ci) as on most: the code took project "ACME"'s
row for "acme", whose orders and credits then pointed at it. 0007 converts every
text column to utf8mb4_nopad_bin, gives such a project its own row, keeps every
row, and from then on ids that differ by case are two ids. PostgreSQL and SQLite
compare text byte by byte already: 0007 does nothing there (tests/service/
test_migrations.py compares the migrated SQLite schema with the declared one).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.ledger import migration, schema
from ovh_credit_plugin.service import CreditService
from tests.support.ledgers import Ledger, engine_of, invoice

pytestmark = pytest.mark.parametrize("backend", ["mariadb"], indirect=True)

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
AT = dt.datetime(2026, 3, 1, tzinfo=UTC)
BEFORE = "0006_expiry_notices"
BINARY = "utf8mb4_nopad_bin"
DEFAULT = "utf8mb4_general_ci"  # the tests' server's (tests/support/dbservers.py)
TEXT_KEYS = {
    ("cloud_credit_credits", "fk_cloud_credit_credits_project_id_cloud_credit_projects"),
    ("cloud_credit_orders", "fk_cloud_credit_orders_project_id_cloud_credit_projects"),
    ("cloud_credit_order_keys", "fk_cloud_credit_order_keys_order_id_cloud_credit_orders"),
    ("cloud_credit_voucher_attempts", "fk_cloud_credit_voucher_attempts_unblock_id"),
}


@contextmanager
def service_at(ledger: Ledger, revision: str, monkeypatch: pytest.MonkeyPatch,
               **options: Any) -> Iterator[CreditService]:
    """The service as the release whose newest migration is ``revision`` runs it (this
    release's code writes nothing 0007 adds: what an operator upgrading from it has)."""
    with monkeypatch.context() as patch:
        patch.setattr(migration, "head", lambda: revision)
        service = ledger.service(**options)
        try:
            yield service
        finally:
            service.close()


@contextmanager
def seeded_at_0006(ledger: Ledger, engine: Engine, monkeypatch: pytest.MonkeyPatch,
                   **options: Any) -> Iterator[CreditService]:
    """``ledger`` migrated to 0006 and seeded (:func:`seed`) by that release's service,
    which stays open for more."""
    migration.upgrade(engine, BEFORE)
    with service_at(ledger, BEFORE, monkeypatch, **options) as service:
        seed(service)
        yield service


def seed(service: CreditService) -> None:
    """Rows in every table with a text column: orders (one under an Idempotency-Key),
    credits, entries, settlements, a voucher activation and its catalog redemption,
    failed voucher tries cleared by an operator's unblock."""
    service.pay_order(service.create_order("ACME", "100", at=T0).id, at=T0)
    service.create_order_once("ACME", "15", idempotency_key="key 1", at=T0)
    service.activate_voucher("ACME", "WELCOME-2026", at=T0)
    service.settle_invoice(invoice("ACME", "INV-a", "30.000001", issued_at=AT), at=AT)
    for n in range(2):
        with pytest.raises(exceptions.VoucherRefused):
            service.activate_voucher("p2", f"NOPE-{n}", at=T0)
    service.unblock_vouchers("p2", reason="Support ticket #1", operator="Opérateur", at=T0)


def rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every ledger table, sorted in Python (the collations sort apart); the
    tables as the ledger's revision has them (columns added after 0007 are not read)."""
    with engine.connect() as conn:
        return {table.name: sorted((tuple(row) for row in conn.execute(sa.select(
                    *(column for column in table.columns
                      if (table.name, column.name) not in _ADDED_AFTER_0007)))),
                                   key=repr)
                for table in schema.metadata.sorted_tables}


# Columns of later revisions: a ledger at 0006 or 0007 has none of them.
_ADDED_AFTER_0007 = {("cloud_credit_expiry_notices", "sending_since")}


def text_collations(engine: Engine) -> dict[tuple[str, str], tuple[str, str]]:
    """(table, column) -> (character set, collation) of every text column of the ledger."""
    with engine.connect() as conn:
        return {(t, c): (charset, collation) for t, c, charset, collation in conn.execute(sa.text(
            "SELECT table_name, column_name, character_set_name, collation_name "
            "FROM information_schema.columns WHERE table_schema = DATABASE() "
            "AND collation_name IS NOT NULL AND table_name <> :version"),
            {"version": migration.VERSION_TABLE})}


def table_collations(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.text(
            "SELECT table_collation FROM information_schema.tables "
            "WHERE table_schema = DATABASE() AND table_name <> :version"),
            {"version": migration.VERSION_TABLE}).scalars())


def text_keys(engine: Engine) -> set[tuple[str, str]]:
    inspector = sa.inspect(engine)
    return {(table, str(key["name"])) for table, _ in TEXT_KEYS
            for key in inspector.get_foreign_keys(table)} & TEXT_KEYS


def assert_exact(engine: Engine) -> None:
    """Every text column the schema declares, and no other, is utf8mb4_nopad_bin, and so
    is every table's default; the foreign keys between text columns are there."""
    declared = {(table.name, column.name) for table in schema.metadata.sorted_tables
                for column in table.columns
                if isinstance(column.type, (schema.ExactString, schema.ExactText))}
    assert text_collations(engine) == dict.fromkeys(declared, ("utf8mb4", BINARY))
    assert table_collations(engine) == {BINARY}
    assert text_keys(engine) == TEXT_KEYS


def test_0007_converts_a_ledger_with_data_and_then_ids_that_differ_by_case_are_two(
    unmigrated: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    with engine_of(unmigrated) as engine:
        with seeded_at_0006(unmigrated, engine, monkeypatch,
                            voucher_max_failed_attempts=2) as service:
            # What the case-insensitive collation made of "acme": ACME's project row
            # taken for its own (no row of its own), its order and credit pointing at it.
            paid = service.pay_order(service.create_order("acme", "20", at=T0).id, at=T0)
            assert service.project_currency("acme") == "EUR"
        before = rows(engine)
        assert [p[0] for p in before["cloud_credit_projects"]] == ["ACME"]
        assert any(a[-1] is not None for a in before["cloud_credit_voucher_attempts"])  # cleared

        migration.upgrade(engine)
        assert migration.current(engine) == migration.head()
        after = rows(engine)
        # Every row kept as it was, and "acme" has its row, in the currency it was
        # billed in, from its first order.
        assert after["cloud_credit_projects"] == sorted(
            [*before["cloud_credit_projects"], ("acme", "EUR", T0)],
            key=repr)
        assert {k: v for k, v in after.items() if k != "cloud_credit_projects"} == {
            k: v for k, v in before.items() if k != "cloud_credit_projects"}
        assert_exact(engine)

        service = unmigrated.service()
        try:
            # "acme"'s invoice is paid by its own credit only; ACME's stays as it was.
            settled = service.settle_invoice(invoice("acme", "I1", "30", issued_at=AT), at=AT)
            assert settled.credit_applied == Decimal(20)
            assert [c.id for c in service.list_credits("acme", at=AT)] == [paid.credit_id]
            assert sum(c.available for c in service.list_credits("ACME", at=AT)) == Decimal(
                "119.999999")
            # "inv-a" after "INV-a" is another invoice.
            second = service.settle_invoice(invoice("ACME", "inv-a", "20", issued_at=AT), at=AT)
            assert (second.credit_applied, second.replayed) == (Decimal(20), False)
            replayed = service.settle_invoice(
                invoice("ACME", "INV-a", "30.000001", issued_at=AT), at=AT)
            assert replayed.replayed
            assert service.audit().ok
        finally:
            service.close()

        # Back to 0006 would make "ACME" and "acme" one project again: refused, with
        # nothing of 0007 changed. (From head, the revisions after 0007 are undone
        # first: test_a_refused_downgrade_from_head_leaves_the_revision_of_what_was_done.)
        migration.downgrade(engine, "0007_binary_collation")
        with pytest.raises(RuntimeError, match=r"cloud_credit_projects \(PRIMARY: 'ACME'"):
            migration.downgrade(engine, BEFORE)
        assert migration.current(engine) == "0007_binary_collation"
        assert_exact(engine)


def test_0007_goes_down_to_the_databases_collation_and_up_again(
    unmigrated: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    with engine_of(unmigrated) as engine:
        with seeded_at_0006(unmigrated, engine, monkeypatch, voucher_max_failed_attempts=2):
            pass
        at_0006 = text_collations(engine)
        assert set(at_0006.values()) == {("utf8mb4", DEFAULT)}
        before = rows(engine)
        migration.upgrade(engine)
        assert_exact(engine)
        migration.downgrade(engine, BEFORE)
        assert migration.current(engine) == BEFORE
        assert text_collations(engine) == at_0006
        assert table_collations(engine) == {DEFAULT}
        assert text_keys(engine) == TEXT_KEYS
        assert rows(engine) == before
        migration.upgrade(engine)
        assert_exact(engine)
        assert rows(engine) == before


def test_an_upgrade_stopped_half_way_runs_again(
    unmigrated: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MariaDB commits each ALTER: a foreign key 0007 cannot add back stops it after the
    tables before it were converted; once the row is repaired, it runs again to the end."""
    with engine_of(unmigrated) as engine:
        with seeded_at_0006(unmigrated, engine, monkeypatch) as service:
            order = service.create_order("ACME", "25", at=T0)
        keys = sa.table("cloud_credit_order_keys", sa.column("project_id"),
                        sa.column("idempotency_key"), sa.column("fingerprint"),
                        sa.column("order_id"), sa.column("created_at"))
        with engine.begin() as conn:  # a hand-made row the case-insensitive key took
            conn.execute(keys.insert().values(
                project_id="ACME", idempotency_key="by hand", fingerprint="0" * 64,
                order_id=order.id.upper(), created_at=T0.replace(tzinfo=None)))
        with pytest.raises(sa.exc.IntegrityError, match="fk_cloud_credit_order_keys_order_id"):
            migration.upgrade(engine)
        assert migration.current(engine) == BEFORE
        converted = text_collations(engine)
        assert converted[("cloud_credit_orders", "id")] == ("utf8mb4", BINARY)
        assert converted[("cloud_credit_order_keys", "order_id")] == ("utf8mb4", DEFAULT)

        with engine.begin() as conn:
            conn.execute(keys.update().where(keys.c.idempotency_key == "by hand")
                         .values(order_id=order.id))
        migration.upgrade(engine)
        assert migration.current(engine) == migration.head()
        assert_exact(engine)


def test_the_migrated_schema_is_the_declared_one(unmigrated: Ledger) -> None:
    """alembic's comparison, collations included, on MariaDB (where the declared types
    render them): a text column a later migration adds in the server's default
    collation shows here."""
    with engine_of(unmigrated) as engine:
        migration.upgrade(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "version_table": migration.VERSION_TABLE})
            assert compare_metadata(context, schema.metadata) == []
        # The comparison does see a collation that is not the declared one.
        with engine.begin() as conn:
            conn.execute(sa.text(
                f"ALTER TABLE cloud_credit_settlements MODIFY invoice_id VARCHAR(255) "
                f"CHARACTER SET utf8mb4 COLLATE {DEFAULT} NOT NULL"))
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "version_table": migration.VERSION_TABLE})
            diff = compare_metadata(context, schema.metadata)
        assert [(d[0][0], d[0][2], d[0][3]) for d in diff] == [
            ("modify_type", "cloud_credit_settlements", "invoice_id")], diff


def test_a_refused_downgrade_from_head_leaves_the_revision_of_what_was_done(
        unmigrated: Ledger) -> None:
    """MariaDB commits each ALTER TABLE by itself: going down from head to 0006, the
    revisions after 0007 are undone (0008's column dropped, committed), then 0007
    refuses. The stored revision must say 0007, what the schema is: it said 0008 (its
    stamp rolled back with 0007's refusal, the column gone), and the next upgrade
    skipped 0008, leaving a ledger without the column it adds."""
    with engine_of(unmigrated) as engine:
        migration.upgrade(engine)
        service = unmigrated.service()
        try:
            for project in ("ACME", "acme"):  # two projects to 0007, one to 0006
                service.create_order(project, "10", at=T0)
        finally:
            service.close()
        with pytest.raises(RuntimeError, match=r"cloud_credit_projects \(PRIMARY: 'ACME'"):
            migration.downgrade(engine, BEFORE)
        assert migration.current(engine) == "0007_binary_collation"
        columns = {c["name"] for c in sa.inspect(engine).get_columns(
            "cloud_credit_expiry_notices")}
        assert "sending_since" not in columns  # 0008's, undone and committed
        migration.upgrade(engine)
        assert migration.current(engine) == migration.head()
        assert "sending_since" in {c["name"] for c in sa.inspect(engine).get_columns(
            "cloud_credit_expiry_notices")}
        assert_exact(engine)
