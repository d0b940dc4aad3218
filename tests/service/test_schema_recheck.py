"""A long-running process (a CloudKitty processor, an API worker) reads the ledger's
revision again at most once a minute: one left running across a later ``db upgrade``
stops writing, with the error its start would have given, instead of writing to a
schema it does not know until it is restarted.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ovh_credit_plugin import exceptions, models
from ovh_credit_plugin.ledger import database, migration
from ovh_credit_plugin.service import CreditService
from tests.support.ledgers import Ledger

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
AT = T0 + dt.timedelta(days=1)
NEWER = "0099_from_a_later_release"


def invoice(invoice_id: str) -> models.Invoice:
    return models.Invoice.model_validate({
        "id": invoice_id, "project_id": "p1", "currency": "EUR", "issued_at": AT.isoformat(),
        "lines": [{"id": "1", "product": "compute", "amount": "1.00"}],
    })


def stamp(ledger: Ledger, revision: str) -> None:
    engine = sa.create_engine(ledger.url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {migration.VERSION_TABLE} SET version_num = :r"),
                         {"r": revision})
    finally:
        engine.dispose()


@pytest.fixture
def upgraded_later(ledger: Ledger) -> Iterator[None]:
    """What a later release's ``db upgrade`` leaves: its revision in the version table."""
    stamp(ledger, NEWER)
    yield
    stamp(ledger, migration.head())


def settled(ledger: Ledger) -> int:
    engine = sa.create_engine(ledger.url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT COUNT(*) FROM cloud_credit_settlements"))
                       .scalar_one())
    finally:
        engine.dispose()


def test_a_process_left_running_across_a_later_upgrade_stops_writing(
        ledger: Ledger, service: CreditService, request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch) -> None:
    order = service.create_order("p1", "10", at=T0)
    service.pay_order(order.id, at=T0)
    service.settle_invoice(invoice("I1"), at=AT)
    request.getfixturevalue("upgraded_later")
    # A minute later (the clock the check keeps, moved on):
    later = database.time.monotonic() + database.SCHEMA_RECHECK_SECONDS + 1
    monkeypatch.setattr(database.time, "monotonic", lambda: later)
    with pytest.raises(exceptions.DatabaseNotReady,
                       match=f"changed while this process ran: it is at revision {NEWER}, "
                             f"this process runs {migration.head()}; restart it"):
        service.settle_invoice(invoice("I2"), at=AT)
    assert settled(ledger) == 1


def test_the_revision_is_not_read_again_within_the_minute(
        ledger: Ledger, service: CreditService, request: pytest.FixtureRequest) -> None:
    # The check is no cost per transaction (online settlement, issue 15): the process
    # started on this revision goes on until the minute is over.
    order = service.create_order("p1", "10", at=T0)
    service.pay_order(order.id, at=T0)
    request.getfixturevalue("upgraded_later")
    service.settle_invoice(invoice("I1"), at=AT)
    assert settled(ledger) == 1


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_recheck_that_meets_a_passing_failure_is_retried_as_the_transaction_is(
        ledger: Ledger, service: CreditService, monkeypatch: pytest.MonkeyPatch) -> None:
    # A Galera node restarting, a SQLite writer holding the lock: the minute's read of
    # the revision is retried with the transaction it comes before, not an error at once.
    import sqlite3

    from sqlalchemy import exc

    order = service.create_order("p1", "10", at=T0)
    service.pay_order(order.id, at=T0)
    later = database.time.monotonic() + database.SCHEMA_RECHECK_SECONDS + 1
    monkeypatch.setattr(database.time, "monotonic", lambda: later)
    monkeypatch.setattr(database.time, "sleep", lambda seconds: None)
    read, failures = migration.current, [
        exc.OperationalError("SELECT version_num", {}, sqlite3.OperationalError(
            "database is locked"))]

    def once_locked(engine: sa.Engine) -> str | None:
        if failures:
            raise failures.pop()
        return read(engine)

    monkeypatch.setattr(migration, "current", once_locked)
    settlement = service.settle_invoice(invoice("I1"), at=AT)
    assert settlement.credit_applied == 1 and not failures
    assert settled(ledger) == 1


# A process whose package was upgraded in place (pip, a distro package: the files on
# disk are the next release's, the process still runs the old code), then the next
# release's 'db upgrade': the migration files on disk know the new revision, and
# "run 'ovh-credit db upgrade'" cannot help. Restarting the process does.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_process_whose_package_was_upgraded_in_place_is_not_told_to_run_db_upgrade(
        ledger: Ledger, service: CreditService, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    order = service.create_order("p1", "10", at=T0)  # the process started: its head read
    service.pay_order(order.id, at=T0)
    running_head = migration.head()
    # The package upgraded in place: the migration files on disk are the next release's.
    installed = tmp_path / "migrations"
    shutil.copytree(migration.SCRIPT_LOCATION, installed)
    (installed / "versions" / f"{NEWER}.py").write_text(
        f'revision = "{NEWER}"\ndown_revision = "{running_head}"\n'
        "branch_labels = None\ndepends_on = None\n\n\n"
        "def upgrade() -> None:\n    pass\n\n\n"
        "def downgrade() -> None:\n    pass\n", encoding="utf-8")
    monkeypatch.setattr(migration, "SCRIPT_LOCATION", str(installed))
    stamp(ledger, NEWER)  # the next release's 'db upgrade'
    try:
        later = database.time.monotonic() + database.SCHEMA_RECHECK_SECONDS + 1
        monkeypatch.setattr(database.time, "monotonic", lambda: later)
        with pytest.raises(exceptions.DatabaseNotReady) as refused:
            service.settle_invoice(invoice("I1"), at=AT)
    finally:
        stamp(ledger, running_head)
    assert "run 'ovh-credit db upgrade'" not in str(refused.value)
    assert f"it is at revision {NEWER}, this process runs {running_head}; restart it" in str(
        refused.value)
