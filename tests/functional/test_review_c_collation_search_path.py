"""Review of 0009_postgresql_c_collation: a ledger whose tables are not in current_schema().

PostgreSQL's default search_path is ``"$user", public``. A ledger created in ``public``
works unchanged after a schema named after its role appears (PostgreSQL 15's documented
"secure schema usage pattern" creates one per user): every unqualified name still
resolves to ``public``. But ``current_schema()`` is then the role's (empty) schema, and
0009 looks for the tables only there: it finds none, converts nothing, and the ledger is
stamped at head with every text column still in the database's linguistic collation.
The overlap check then reads another scope's key again: credit pays a window twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.ledger import migration
from tests.functional import test_postgresql_linguistic_collation as linguistic
from tests.functional.test_postgresql_linguistic_collation import (
    BEFORE,
    HOUR,
    REVISION,
    D,
    an_hour_of_one_vm,
    rated_acme_and_ACME,
    used,
)
from tests.support import dbservers
from tests.support.ledgers import Ledger, engine_of

UTC = dt.timezone.utc
# That module's fixtures: a database in a given collation, its server, CloudKitty's host.
server = linguistic.server
unmigrated = linguistic.unmigrated
cloudkitty = linguistic.cloudkitty


def visible_collation(ledger: Ledger, table: str, column: str) -> str | None:
    """The collation of the column the application's unqualified names reach."""
    with engine_of(ledger) as engine, engine.connect() as conn:
        found: str | None = conn.execute(sa.text(
            "SELECT CASE WHEN a.attcollation = 100 THEN NULL ELSE l.collname END "
            "FROM pg_attribute a JOIN pg_collation l ON l.oid = a.attcollation "
            "WHERE a.attrelid = to_regclass(:table) AND a.attname = :column"),
            {"table": table, "column": column}).scalar_one()
    return found


@pytest.fixture
def ledger(unmigrated: Ledger, server: dbservers.DatabaseServer) -> Iterator[Ledger]:
    """Created at 0008 in public; then the role gets its own schema; then db upgrade."""
    with engine_of(unmigrated) as engine:
        migration.upgrade(engine, BEFORE)
        with engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{server.user}"')
        assert migration.upgrade(engine) == BEFORE
        assert migration.current(engine) == REVISION
    yield unmigrated


@pytest.mark.parametrize("unmigrated", ["icu-en-US"], indirect=True)
def test_review_0009_converts_the_tables_the_ledger_uses_whatever_current_schema(
    ledger: Ledger,
) -> None:
    assert visible_collation(ledger, "cloud_credit_settlements", "key") == "C"


@pytest.mark.parametrize("unmigrated", ["icu-en-US"], indirect=True)
def test_review_a_window_across_a_settled_hour_is_refused_after_0009_with_a_role_schema(
    cloudkitty: Any, ledger: Ledger
) -> None:
    hour = dt.datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - 3 * HOUR
    service = ledger.service()
    try:
        acme, _ = rated_acme_and_ACME(cloudkitty, service, hour)
        with pytest.raises(exceptions.SettlementConflict, match="overlaps"):
            cloudkitty.CloudCreditProcessor("acme").process(
                an_hour_of_one_vm("acme", hour + HOUR / 2))
        assert used(service, acme) == D("3")
    finally:
        service.close()
