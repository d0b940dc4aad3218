"""Revision 0002_catalog_counts on a ledger with redemptions already recorded, on every backend.

The file catalog used to count its redemption rows; from 0002 on it updates
a counter per code. The migration must carry the counts over (a voucher
with max_redemptions must not get its redemptions back), and downgrade.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import sqlalchemy as sa

from ovh_credit_plugin.ledger import migration, schema
from ovh_credit_plugin.ledger.database import create_engine
from tests.support.ledgers import ServerPool, new_database_url

AT = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
REDEMPTIONS = {"GPU-ONLY": 1, "LIMITED-3": 3, "WELCOME-2026": 7}


def test_counts_are_backfilled_from_existing_redemptions(
    backend: str, server_pool: ServerPool, tmp_path: Path
) -> None:
    engine = create_engine(new_database_url(backend, server_pool, tmp_path))
    try:
        migration.upgrade(engine, "0001")
        table = schema.catalog_redemptions  # unchanged by 0002
        with engine.begin() as conn:
            for code, count in REDEMPTIONS.items():
                for n in range(count):
                    conn.execute(table.insert().values(
                        id=str(uuid.uuid4()), code=code, project_id=f"p{n}",
                        idempotency_key=uuid.uuid4().hex, document="{}",
                        redeemed_at=AT,
                    ))
        migration.upgrade(engine)
        assert migration.current(engine) == migration.head()
        with engine.connect() as conn:
            counts = dict(conn.execute(sa.text(
                "SELECT code, redemptions FROM cloud_credit_catalog_voucher_counts")).all())
        assert counts == REDEMPTIONS
        migration.downgrade(engine, "0001")
        assert "cloud_credit_catalog_voucher_counts" not in sa.inspect(engine).get_table_names()
        migration.upgrade(engine)
    finally:
        engine.dispose()
