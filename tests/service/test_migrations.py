"""The alembic migrations build exactly the schema the code declares."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.ledger import migration, schema
from ovh_credit_plugin.ledger.database import create_engine


def test_migrations_match_the_declared_schema(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/m.sqlite")
    migration.upgrade(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "version_table": migration.VERSION_TABLE}
        )
        diff = compare_metadata(context, schema.metadata)
    assert diff == []
    assert migration.current(engine) == migration.head()


def test_downgrade_to_base_removes_every_table(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/m.sqlite")
    migration.upgrade(engine)
    migration.downgrade(engine, "base")
    names = set(sa.inspect(engine).get_table_names())
    assert names <= {migration.VERSION_TABLE}
    migration.upgrade(engine)
    assert set(schema.metadata.tables) <= set(sa.inspect(engine).get_table_names())


def test_a_ledger_migrated_by_newer_code_says_to_upgrade_the_code(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/m.sqlite")
    migration.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {migration.VERSION_TABLE} SET version_num = '9999'"))
    expected = "revision 9999, newer than this code knows .*: upgrade ovh-credit-plugin$"
    with pytest.raises(exceptions.DatabaseNotReady, match=expected):
        migration.check_current(engine)
    # 'db upgrade' cannot help either: the same message, not alembic's.
    with pytest.raises(exceptions.DatabaseNotReady, match=expected):
        migration.upgrade(engine)
    assert migration.current(engine) == "9999"


def test_the_head_read_from_the_revision_files_is_alembics() -> None:
    assert migration.head() == migration._alembic_head()


def test_the_stored_revision_is_read_as_alembic_reads_it(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/m.sqlite")
    # No version table yet, then each revision of the chain, then an unknown one.
    assert migration.current(engine) is None
    assert migration._alembic_current(engine) is None
    for revision in ("0001", "0003_order_idempotency", migration.head()):
        migration.upgrade(engine, revision)
        assert migration.current(engine) == migration._alembic_current(engine) == revision
    with engine.begin() as conn:
        conn.execute(sa.text(f"DELETE FROM {migration.VERSION_TABLE}"))
    assert migration.current(engine) is None
    assert migration._alembic_current(engine) is None


def test_a_ledger_one_revision_behind_says_to_upgrade_it(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/m.sqlite")
    migration.upgrade(engine, "0005_amount_checks")
    expected = (f"is at revision 0005_amount_checks, this code needs {migration.head()}: "
                "run 'ovh-credit db upgrade'$")
    with pytest.raises(exceptions.DatabaseNotReady, match=expected):
        migration.check_current(engine)
