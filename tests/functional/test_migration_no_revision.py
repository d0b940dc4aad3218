"""A database that holds ledger tables but no stored revision, on every backend.

MariaDB and MySQL commit each CREATE TABLE by itself: a first `db upgrade` stopped
half-way leaves some of the ledger's tables and no revision (alembic records 0001
once all of it is done). A ledger restored in part, or whose version table was
dropped, looks the same. Before, every command said "has no tables yet: run
'ovh-credit db upgrade'" and `db upgrade` then failed on "table ... already exists":
a loop. Both now say what the database holds and what to do.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.ledger import migration
from ovh_credit_plugin.ledger.database import create_engine
from tests.support.ledgers import ServerPool, new_database_url

SAYS = (r"holds ledger tables \(cloud_credit_\w+(, cloud_credit_\w+)*\) but no schema "
        r"revision in cloud_credit_alembic_version")


@pytest.fixture
def engine(backend: str, server_pool: ServerPool, tmp_path: Path) -> Iterator[Engine]:
    made = create_engine(new_database_url(backend, server_pool, tmp_path))
    try:
        yield made
    finally:
        made.dispose()


@pytest.mark.parametrize("lost", ["row", "table"])
def test_ledger_tables_without_a_revision_are_refused_plainly_and_left_alone(
    engine: Engine, lost: str
) -> None:
    migration.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.text(f"{'DELETE FROM' if lost == 'row' else 'DROP TABLE'} "
                             f"{migration.VERSION_TABLE}"))
    tables = set(sa.inspect(engine).get_table_names())
    with pytest.raises(exceptions.DatabaseNotReady, match=SAYS):
        migration.check_current(engine)
    with pytest.raises(exceptions.DatabaseNotReady, match=SAYS):
        migration.upgrade(engine)
    assert migration.current(engine) is None
    assert set(sa.inspect(engine).get_table_names()) - {migration.VERSION_TABLE} \
        == tables - {migration.VERSION_TABLE}


@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
def test_a_first_upgrade_stopped_half_way_is_named_and_runs_once_its_tables_are_dropped(
    engine: Engine,
) -> None:
    """What 0001 left on MariaDB when it stopped after its first tables (each CREATE
    commits): the tables are empty, the operator drops them (as the message says)."""
    migration.upgrade(engine, "0001")
    with engine.begin() as conn:
        conn.execute(sa.text(f"DELETE FROM {migration.VERSION_TABLE}"))
        for table in ("cloud_credit_voucher_activations", "cloud_credit_orders",
                      "cloud_credit_ledger_entries", "cloud_credit_credits"):
            conn.execute(sa.text(f"DROP TABLE {table}"))
    with pytest.raises(exceptions.DatabaseNotReady, match=SAYS) as raised:
        migration.upgrade(engine)
    assert "drop them" in str(raised.value)
    with engine.begin() as conn:
        for table in sa.inspect(engine).get_table_names():
            conn.execute(sa.text(f"DROP TABLE {table}"))
    assert migration.upgrade(engine) is None
    assert migration.current(engine) == migration.head()
