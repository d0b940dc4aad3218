"""A code's first redemptions, by several projects at once, on PostgreSQL and MariaDB.

The ``file`` catalog counts a code's redemptions in one row, inserted by the
first redemption. A second redemption whose ``UPDATE`` ran before that row
existed, and whose next read found it committed, took the code for used up:
at a campaign's launch, projects activating a new code at once were refused
``voucher_redeemed`` (409) for a code with places left, or no limit at all.
(SQLite serializes writers: it cannot happen there.)

The race is made exact: the other project's whole redemption commits just as
this one reads the counter after its ``UPDATE`` found nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from ovh_credit_plugin import models
from ovh_credit_plugin.ledger import schema
from ovh_credit_plugin.ledger.catalog_redemptions import CatalogRedemptions
from ovh_credit_plugin.ledger.database import Database, create_engine
from tests.support.ledgers import Ledger

pytestmark = pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)

CODE = "WELCOME-2026"
AT = dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.timezone.utc)
COUNTS = schema.catalog_voucher_counts.name


def redemption(project: str) -> models.Redemption:
    return models.Redemption(id=f"red-{project}", code=CODE, project_id=project,
                             amount=Decimal("10.00"), currency="EUR", redeemed_at=AT)


@pytest.fixture
def two_databases(ledger: Ledger) -> Iterator[tuple[Database, Database]]:
    ours, theirs = (Database(create_engine(ledger.url)) for _ in range(2))
    try:
        yield ours, theirs
    finally:
        ours.dispose()
        theirs.dispose()


def redeem(database: Database, project: str, limit: int | None) -> models.Redemption | None:
    return CatalogRedemptions(database).redeem(
        redemption(project), idempotency_key=f"key-{project}", limit=limit, check=lambda: None)


@pytest.mark.parametrize("limit", [None, 10, 2])
def test_a_code_first_redeemed_by_another_project_meanwhile_still_has_room(
        two_databases: tuple[Database, Database], limit: int | None) -> None:
    ours, theirs = two_databases
    counter_reads: list[str] = []

    def theirs_commits_first(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and COUNTS in statement:
            counter_reads.append(statement)
            if len(counter_reads) == 1:
                assert redeem(theirs, "project-b", limit) is not None

    sa.event.listen(ours.engine, "before_cursor_execute", theirs_commits_first)
    try:
        mine = redeem(ours, "project-a", limit)
    finally:
        sa.event.remove(ours.engine, "before_cursor_execute", theirs_commits_first)
    assert counter_reads, "the race was not staged: our UPDATE found the counter"
    assert mine == redemption("project-a")
    counts = CatalogRedemptions(ours)
    assert counts.count(CODE) == 2


def test_a_code_whose_last_place_went_meanwhile_is_still_refused(
        two_databases: tuple[Database, Database]) -> None:
    ours, theirs = two_databases
    staged: list[bool] = []

    def theirs_takes_the_only_place(_conn: Any, _cursor: Any, statement: str,
                                    *_args: Any) -> None:
        if not staged and statement.lstrip().upper().startswith("SELECT") and COUNTS in statement:
            staged.append(True)
            assert redeem(theirs, "project-b", 1) is not None

    sa.event.listen(ours.engine, "before_cursor_execute", theirs_takes_the_only_place)
    try:
        mine = redeem(ours, "project-a", 1)
    finally:
        sa.event.remove(ours.engine, "before_cursor_execute", theirs_takes_the_only_place)
    assert staged
    assert mine is None
    assert CatalogRedemptions(ours).count(CODE) == 1
