"""The ``file`` voucher catalog's redemptions, kept in the ledger database.

The catalog's side of a redemption: a row per redemption (its document, by
idempotency key) and a counter per code. The counter decides
``max_redemptions``: one conditional ``UPDATE`` of one row, which a single
server serializes with a row lock and Galera certifies across nodes (two
nodes granting the last redemption update the same row: one commits, the
other gets a certification failure and is retried, and then finds no room).
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ovh_credit_plugin import models
from ovh_credit_plugin.ledger import schema
from ovh_credit_plugin.ledger.database import Database

_REDEMPTIONS = schema.catalog_redemptions
_COUNTS = schema.catalog_voucher_counts


class CatalogRedemptions:
    """Implements ``catalog.base.RedemptionLedger`` on the ledger database."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def count(self, code: str) -> int:
        return self._database.read(lambda conn: _count(conn, code))

    def redeem(
        self,
        redemption: models.Redemption,
        *,
        idempotency_key: str,
        limit: int | None,
        check: Callable[[], None],
    ) -> models.Redemption | None:
        def work(conn: Connection) -> models.Redemption | None:
            previous = _find(conn, idempotency_key)
            if previous is not None:
                return previous
            check()
            if not _claim(conn, redemption.code, limit):
                # A call under the same key (a try and its resume) may have
                # taken the last place since the lookup above: READ COMMITTED,
                # this statement sees its commit, and the key is redeemed.
                return _find(conn, idempotency_key)
            _insert(conn, redemption, idempotency_key)
            return redemption

        # READ COMMITTED is enough: the decision is the counter row's update.
        return self._database.write(work)


def _find(conn: Connection, idempotency_key: str) -> models.Redemption | None:
    document = conn.execute(
        sa.select(_REDEMPTIONS.c.document).where(
            _REDEMPTIONS.c.idempotency_key == idempotency_key
        )
    ).scalar_one_or_none()
    return None if document is None else models.Redemption.model_validate_json(document)


def _count(conn: Connection, code: str) -> int:
    found = conn.execute(
        sa.select(_COUNTS.c.redemptions).where(_COUNTS.c.code == code)
    ).scalar_one_or_none()
    return int(found or 0)


def _claim(conn: Connection, code: str, limit: int | None) -> bool:
    """One more redemption of ``code`` if fewer than ``limit`` (None: no limit) exist.

    The first redemption of a code inserts its row; two transactions doing so
    at once break the primary key (or, on Galera, conflict), and the one
    retried then updates the row the other inserted.
    """
    if limit is not None and limit <= 0:
        return False
    condition = _COUNTS.c.code == code
    if limit is not None:
        condition = condition & (_COUNTS.c.redemptions < limit)
    one_more = _COUNTS.update().where(condition).values(redemptions=_COUNTS.c.redemptions + 1)
    if conn.execute(one_more).rowcount == 1:
        return True
    exists = conn.execute(
        sa.select(_COUNTS.c.code).where(_COUNTS.c.code == code)
    ).first()
    if exists is not None:
        # Either the limit is reached, or the row is another project's first
        # redemption, committed since the UPDATE above found nothing (READ
        # COMMITTED): only the condition, asked again of that row, tells.
        return conn.execute(one_more).rowcount == 1
    conn.execute(_COUNTS.insert().values(code=code, redemptions=1))
    return True


def _insert(conn: Connection, redemption: models.Redemption, idempotency_key: str) -> None:
    conn.execute(
        _REDEMPTIONS.insert().values(
            id=redemption.id,
            code=redemption.code,
            project_id=redemption.project_id,
            idempotency_key=idempotency_key,
            document=redemption.model_dump_json(),
            redeemed_at=redemption.redeemed_at,
        )
    )
