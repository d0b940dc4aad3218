"""An upgrade stopped half-way, then run again, on PostgreSQL and MariaDB.

PostgreSQL (and SQLite) run the whole upgrade in one transaction: a stopped one
leaves the ledger exactly as it was. MariaDB and MySQL commit each ALTER TABLE and
CREATE TABLE by itself: a stopped upgrade leaves the steps of its revision done so
far, the stored revision still the one before. Running `db upgrade` again must
finish the job, not stop at "Table ... already exists".

The upgrade is stopped where an operator sees it stop: it waits for a table that a
service still running holds (an open transaction), and the operator (or the
server's ``max_statement_time``, a DBA's ``KILL QUERY``, a Ctrl-C) ends it.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ovh_credit_plugin.ledger import migration, schema
from ovh_credit_plugin.ledger.database import create_engine
from tests.support.ledgers import ServerPool, new_database_url

pytestmark = pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 31, 10, 0, tzinfo=UTC)


@pytest.fixture
def engines(backend: str, server_pool: ServerPool,
            tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    """The ledger's engine, and the database administrator's (who sees and stops any
    session)."""
    url = new_database_url(backend, server_pool, tmp_path)
    made = create_engine(url)
    admin = sa.create_engine(server_pool.get(backend).admin_url_for(sa.make_url(url).database),
                             poolclass=sa.pool.NullPool)
    try:
        yield made, admin
    finally:
        made.dispose()
        admin.dispose()


def _waiting_statement(conn: sa.Connection, prefix: str) -> Any:
    """The server's id of the session whose statement starting with ``prefix`` waits for a
    lock (a table's, or a row's), if one does."""
    if conn.dialect.name == "postgresql":
        return conn.execute(sa.text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE :prefix"),
            {"prefix": f"{prefix}%"}).scalar()
    return conn.execute(sa.text(
        "SELECT id FROM information_schema.processlist WHERE db = DATABASE() "
        "AND state LIKE 'Waiting for table metadata lock%' AND info LIKE :prefix "
        "UNION SELECT trx_mysql_thread_id FROM information_schema.innodb_trx "
        "WHERE trx_state = 'LOCK WAIT' AND trx_query LIKE :prefix"),
        {"prefix": f"{prefix}%"}).scalar()


def _stop(conn: sa.Connection, session: Any) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_cancel_backend(:pid)"), {"pid": session})
    else:
        conn.execute(sa.text(f"KILL QUERY {int(session)}"))


@contextmanager
def stopped_at(engines: tuple[Engine, Engine], *, held_by: str,
               statement: str) -> Iterator[list[BaseException]]:
    """Run ``db upgrade`` while a transaction that ran ``held_by`` is open; stop the
    upgrade when its statement starting with ``statement`` waits for that transaction.
    Yields the upgrade's error."""
    engine, admin = engines
    errors: list[BaseException] = []

    def upgrade() -> None:
        try:
            migration.upgrade(engine)
        except BaseException as error:  # handed to the test
            errors.append(error)

    with admin.connect() as holder, admin.connect() as operator:
        holder.begin()
        holder.execute(sa.text(held_by))
        thread = threading.Thread(target=upgrade)
        thread.start()
        deadline = time.monotonic() + 60
        session = None
        while session is None and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
            session = _waiting_statement(operator, statement)
            operator.rollback()
        assert session is not None, errors
        _stop(operator, session)
        operator.commit()
        thread.join(60)
        holder.rollback()
    assert not thread.is_alive()
    assert len(errors) == 1, errors
    assert isinstance(errors[0], sa.exc.DBAPIError), errors[0]
    yield errors


def test_0004_stopped_half_way_runs_again_to_the_end(engines: tuple[Engine, Engine]) -> None:
    engine, _ = engines
    before = "0003_order_idempotency"
    migration.upgrade(engine, before)
    attempts = sa.table("cloud_credit_voucher_attempts", sa.column("project_id"),
                        sa.column("succeeded"), sa.column("reason"), sa.column("created_at"))
    with engine.begin() as conn:
        conn.execute(attempts.insert(), [
            {"project_id": "p1", "succeeded": False, "reason": f"NO…{n}: inconnu",
             "created_at": T0.replace(tzinfo=None)} for n in range(3)])

    # A service of the release before still running: a transaction that read the tries.
    with stopped_at(engines, held_by="SELECT COUNT(*) FROM cloud_credit_voucher_attempts",
                    statement="ALTER TABLE cloud_credit_voucher_attempts"):
        pass
    assert migration.current(engine) == before

    assert migration.upgrade(engine) == before
    assert migration.current(engine) == migration.head()
    table = schema.voucher_attempts
    with engine.connect() as conn:
        keys = conn.execute(sa.select(table.c.id, table.c.attempt_key, table.c.reason)
                            .order_by(table.c.id)).all()
    assert [(k.attempt_key, k.reason) for k in keys] == [
        (f"migrated-{k.id}", f"NO…{n}: inconnu") for n, k in enumerate(keys)]
    inspector = sa.inspect(engine)
    assert "cloud_credit_voucher_unblocks" in inspector.get_table_names()
    assert [k["name"] for k in inspector.get_foreign_keys("cloud_credit_voucher_attempts")] == [
        "fk_cloud_credit_voucher_attempts_unblock_id"]


def test_0002_stopped_half_way_runs_again_and_counts_once(
    engines: tuple[Engine, Engine],
) -> None:
    engine, _ = engines
    migration.upgrade(engine, "0001")
    redemptions = sa.table("cloud_credit_catalog_redemptions", sa.column("id"),
                           sa.column("code"), sa.column("project_id"),
                           sa.column("idempotency_key"), sa.column("document"),
                           sa.column("redeemed_at"))
    with engine.begin() as conn:
        conn.execute(redemptions.insert(), [
            {"id": f"r{n}", "code": "WELCOME-2026", "project_id": f"p{n}",
             "idempotency_key": f"k{n}", "document": "{}",
             "redeemed_at": T0.replace(tzinfo=None)} for n in range(3)])

    # A session holding the redemptions keeps 0002 from counting them.
    held_by = ("LOCK TABLE cloud_credit_catalog_redemptions IN ACCESS EXCLUSIVE MODE"
               if engine.dialect.name == "postgresql" else
               "LOCK TABLES cloud_credit_catalog_redemptions WRITE")
    with stopped_at(engines, held_by=held_by,
                    statement="INSERT INTO cloud_credit_catalog_voucher_counts"):
        pass
    assert migration.current(engine) == "0001"

    migration.upgrade(engine)
    assert migration.current(engine) == migration.head()
    counts = schema.catalog_voucher_counts
    with engine.connect() as conn:
        assert conn.execute(sa.select(counts.c.code, counts.c.redemptions)).all() == [
            ("WELCOME-2026", 3)]
