"""Review of the minute's schema recheck (0ea0f42, 3b43c8c).

A process left running while its package is upgraded in place (pip, a distro
package: the files on disk are the new release's, the process still runs the old
code) and the new release's ``db upgrade`` then run: the recheck reads the new
revision, and ``migration.known`` finds it among the migration files now on disk.
The process is told "this code needs <its own head>: run 'ovh-credit db upgrade'",
which cannot help (the ledger is past that revision; 'db upgrade' finds nothing to
do); what helps is restarting it on the code now installed, as the refusal a
process gets for a ledger newer than its code says.
"""

from __future__ import annotations

import datetime as dt
import shutil
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
LATER = "0099_from_a_later_release"


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
    (installed / "versions" / f"{LATER}.py").write_text(
        f'revision = "{LATER}"\ndown_revision = "{running_head}"\n'
        "branch_labels = None\ndepends_on = None\n\n\n"
        "def upgrade() -> None:\n    pass\n\n\n"
        "def downgrade() -> None:\n    pass\n", encoding="utf-8")
    monkeypatch.setattr(migration, "SCRIPT_LOCATION", str(installed))
    stamp(ledger, LATER)  # the next release's 'db upgrade'
    try:
        later = database.time.monotonic() + database.SCHEMA_RECHECK_SECONDS + 1
        monkeypatch.setattr(database.time, "monotonic", lambda: later)
        with pytest.raises(exceptions.DatabaseNotReady) as refused:
            service.settle_invoice(invoice("I1"), at=AT)
    finally:
        stamp(ledger, running_head)
    # Now: "... is at revision 0099_from_a_later_release, this code needs
    # 0009_postgresql_c_collation: run 'ovh-credit db upgrade'".
    assert "run 'ovh-credit db upgrade'" not in str(refused.value)
    assert f"it is at revision {LATER}, this process runs {running_head}; restart it" in str(
        refused.value)
