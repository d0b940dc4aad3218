"""Revision 0004 (keyed voucher attempts, operators' unblocks) on a ledger whose
throttle already recorded attempts, on every backend.

Each attempt recorded before gets a key of its own (``migrated-<id>``: a
client draws UUIDs), keys are unique from then on, and the attempts keep
counting against their project until an unblock clears them.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.ledger import migration, schema
from ovh_credit_plugin.ledger.database import create_engine
from tests.support.ledgers import Ledger

UTC = dt.timezone.utc
BEFORE_KEYS = "0003_order_idempotency"


def test_0004_keys_the_attempts_already_recorded_and_keeps_counting_them(
    unmigrated: Ledger,
) -> None:
    engine = create_engine(unmigrated.url)
    try:
        migration.upgrade(engine, BEFORE_KEYS)
        now = dt.datetime.now(UTC)
        attempts = sa.table("cloud_credit_voucher_attempts", sa.column("project_id"),
                            sa.column("succeeded"), sa.column("reason"),
                            sa.column("created_at"))
        values = [("p1", False, "WR…: unknown voucher WR…"), ("p1", False, "in progress"),
                  ("p1", True, "WE…6: activated"), ("p2", False, "NO…: unknown voucher NO…")]
        with engine.begin() as conn:
            conn.execute(attempts.insert(), [
                {"project_id": p, "succeeded": s, "reason": r,
                 "created_at": now.replace(tzinfo=None)}
                for p, s, r in values])
        migration.upgrade(engine)
        table = schema.voucher_attempts
        with engine.connect() as conn:
            found = conn.execute(sa.select(table.c.id, table.c.project_id, table.c.reason,
                                           table.c.attempt_key, table.c.unblock_id)
                                 .order_by(table.c.id)).all()
        assert [(r.project_id, r.reason, r.unblock_id) for r in found] == [
            (p, r, None) for p, _, r in values]
        assert [r.attempt_key for r in found] == [f"migrated-{r.id}" for r in found]
        # Keys are unique: a second row under one is refused.
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(table.insert().values(project_id="p3", succeeded=False, reason="x",
                                               created_at=now, attempt_key=found[0].attempt_key))
    finally:
        engine.dispose()
    # The migrated tries still count: p1 has two (a failure and a running try).
    service = unmigrated.service(voucher_max_failed_attempts=2, clock=lambda: now)
    try:
        with pytest.raises(exceptions.TooManyAttempts):
            service.activate_voucher("p1", "WELCOME-2026")
        done = service.unblock_vouchers("p1", reason="migrated", operator="ops")
        assert (done.unblocked, done.cleared) == (True, 2)
        assert service.activate_voucher("p1", "WELCOME-2026").total == Decimal("50.00")
    finally:
        service.close()
